"""`millchain block H` shows a block "its certificate checked offline" (README), so what it shows
is what the certificate covers. It verifies the msgpack block a node serves at /peer/blocks but
printed (and with --json returned) the node's separate JSON answer at /blocks/H, which nothing
checked: a node, or anything answering at its address, could show other transactions beside
"certificate verified offline".

The lying node is node0 behind a relay on 127.0.0.1 that passes every request to the real node0
and changes the quantity in block 1's JSON."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import threading
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.clusters import millchain, running_cluster

pytestmark = [pytest.mark.slow]

FORGED_QTY = 987654


class ForgingRelay:
    """An HTTP relay to `target` on an OS-assigned port that forges block 1's JSON."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._stop: asyncio.Event | None = None

    def __enter__(self) -> ForgingRelay:
        self._thread.start()
        assert self._ready.wait(10), "relay did not start"
        return self

    def __exit__(self, *_: object) -> None:
        stop = self._stop
        if stop is not None:
            self._loop.call_soon_threadsafe(stop.set)
        self._thread.join(10)

    def _serve(self) -> None:
        self._loop.run_until_complete(self._main())

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        async with aiohttp.ClientSession() as session:

            async def relay(request: web.Request) -> web.StreamResponse:
                async with session.get(self.target + request.path_qs) as answer:
                    body = await answer.read()
                    if request.path == "/blocks/1" and answer.status == 200:
                        document: dict[str, Any] = json.loads(body)
                        document["txs"][0]["args"]["qty"] = FORGED_QTY
                        body = json.dumps(document).encode()
                    return web.Response(
                        body=body, status=answer.status, content_type=answer.content_type
                    )

            app = web.Application()
            app.router.add_route("GET", "/{path:.*}", relay)
            runner = web.AppRunner(app, shutdown_timeout=0.1)
            await runner.setup()
            listener = socket.create_server(("127.0.0.1", 0))  # the OS picks the port
            self.port = listener.getsockname()[1]
            await web.SockSite(runner, listener).start()
            self._ready.set()
            await self._stop.wait()
            await runner.cleanup()


def test_block_shows_only_what_its_certificate_covers(tmp_path: Path) -> None:
    root = tmp_path / "cluster"
    with running_cluster(root) as layout:
        tx = millchain(
            "tx", "inventory", "receive", "item=steel", "location=main", "qty=100",
            "--dir", str(root), "--as", "supplier", "--wait",
        )  # fmt: skip
        assert tx.returncode == 0, tx.stdout + tx.stderr
        assert "at height 1:" in tx.stdout, tx.stdout  # the only transaction, in block 1

        # A client's copy of the cluster folder whose node0 is reached through the relay.
        client = tmp_path / "client"
        shutil.copytree(root, client, ignore=shutil.ignore_patterns("data", "node.pid", "*.log"))
        with ForgingRelay(layout.config("node0").url) as relay:
            config = client / "nodes" / "node0" / "node.json"
            document = json.loads(config.read_text(encoding="utf-8"))
            document["port"] = relay.port
            config.write_text(json.dumps(document), encoding="utf-8")

            for extra in ((), ("--json",)):
                shown = millchain("block", "1", "--dir", str(client), "--node", "node0", *extra)
                out = shown.stdout + shown.stderr
                assert str(FORGED_QTY) not in shown.stdout, out
                if shown.returncode == 0:
                    assert "100" in shown.stdout, out
