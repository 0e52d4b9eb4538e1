"""Real clusters with up to f byzantine validators (`node run --byzantine MODE`) under load:
the honest nodes never diverge and keep committing, changing views where the liar is primary.

node0 is the primary of view 0, so the primary modes (equivocate, invalid-blocks, withhold)
run there. Kept short: n = 7 runs once per pair of liars.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from cli.loadgen import Load
from tests.clusters import statuses
from tests.hostile import SENDERS, assert_no_divergence, height_rises, hostile_cluster

pytestmark = [pytest.mark.slow, pytest.mark.integration]

# (n, {liar: spec}, honest nodes must change view, honest nodes must refuse messages). An
# equivocating primary is caught by the votes it splits, not by a message anyone can refuse.
SCENARIOS = {
    "n4-equivocating-primary": (4, {"node0": "equivocate"}, True, False),
    "n4-invalid-blocks-primary": (4, {"node0": "invalid-blocks"}, True, True),
    "n4-withholding-primary": (4, {"node0": "withhold"}, True, False),
    "n4-conflicting-votes": (4, {"node2": "conflicting-votes"}, False, True),
    "n4-flood": (4, {"node2": "flood=300"}, False, True),
    "n7-equivocating-primary-and-conflicting-votes": (
        7,
        {"node0": "equivocate", "node3": "conflicting-votes"},
        True,
        True,
    ),
    "n7-invalid-blocks-primary-and-withholding-next-primary": (
        7,
        {"node0": "invalid-blocks", "node1": "withhold"},
        True,
        True,
    ),
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_honest_nodes_agree_and_keep_committing_beside_byzantine_peers(
    tmp_path: Path, scenario: str
) -> None:
    nodes, liars, view_change_expected, rejections_expected = SCENARIOS[scenario]
    margin = 6 if nodes == 4 else 4
    with hostile_cluster(tmp_path / "cluster", nodes=nodes, byzantine=liars) as layout:
        honest = [name for name in layout.node_names() if name not in liars]

        async def run() -> None:
            load = Load(layout, [name for name, _ in SENDERS])
            load.start()
            try:
                rows = await height_rises(layout, honest, margin=margin, timeout_s=45)
                await assert_no_divergence(layout, honest)
                if view_change_expected:
                    assert all(r["view"] >= 1 for r in rows), [r["view"] for r in rows]
                    assert all(r["primary_name"] not in liars for r in rows)
            finally:
                await load.stop()
            assert load.acked, "the client saw no commit"
            liar_rows = await statuses(layout, list(liars))
            for row in liar_rows:
                assert row["byzantine"] is not None, row["name"]
            acted = sum(
                r["byzantine"]["rewritten"] + r["byzantine"]["withheld"] + r["byzantine"]["flooded"]
                for r in liar_rows
            )
            assert acted > 0, [r["byzantine"] for r in liar_rows]
            if rejections_expected:
                rejected = [
                    r["counters"]["messages_rejected"] for r in await statuses(layout, honest)
                ]
                assert sum(rejected) > 0, rejected
            assert await assert_no_divergence(layout, honest) >= margin

        asyncio.run(run())
