"""Checks for clusters under attack: honest nodes never diverge, and keep committing.

`assert_no_divergence` compares every height the named nodes all hold (block hash and the state
digest after it); `height_rises` waits until the slowest named node is `margin` blocks above
where the slowest one stood when it was called.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from cli.layout import ClusterDir, init_cluster
from cli.process import node_pid, start_node, stop_node
from ledger.genesis import Params, Role
from node.byzantine import ALLOW_ENV
from node.client import NodeClient, wait_until_up
from tests.clusters import poll, statuses, url

SENDERS = tuple((f"load{i}", (Role.SUPPLIER,)) for i in range(3))
PARAMS = Params(
    block_interval_ms=10, checkpoint_interval=4, watermark_window=8, view_change_timeout_ms=1000
)
BLOCKS_COMPARED_MAX = 1000


@contextlib.contextmanager
def hostile_cluster(
    root: Path,
    *,
    nodes: int,
    byzantine: Mapping[str, str] | None = None,
    seed: int = 7,
) -> Iterator[ClusterDir]:
    """A started cluster whose named nodes run `--byzantine SPEC`; every node is stopped by
    its PID (SIGKILL past a deadline) in the `finally`."""
    layout = init_cluster(root, nodes=nodes, params=PARAMS, extra_identities=SENDERS)
    previous = os.environ.get(ALLOW_ENV)
    os.environ[ALLOW_ENV] = "1"  # inherited by the node processes started below
    try:
        for name in layout.node_names():
            spec = (byzantine or {}).get(name)
            extra = () if spec is None else ("--byzantine", spec, "--byzantine-seed", str(seed))
            start_node(layout, name, extra_args=extra)
        asyncio.run(wait_until_up([url(layout, n) for n in layout.node_names()], 60))
        yield layout
    finally:
        if previous is None:
            os.environ.pop(ALLOW_ENV, None)
        else:
            os.environ[ALLOW_ENV] = previous
        stop_all(layout)


def stop_all(layout: ClusterDir) -> None:
    """SIGTERM every node at once, then stop each by its PID (SIGKILL past the deadline)."""
    for name in layout.node_names():
        pid = node_pid(layout, name)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
    for name in layout.node_names():
        stop_node(layout, name, timeout_s=5)


async def _blocks(layout: ClusterDir, name: str) -> dict[int, tuple[str, str]]:
    async with NodeClient(url(layout, name)) as client:
        result = await client.request("GET", f"/blocks?limit={BLOCKS_COMPARED_MAX}")
    return {b["height"]: (b["hash"], b["state_digest"]) for b in result["blocks"]}


async def assert_no_divergence(layout: ClusterDir, names: list[str]) -> int:
    """Same block hash and state digest at every height all named nodes hold; returns how many
    heights were compared."""
    chains = await asyncio.gather(*(_blocks(layout, n) for n in names))
    common = set.intersection(*(set(chain) for chain in chains))
    for height in sorted(common):
        seen = {name: chain[height] for name, chain in zip(names, chains, strict=True)}
        assert len(set(seen.values())) == 1, f"divergence at height {height}: {seen}"
    rows = await statuses(layout, names)
    by_height: dict[int, set[str]] = {}
    for row in rows:
        by_height.setdefault(row["height"], set()).add(row["state_digest"])
    assert all(len(d) == 1 for d in by_height.values()), f"state digests differ: {by_height}"
    assert not any(row["halted"] for row in rows), [row["halted"] for row in rows]
    return len(common)


async def height_rises(
    layout: ClusterDir, names: list[str], *, margin: int, timeout_s: float
) -> list[dict[str, Any]]:
    """Wait until every named node is `margin` blocks past the lowest height among them now."""
    start = min(r["height"] for r in await statuses(layout, names))

    async def check() -> list[dict[str, Any]] | None:
        rows = await statuses(layout, names)
        return rows if min(r["height"] for r in rows) >= start + margin else None

    return await poll(
        check, timeout_s=timeout_s, what=f"{names} to commit {margin} blocks past {start}"
    )
