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
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.cli.relay import Answer, Relay, passed_on
from tests.clusters import millchain, running_cluster

pytestmark = [pytest.mark.slow]

FORGED_QTY = 987654


def forging(target: str) -> Answer:
    """Pass every request to `target`, with block 1's JSON quantity changed."""

    async def answer(
        request: web.Request, session: aiohttp.ClientSession, stop: asyncio.Event
    ) -> web.Response:
        status, body, content_type = await passed_on(target, request, session)
        if request.path == "/blocks/1" and status == 200:
            document: dict[str, Any] = json.loads(body)
            document["txs"][0]["args"]["qty"] = FORGED_QTY
            body = json.dumps(document).encode()
        return web.Response(body=body, status=status, content_type=content_type)

    return answer


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
        with Relay(forging(layout.config("node0").url)) as relay:
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
