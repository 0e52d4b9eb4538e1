"""Killing real nodes mid-round: view change, recovery from disk, and catch-up by state
transfer, with client load running throughout. Every transaction whose commit the client saw
must be in the final chain of every honest node, at the same height."""

from __future__ import annotations

import asyncio
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from cli.layout import ClusterDir
from cli.loadgen import Load
from ledger.genesis import Params, Role
from tests.clusters import (
    acked_everywhere,
    admin,
    converged,
    millchain,
    poll,
    running_cluster,
    statuses,
)

pytestmark = [pytest.mark.slow, pytest.mark.integration]

SENDERS = tuple((f"load{i}", (Role.SUPPLIER,)) for i in range(3))
PARAMS = Params(
    block_interval_ms=10, checkpoint_interval=4, watermark_window=8, view_change_timeout_ms=1000
)


def _cluster(tmp_path: Path) -> AbstractContextManager[ClusterDir]:
    return running_cluster(tmp_path / "cluster", params=PARAMS, extra_identities=SENDERS)


def _cli(layout: ClusterDir, *args: str) -> None:
    result = millchain(*args, "--dir", str(layout.root))
    assert result.returncode == 0, result.stdout + result.stderr


async def _height_past(layout: ClusterDir, names: list[str], height: int, timeout_s: float) -> None:
    async def check() -> bool | None:
        rows = await statuses(layout, names)
        return True if min(r["height"] for r in rows) > height else None

    await poll(check, timeout_s=timeout_s, what=f"{names} past height {height}")


async def _primary(layout: ClusterDir) -> tuple[str, int]:
    rows = await statuses(layout, layout.node_names())
    return rows[0]["primary_name"], max(r["height"] for r in rows)


def test_killing_the_primary_between_pre_prepare_and_commit_changes_view(
    tmp_path: Path,
) -> None:
    with _cluster(tmp_path) as layout:
        names = layout.node_names()

        async def scenario() -> None:
            load = Load(layout, [name for name, _ in SENDERS])
            load.start()
            primary, height = await _primary(layout)
            await _height_past(layout, names, height + 2, 30)
            await admin(
                layout,
                primary,
                "/admin/pause",
                {"phase": "after-pre-prepare", "seq_min": height + 4},
            )
            await poll(lambda: _paused(layout, primary), timeout_s=30, what="primary paused")
            _cli(layout, "cluster", "kill", primary)
            survivors = [n for n in names if n != primary]
            _, height_at_kill = await _primary_of(layout, survivors)
            await _height_past(layout, survivors, height_at_kill + 3, 60)
            rows = await statuses(layout, survivors)
            assert all(r["view"] >= 1 for r in rows), rows
            assert all(r["primary_name"] != primary for r in rows)
            await load.stop()
            await converged(layout, survivors, height_min=height_at_kill + 3, timeout_s=30)
            assert load.acked
            await acked_everywhere(layout, survivors, load.acked)
            _cli(layout, "cluster", "restart", primary)
            await converged(layout, names, height_min=height_at_kill + 3, timeout_s=60)
            await acked_everywhere(layout, names, load.acked)

        asyncio.run(scenario())


async def _paused(layout: ClusterDir, name: str) -> bool | None:
    state = await admin(layout, name, "/admin/pause")
    if state["paused_at"] is None:
        return None
    return True if state["outbound_queued"] == 0 else None


async def _primary_of(layout: ClusterDir, names: list[str]) -> tuple[str, int]:
    rows = await statuses(layout, names)
    return rows[0]["primary_name"], max(r["height"] for r in rows)


