"""A node told to stop (SIGTERM, as `cluster down` and `cluster restart` send) stops within about
a second although a client's long poll is in flight: the poll is cut, not waited out, so the CLI
does not have to kill the node when its patience ends."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import aiohttp
import pytest

from cli.process import is_alive, read_pid
from node.api import SHUTDOWN_GRACE_S
from tests.clusters import running_cluster, url

pytestmark = [pytest.mark.slow, pytest.mark.integration]

POLL_MS = 30_000  # the longest GET /tx may wait
UNKNOWN = "ab" * 32


def test_a_node_stops_soon_with_a_long_poll_in_flight(tmp_path: Path) -> None:
    with running_cluster(tmp_path / "cluster") as layout:
        name = layout.node_names()[1]
        pid = read_pid(layout.pid_file(name))
        assert pid is not None

        async def run() -> float:
            async with aiohttp.ClientSession() as session:
                poll = asyncio.create_task(
                    session.get(f"{url(layout, name)}/tx/{UNKNOWN}?wait_ms={POLL_MS}")
                )
                # The poll is in flight once the node has taken it: wait until it has.
                await asyncio.sleep(0)
                deadline = time.monotonic() + 10
                while not poll.done() and time.monotonic() < deadline:
                    status = await session.get(f"{url(layout, name)}/status")
                    if status.status == 200:
                        break
                started = time.monotonic()
                os.kill(pid, signal.SIGTERM)
                while is_alive(pid) and time.monotonic() - started < POLL_MS / 1000 + 10:
                    await asyncio.sleep(0.05)
                stopped_after = time.monotonic() - started
                with pytest.raises(aiohttp.ClientError):
                    (await poll).raise_for_status()
                return stopped_after

        stopped_after = asyncio.run(run())
        assert not is_alive(pid)
        assert stopped_after < SHUTDOWN_GRACE_S + 5, stopped_after
        log = layout.log_file(name).read_text(encoding="utf-8")
        assert "shutting down" in log and log.rstrip().endswith("stopped")
