"""Pause points freeze a node at a named phase of a round, through the admin API."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from consensus.events import RequestsPending, Tick
from ledger.encoding import encode
from node.api import create_app
from node.peers import STREAM_PATH, parse_ack
from node.service import Node
from node.storage import Storage
from tests.node.conftest import PEER_PROTOCOL, Setup, steel_received


@pytest.fixture
async def primary(setup: Setup, tmp_path: Path) -> AsyncIterator[Node]:
    node = Node(
        name="node0",
        genesis=setup.genesis,
        keys=setup.validator_keys[0],
        storage=Storage(tmp_path / "chain.sqlite"),
    )
    await node.start()
    try:
        yield node
    finally:
        await node.stop()


async def _until(check: object, timeout_s: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not check():  # type: ignore[operator]
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_primary_freezes_before_sending_its_pre_prepare(primary: Node, setup: Setup) -> None:
    async with TestClient(TestServer(create_app(primary)), headers=PEER_PROTOCOL) as client:
        response = await client.post("/admin/pause", json={"phase": "before-pre-prepare"})
        assert response.status == 200
        assert (await response.json())["armed"]["phase"] == "before-pre-prepare"
        tx = steel_received(setup)
        assert (await client.post("/tx", data=tx.to_wire())).status == 202
        await _until(lambda: primary.paused_at is not None)
        status = await (await client.get("/admin/pause")).json()
        assert status["paused_at"] == {"phase": "before-pre-prepare", "seq": 1}
        assert primary.counters.messages_sent == 0  # the pre-prepare was held, not sent
        refused = await client.post("/peer/batch", data=encode({"messages": [], "txs": []}))
        assert refused.status == 503
        stream = await client.ws_connect(STREAM_PATH)
        await stream.send_bytes(encode({"messages": [], "txs": []}))
        ack = await stream.receive(timeout=5)
        assert parse_ack(ack.data)[0] == 503
        await stream.close()
        await client.post("/admin/resume")
        assert primary.paused_at is None
        assert primary.counters.messages_sent == 3  # released to the three peers


async def test_pause_rejects_an_unknown_phase(primary: Node) -> None:
    async with TestClient(TestServer(create_app(primary)), headers=PEER_PROTOCOL) as client:
        response = await client.post("/admin/pause", json={"phase": "whenever"})
        assert response.status == 400
        assert "before-pre-prepare" in (await response.json())["error"]
        assert primary.pause_point is None


async def test_a_long_pause_holds_only_the_latest_timer_inputs(primary: Node, setup: Setup) -> None:
    # The ticker feeds a Tick and a RequestsPending ten times a second: a pause of an hour held
    # 72,000 of them, fed one by one at the resume. Only the latest of each matters.
    async with TestClient(TestServer(create_app(primary)), headers=PEER_PROTOCOL) as client:
        await client.post("/admin/pause", json={"phase": "before-pre-prepare"})
        tx = steel_received(setup)
        assert (await client.post("/tx", data=tx.to_wire())).status == 202
        await _until(lambda: primary.paused_at is not None)
        held = (await (await client.get("/admin/pause")).json())["held_inputs"]
        start_ms = int(time.time() * 1000)
        for step in range(1000):
            primary.feed(Tick(now_ms=start_ms + step * 100))
            primary.feed(RequestsPending(now_ms=start_ms + step * 100, pending=True))
        status = await (await client.get("/admin/pause")).json()
        assert status["held_inputs"] <= held + 2, status
        await client.post("/admin/resume")
        assert primary.paused_at is None and primary.held_inputs == 0
        assert primary.counters.messages_sent >= 3  # the pre-prepare, and whatever time brought
