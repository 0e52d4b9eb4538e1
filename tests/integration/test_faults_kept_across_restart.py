"""A partition set with `millchain cluster faults --partition` holds until `--heal`, also across a
`millchain cluster restart` of a node it cuts off (the README's crash-and-recover flow, run on a
partitioned node). When the rules lived in the node process only, the restarted node came back
with none, sent to the others again, fetched the blocks it missed from peers that still "cut" it
(they serve /peer/history whatever their rules say), and the partition was half set, which the
README calls worse than none. The rules are now kept in each node's data directory."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from cli.loadgen import Load
from tests.clusters import admin, millchain, statuses
from tests.hostile import SENDERS, height_rises, hostile_cluster

pytestmark = [pytest.mark.slow, pytest.mark.integration]

WINDOW_S = 5.0  # longer than a node's idle sync (3 s), which would fetch through the cut


def _faults(root: Path, *args: str) -> None:
    result = millchain("cluster", "faults", "--dir", str(root), *args)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_partitioned_node_stays_cut_off_after_cluster_restart(tmp_path: Path) -> None:
    root = tmp_path / "cluster"
    with hostile_cluster(root, nodes=4) as layout:
        names = layout.node_names()
        cut, majority = names[3], names[:3]

        async def run() -> None:
            load = Load(layout, [name for name, _ in SENDERS])
            load.start()
            try:
                await height_rises(layout, names, margin=2, timeout_s=30)
                _faults(root, "--partition", f"{cut}/{','.join(majority)}")
                await height_rises(layout, majority, margin=3, timeout_s=30)
                (row,) = await statuses(layout, [cut])
                left_at = row["height"]  # where the cut left it
                restarted = millchain("cluster", "restart", cut, "--dir", str(root))
                assert restarted.returncode == 0, restarted.stdout + restarted.stderr
                cut_links = ", ".join(f"{peer} (cut)" for peer in majority)
                assert (
                    f"fault rules kept from before are in force: {cut} to {cut_links}"
                    in restarted.stderr
                ), restarted.stderr
                deadline = time.monotonic() + WINDOW_S
                while time.monotonic() < deadline:  # an observation window, not a wait
                    (row,) = await statuses(layout, [cut])
                    top = max(r["height"] for r in await statuses(layout, majority))
                    assert row["height"] == left_at, (
                        f"{cut} went from {left_at} to {row['height']} through the partition "
                        f"(majority at {top})"
                    )
                    await asyncio.sleep(0.2)
                rules = (await admin(layout, cut, "/admin/faults"))["peers"]
                assert all(rules[peer]["blocked"] for peer in majority), rules
            finally:
                await load.stop()

        asyncio.run(run())
