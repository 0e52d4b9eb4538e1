"""A node that comes back to a quiet cluster catches up by itself.

Peers drop what they queue for a peer that stays down, and a cluster with no client work sends
no consensus messages, so nothing would tell the returning node that the chain moved on: it
asks its peers for certified blocks when it starts, and again whenever it has committed nothing
for a while (a healed partition)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from cli.loadgen import Load
from cli.process import kill_node, start_node
from ledger.genesis import Params, Role
from node.client import wait_until_up
from tests.clusters import acked_everywhere, converged, poll, running_cluster, statuses

pytestmark = [pytest.mark.slow, pytest.mark.integration]

SENDERS = tuple((f"load{i}", (Role.SUPPLIER,)) for i in range(4))
BEHIND = 250  # blocks: far past the watermark window (a laggard this far back was stranded)
CHECKPOINT_INTERVAL = Params().checkpoint_interval


def test_a_restarted_node_catches_up_with_no_load_running(tmp_path: Path) -> None:
    with running_cluster(tmp_path / "cluster", extra_identities=SENDERS) as layout:
        names = layout.node_names()
        laggard, others = names[-1], names[:-1]

        async def scenario() -> None:
            kill_node(layout, laggard)
            load = Load(layout, [n for n, _ in SENDERS], count_max=2_000)
            load.start()

            async def far_enough() -> bool | None:
                rows = await statuses(layout, others)
                return True if min(r["height"] for r in rows) >= BEHIND else None

            await poll(far_enough, timeout_s=90, what=f"{others} to commit {BEHIND} blocks")
            await load.stop()
            # Let the backlog for the dead node expire: its peers stop queueing for it.
            target = (await converged(layout, others, height_min=BEHIND, timeout_s=30))[0]
            start_node(layout, laggard)
            await wait_until_up([layout.config(laggard).url], 30)
            rows = await converged(layout, names, height_min=target["height"], timeout_s=60)
            assert rows[0]["height"] == target["height"]  # nothing new was needed to get there
            await acked_everywhere(layout, names, load.acked)
            # It rebuilt most of that history from write sets checked against checkpoint
            # proofs; only the blocks above the last proof were executed (node/catchup.py).
            transfer = rows[-1]["transfer"]
            assert transfer["runs_refused"] == 0
            assert transfer["blocks_checked"] > BEHIND - 2 * CHECKPOINT_INTERVAL
            assert transfer["blocks_executed"] < 2 * CHECKPOINT_INTERVAL

        asyncio.run(scenario())
