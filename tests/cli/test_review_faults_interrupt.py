"""`millchain cluster faults` changes every node it must or none: "Every node a change is for
must answer first, or no node is changed (a partition half set is worse than none)". Answering
the first question is not enough: a node may stop answering while the change is sent (a pause,
a crash), and the user then presses Ctrl-C on a command that hangs. The nodes already changed
must be put back.

A node that answers questions but never a change is node3 behind a relay on 127.0.0.1 that
passes its GETs and holds its POSTs: node3 itself is the real process."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from cli.layout import ClusterDir
from tests.cli.relay import Answer, Relay, passed_on
from tests.clusters import admin, running_cluster

pytestmark = [pytest.mark.slow]


def holding(target: str) -> Answer:
    """Pass GETs to `target`; hold POSTs unanswered until the relay closes."""

    async def answer(
        request: web.Request, session: aiohttp.ClientSession, stop: asyncio.Event
    ) -> web.Response:
        if request.method != "GET":
            await stop.wait()  # held: the change never lands
            raise web.HTTPServiceUnavailable()
        status, body, content_type = await passed_on(target, request, session)
        return web.Response(body=body, status=status, content_type=content_type)

    return answer


def _point_at(layout: ClusterDir, name: str, port: int) -> None:
    path = layout.config_file(name)
    document = json.loads(path.read_text(encoding="utf-8"))
    document["port"] = port
    path.write_text(json.dumps(document), encoding="utf-8")


async def _blocked_to(layout: ClusterDir, names: list[str], peer: str) -> dict[str, bool]:
    states = [await admin(layout, name, "/admin/faults") for name in names]
    return {n: s["peers"][peer]["blocked"] for n, s in zip(names, states, strict=True)}


def test_ctrl_c_on_a_change_a_node_stopped_answering_leaves_no_node_changed(
    tmp_path: Path,
) -> None:
    root = tmp_path / "cluster"
    with running_cluster(root) as layout, Relay(holding(layout.config("node3").url)) as relay:
        _point_at(layout, "node3", relay.port)  # the CLI now reaches node3 through the relay
        command = [sys.executable, "-m", "cli", "cluster", "faults", "--dir", str(root)]
        process = subprocess.Popen(
            [*command, "--peer", "node1", "--block"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            deadline = time.monotonic() + 30
            changed = {"node0": False, "node2": False}
            while not all(changed.values()):  # node3's change is held after theirs
                assert process.poll() is None, process.communicate()[0]
                assert time.monotonic() < deadline, changed
                time.sleep(0.05)
                changed = asyncio.run(_blocked_to(layout, ["node0", "node2"], "node1"))
            os.kill(process.pid, signal.SIGINT)  # the user gives up on the hanging command
            out, _ = process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        assert process.returncode != 0, out
        after = asyncio.run(_blocked_to(layout, ["node0", "node2"], "node1"))
        assert after == {"node0": False, "node2": False}, out
        assert "undone on node0, node2" in out and "could not undo the change on node3" in out
