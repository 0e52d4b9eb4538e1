"""Partitions for real: each node in its own network namespace at its own address (10.77.X.0/24,
scripts/netns.py), links cut and restored with iptables inside the namespaces, under load.

Safety always (the nodes never disagree at a height they share); liveness whenever a quorum can
talk (heights rise during a minority cut, after a heal, through a flapping link and through
random packet loss). One 4-node cluster serves the module; every test starts from a healed,
converged cluster and leaves one behind. Skipped where namespaces are not available (not root,
iproute2 or iptables missing, or `ip netns` not permitted).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cli.layout import ClusterDir, init_cluster
from cli.loadgen import Load
from cli.process import start_node
from node.client import wait_until_up
from scripts.netns import Lab, free_subnet, new_tag, unavailable_reason
from tests.clusters import acked_everywhere, converged, poll, statuses, url
from tests.hostile import PARAMS, SENDERS, assert_no_divergence, height_rises, stop_all

pytestmark = [pytest.mark.slow, pytest.mark.integration]

NODES = 4
PORT = 26600  # every node has its own address, so one port serves all
FLAPS_MIN = 6


@pytest.fixture(scope="module")
def lab_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Lab, ClusterDir]]:
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    lab = Lab(tag=new_tag(), nodes=NODES, subnet=free_subnet())
    root: Path = tmp_path_factory.mktemp("netns") / "cluster"
    layout: ClusterDir | None = None
    try:
        lab.up()
        layout = init_cluster(
            root,
            nodes=NODES,
            params=PARAMS,
            extra_identities=SENDERS,
            hosts=lab.addresses,
            port=PORT,
        )
        for i, name in enumerate(layout.node_names()):
            start_node(layout, name, prefix=tuple(lab.exec_prefix(i)))
        asyncio.run(wait_until_up([url(layout, n) for n in layout.node_names()], 60))
        yield lab, layout
    finally:
        if layout is not None:
            stop_all(layout)
        problems = lab.down()
        assert not problems, problems


async def _primary_index(layout: ClusterDir) -> int:
    rows = await statuses(layout, layout.node_names())
    views = [int(r["view"]) for r in rows]
    return max(views) % NODES


async def _stalled(layout: ClusterDir, names: list[str], window_s: float) -> None:
    """No new height is decided for `window_s` (an observation window, not a readiness wait).
    A node a block behind may still reach a height decided before the split: the commits for
    it were already on their way, or a peer on its side holds the certified block."""
    before = [r["height"] for r in await statuses(layout, names)]
    deadline = time.monotonic() + window_s
    while time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        now = [r["height"] for r in await statuses(layout, names)]
        assert max(now) == max(before), f"{names} committed without a quorum: {before} -> {now}"
        await assert_no_divergence(layout, names)


async def _heal_and_converge(lab: Lab, layout: ClusterDir, load: Load | None) -> None:
    lab.heal()
    names = layout.node_names()
    rows = await height_rises(layout, names, margin=2, timeout_s=45)
    if load is not None:
        await load.stop()
    await converged(layout, names, height_min=max(r["height"] for r in rows), timeout_s=45)
    await assert_no_divergence(layout, names)
    if load is not None:
        await acked_everywhere(layout, names, load.acked)


async def _lags(layout: ClusterDir, name: str, majority_rows: list[dict[str, Any]]) -> None:
    """The cut-off node did not keep up (the cut is real)."""
    (row,) = await statuses(layout, [name])
    assert row["height"] < min(r["height"] for r in majority_rows), (row, majority_rows)


def _loaded(layout: ClusterDir) -> Load:
    load = Load(layout, [name for name, _ in SENDERS])
    load.start()
    return load


def test_a_backup_cut_off_leaves_the_majority_committing(
    lab_cluster: tuple[Lab, ClusterDir],
) -> None:
    lab, layout = lab_cluster
    names = layout.node_names()

    async def run() -> None:
        load = _loaded(layout)
        primary = await _primary_index(layout)
        backup = (primary + 1) % NODES
        lab.isolate(backup)
        majority = [n for i, n in enumerate(names) if i != backup]
        rows = await height_rises(layout, majority, margin=4, timeout_s=30)
        await _lags(layout, names[backup], rows)
        await assert_no_divergence(layout, names)
        await _heal_and_converge(lab, layout, load)

    asyncio.run(run())


def test_an_even_split_stalls_safely_and_resumes_after_the_heal(
    lab_cluster: tuple[Lab, ClusterDir],
) -> None:
    lab, layout = lab_cluster
    names = layout.node_names()

    async def run() -> None:
        load = _loaded(layout)
        await height_rises(layout, names, margin=1, timeout_s=30)
        lab.partition([[0, 1], [2, 3]])  # two against two: no side has 2f+1 = 3
        await asyncio.sleep(1.0)  # what had its quorum before the cut may still land
        await _stalled(layout, names, window_s=3.0)
        await _heal_and_converge(lab, layout, load)

    asyncio.run(run())


def test_an_isolated_primary_is_replaced_and_catches_up(
    lab_cluster: tuple[Lab, ClusterDir],
) -> None:
    lab, layout = lab_cluster
    names = layout.node_names()

    async def run() -> None:
        load = _loaded(layout)
        primary = await _primary_index(layout)
        lab.isolate(primary)
        majority = [n for i, n in enumerate(names) if i != primary]
        rows = await height_rises(layout, majority, margin=4, timeout_s=40)
        assert all(r["primary_name"] != names[primary] for r in rows), rows
        await _lags(layout, names[primary], rows)
        await assert_no_divergence(layout, names)
        await _heal_and_converge(lab, layout, load)

    asyncio.run(run())


def test_a_flapping_link_between_primary_and_backup_keeps_the_chain_safe_and_moving(
    lab_cluster: tuple[Lab, ClusterDir],
) -> None:
    lab, layout = lab_cluster
    names = layout.node_names()

    flips = [0]

    async def flap(a: int, b: int, stop: asyncio.Event) -> None:
        while not stop.is_set():
            lab.cut(a, b)
            await asyncio.sleep(0.4)
            lab.restore(a, b)
            flips[0] += 1
            await asyncio.sleep(0.4)

    async def flapped_enough() -> bool | None:
        return True if flips[0] >= FLAPS_MIN else None

    async def run() -> None:
        load = _loaded(layout)
        primary = await _primary_index(layout)
        stop = asyncio.Event()
        flapping = asyncio.create_task(flap(primary, (primary + 1) % NODES, stop))
        try:
            await poll(flapped_enough, timeout_s=30, what=f"{FLAPS_MIN} flaps")
            await height_rises(layout, names, margin=4, timeout_s=40)
            await assert_no_divergence(layout, names)
        finally:
            stop.set()
            await flapping
        await _heal_and_converge(lab, layout, load)

    asyncio.run(run())


def test_random_packet_loss_everywhere_slows_but_does_not_stop_or_fork_the_chain(
    lab_cluster: tuple[Lab, ClusterDir],
) -> None:
    lab, layout = lab_cluster
    names = layout.node_names()

    async def run() -> None:
        load = _loaded(layout)
        for i in range(NODES):
            lab.loss(i, 0.1)
        await height_rises(layout, names, margin=4, timeout_s=40)
        await assert_no_divergence(layout, names)
        await _heal_and_converge(lab, layout, load)

    asyncio.run(run())
