"""Faults made by the nodes' fault-injection layer (`millchain cluster faults`), under load: first
latency with jitter, loss and duplicates on every link (the cluster keeps committing), then the
primary cut off from everyone. The majority changes view and keeps committing; after the heal
the isolated node comes back to the same head."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from cli.loadgen import Load
from tests.clusters import acked_everywhere, admin, converged, millchain, statuses
from tests.hostile import SENDERS, assert_no_divergence, height_rises, hostile_cluster

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def _faults(root: Path, *args: str) -> None:
    result = millchain("cluster", "faults", "--dir", str(root), *args)
    assert result.returncode == 0, result.stdout + result.stderr


def test_an_isolated_primary_is_replaced_and_rejoins_at_the_same_head(tmp_path: Path) -> None:
    root = tmp_path / "cluster"
    with hostile_cluster(root, nodes=4) as layout:
        names = layout.node_names()
        primary, majority = names[0], names[1:]

        async def run() -> None:
            load = Load(layout, [name for name, _ in SENDERS])
            load.start()
            await height_rises(layout, names, margin=2, timeout_s=30)
            _faults(
                root,
                "--seed",
                "3",
                "--delay-ms",
                "30",
                "--jitter-ms",
                "10",
                "--loss",
                "0.05",
                "--dup",
                "0.1",
            )
            await height_rises(layout, names, margin=3, timeout_s=30)
            state = await admin(layout, primary, "/admin/faults")
            assert state["seed"] == 3
            link = state["peers"][majority[0]]
            assert (link["delay_ms"], link["loss"], link["duplicate"]) == (30, 0.05, 0.1), link
            assert link["counters"]["delayed_ms_total"] > 0, link
            _faults(root, "--partition", f"{primary}/{','.join(majority)}")
            rows = await height_rises(layout, majority, margin=5, timeout_s=45)
            assert all(r["view"] >= 1 and r["primary_name"] != primary for r in rows), rows
            (isolated,) = await statuses(layout, [primary])
            assert isolated["height"] < min(r["height"] for r in rows)
            await assert_no_divergence(layout, names)
            _faults(root, "--heal")
            rows = await height_rises(layout, majority, margin=2, timeout_s=30)
            await load.stop()
            top = max(r["height"] for r in rows)
            await converged(layout, names, height_min=top, timeout_s=45)
            await assert_no_divergence(layout, names)
            await acked_everywhere(layout, names, load.acked)

        asyncio.run(run())
