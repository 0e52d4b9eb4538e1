"""Real-process clusters for integration tests: started through the CLI, ended by PID in a
`finally`, on ports the OS reported free, with bounded waits that poll /status."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from cli.layout import ClusterDir, init_cluster
from cli.process import read_pid
from ledger.genesis import Params, Role
from node.client import ClientError, NodeClient

T = TypeVar("T")
STATUS_TRIES = 3  # of a /status request that timed out (see `statuses`)


def millchain(
    *args: str, timeout_s: float = 120, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the CLI as a user would, in a subprocess (from the working directory `cwd`)."""
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
        cwd=cwd,
    )


def kill_all(layout: ClusterDir) -> None:
    for name in layout.node_names():
        pid = read_pid(layout.pid_file(name))
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def running_cluster(
    root: Path,
    *,
    nodes: int = 4,
    params: Params | None = None,
    extra_identities: tuple[tuple[str, tuple[Role, ...]], ...] = (),
    observers: int = 0,
) -> Iterator[ClusterDir]:
    layout = init_cluster(
        root, nodes=nodes, params=params, extra_identities=extra_identities, observers=observers
    )
    try:
        result = millchain("cluster", "up", "--dir", str(root), "--timeout", "60")
        assert result.returncode == 0, result.stdout + result.stderr
        yield layout
    finally:
        millchain("cluster", "down", "--dir", str(root), timeout_s=60)
        kill_all(layout)


def url(layout: ClusterDir, name: str) -> str:
    return layout.config(name).url


async def poll(check: Callable[[], Awaitable[T | None]], *, timeout_s: float, what: str) -> T:
    """Call `check` until it returns something other than None, or fail after the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = await check()
        if result is not None:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.05)


async def statuses(layout: ClusterDir, names: list[str]) -> list[dict[str, Any]]:
    """Each named node's /status. A request that timed out is asked again, up to STATUS_TRIES
    times: under the packet loss the network tests inject, a lost SYN alone costs 1 s and two
    cost 3 s, the client's whole timeout. A refused connection fails at once."""

    async def one(name: str) -> dict[str, Any]:
        async with NodeClient(url(layout, name)) as client:
            for _ in range(STATUS_TRIES - 1):
                try:
                    return await client.status()
                except ClientError as exc:
                    if not isinstance(exc.__cause__, TimeoutError):
                        raise
            return await client.status()

    return list(await asyncio.gather(*(one(n) for n in names)))


async def converged(
    layout: ClusterDir, names: list[str], *, height_min: int, timeout_s: float
) -> list[dict[str, Any]]:
    """Wait until the named nodes agree on height (>= height_min), head and state digest."""

    async def check() -> list[dict[str, Any]] | None:
        rows = await statuses(layout, names)
        keys = {(r["height"], r["head"], r["state_digest"]) for r in rows}
        if len(keys) == 1 and rows[0]["height"] >= height_min:
            return rows
        return None

    return await poll(check, timeout_s=timeout_s, what=f"{names} to converge")


async def acked_everywhere(layout: ClusterDir, names: list[str], acked: dict[str, int]) -> None:
    """Every transaction the client saw committed is on every named node, at the same height."""
    for name in names:
        async with NodeClient(url(layout, name)) as client:
            for tx_hash, height in acked.items():
                result = await client.tx(tx_hash)
                assert result["status"] == "committed", (name, tx_hash)
                assert result["height"] == height, (name, tx_hash, result["height"], height)


async def admin(
    layout: ClusterDir, name: str, path: str, body: dict[str, Any] | None = None
) -> dict[str, Any]:
    import aiohttp  # noqa: PLC0415

    async with aiohttp.ClientSession() as session:
        method = "POST" if body is not None else "GET"
        async with session.request(method, url(layout, name) + path, json=body) as response:
            assert response.status == 200, await response.text()
            result: dict[str, Any] = await response.json()
            return result