def test_a_backup_killed_after_sending_its_commit_recovers_from_disk(tmp_path: Path) -> None:
    with _cluster(tmp_path) as layout:
        names = layout.node_names()

        async def scenario() -> None:
            load = Load(layout, [name for name, _ in SENDERS])
            load.start()
            primary, height = await _primary(layout)
            backup = next(n for n in names if n != primary)
            await admin(
                layout, backup, "/admin/pause", {"phase": "after-commit", "seq_min": height + 3}
            )
            await poll(lambda: _paused(layout, backup), timeout_s=30, what="backup paused")
            _cli(layout, "cluster", "kill", backup)
            others = [n for n in names if n != backup]
            _, height_at_kill = await _primary_of(layout, others)
            await _height_past(layout, others, height_at_kill + 3, 30)
            _cli(layout, "cluster", "restart", backup)
            await _height_past(layout, names, height_at_kill + 5, 60)
            await load.stop()
            await converged(layout, names, height_min=height_at_kill + 5, timeout_s=60)
            await acked_everywhere(layout, names, load.acked)

        asyncio.run(scenario())


def test_killing_f_nodes_then_all_nodes_loses_nothing_committed(tmp_path: Path) -> None:
    with _cluster(tmp_path) as layout:
        names = layout.node_names()

        async def scenario() -> None:
            load = Load(layout, [name for name, _ in SENDERS])
            load.start()
            _, height = await _primary(layout)
            await _height_past(layout, names, height + 3, 30)
            victim = names[-1]  # f = 1 at n = 4
            _cli(layout, "cluster", "kill", victim)
            others = names[:-1]
            _, height = await _primary_of(layout, others)
            await _height_past(layout, others, height + 3, 30)
            _cli(layout, "cluster", "restart", victim)
            await _height_past(layout, names, height + 5, 60)
            await load.stop()
            await converged(layout, names, height_min=height + 5, timeout_s=60)
            acked_before = dict(load.acked)
            _, height_before = await _primary(layout)

            for name in names:
                _cli(layout, "cluster", "kill", name)
            _cli(layout, "cluster", "up")
            await acked_everywhere(layout, names, acked_before)
            rows = await statuses(layout, names)
            assert min(r["height"] for r in rows) >= height_before
            more = Load(layout, [name for name, _ in SENDERS[:1]], count_max=20)
            more.start()
            await poll(lambda: _acked_at_least(more, 10), timeout_s=60, what="commits resume")
            await more.stop()
            await converged(layout, names, height_min=height_before + 1, timeout_s=60)
            await acked_everywhere(layout, names, {**acked_before, **more.acked})

        asyncio.run(scenario())


async def _backlog_dropped(layout: ClusterDir, names: list[str], peer: str) -> bool | None:
    rows = await statuses(layout, names)
    links = [link for row in rows for link in row["peers"] if link["name"] == peer]
    return True if links and all(link["dropped"] > 0 for link in links) else None


async def _acked_at_least(load: Load, count: int) -> bool | None:
    return True if len(load.acked) >= count else None


def test_a_node_left_behind_catches_up_by_state_transfer(tmp_path: Path) -> None:
    with _cluster(tmp_path) as layout:
        names = layout.node_names()

        async def scenario() -> None:
            laggard = names[-1]
            _cli(layout, "cluster", "kill", laggard)
            others = names[:-1]
            load = Load(layout, [name for name, _ in SENDERS])
            load.start()
            _, height = await _primary_of(layout, others)
            # More than two checkpoint intervals, and more than the watermark window.
            target = height + 3 * PARAMS.checkpoint_interval + PARAMS.watermark_window
            await _height_past(layout, others, target, 90)
            # The others give up queueing for a peer down this long: it must transfer state.
            await poll(
                lambda: _backlog_dropped(layout, others, laggard),
                timeout_s=60,
                what=f"peers to drop their backlog for {laggard}",
            )
            _cli(layout, "cluster", "restart", laggard)
            await _height_past(layout, [laggard], target, 60)
            await load.stop()
            rows = await converged(layout, names, height_min=target, timeout_s=60)
            laggard_row = next(r for r in rows if r["name"] == laggard)
            assert laggard_row["counters"]["blocks_transferred"] > 0, laggard_row
            await acked_everywhere(layout, names, load.acked)

        asyncio.run(scenario())
