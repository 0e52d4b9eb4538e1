"""Peer streams: the WebSocket a validator sends its batches on (GET /peer/stream), from the
node's side (acks) and from the sender's (node/peers.py: reopening, refusals, shutdown)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from ledger.encoding import encode
from node.api import PEER_STREAMS_KEY, create_app
from node.peers import STREAM_PATH, PeerLink, Peers, parse_ack
from node.service import Node
from tests.node.conftest import PEER_PROTOCOL, Client
from tests.node.fake_peer import FakePeer, serving


async def _until(check: Callable[[], object], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def _ack(stream: aiohttp.ClientWebSocketResponse) -> tuple[int, str | None]:
    frame = await stream.receive(timeout=5)
    assert frame.type is aiohttp.WSMsgType.BINARY, frame
    return parse_ack(frame.data)


async def test_each_frame_is_acked_with_the_status_a_post_would_get(
    client: Client,
    node: Node,
) -> None:
    stream = await client.ws_connect(STREAM_PATH)
    try:
        await stream.send_bytes(encode({"sender": 0, "messages": [], "txs": []}))
        assert await _ack(stream) == (200, None)
        await stream.send_bytes(b"\xc1")
        status, problem = await _ack(stream)
        assert status == 400 and problem is not None and "not canonical msgpack" in problem
        await stream.send_bytes(encode({"messages": 1, "txs": []}))
        status, problem = await _ack(stream)
        assert status == 400 and problem is not None and "lists 'messages' and 'txs'" in problem
        await stream.send_str("hello")
        status, problem = await _ack(stream)
        assert status == 400 and problem == "peer stream frames must be binary"
        await stream.send_bytes(encode({"sender": 0, "messages": [b"junk"], "txs": []}))
        assert await _ack(stream) == (200, None)  # taken; the junk message is dropped and counted
        assert node.counters.rejected["peer_malformed"] == 3
        assert node.counters.messages_rejected == 1
    finally:
        await stream.close()


async def test_a_plain_get_is_refused_with_400(
    client: Client,
) -> None:
    response = await client.get(STREAM_PATH)
    assert response.status == 400
    assert "error" in await response.json()


async def test_shutting_down_closes_the_open_streams(node: Node) -> None:
    server = TestServer(create_app(node))
    async with TestClient(server, headers=PEER_PROTOCOL) as client:
        stream = await client.ws_connect(STREAM_PATH)
        closing = asyncio.create_task(server.close())
        frame = await stream.receive(timeout=5)
        assert frame.type is aiohttp.WSMsgType.CLOSE
        assert frame.data == aiohttp.WSCloseCode.GOING_AWAY
        await asyncio.wait_for(closing, timeout=5)


@pytest.fixture
async def scripted_peer() -> AsyncIterator[tuple[FakePeer, str]]:
    peer = FakePeer(max_msg_size=4096)
    async with serving(peer) as url:
        yield peer, url


@pytest.fixture
async def peers(scripted_peer: tuple[FakePeer, str]) -> AsyncIterator[Peers]:
    _, url = scripted_peer
    peers = Peers(self_index=0, links=[PeerLink(index=1, name="b", url=url)])
    await peers.start()
    try:
        yield peers
    finally:
        await peers.stop()


async def test_batches_share_one_stream_per_channel(
    scripted_peer: tuple[FakePeer, str], peers: Peers
) -> None:
    peer, _ = scripted_peer
    for index in range(5):
        peers.send(1, f"m{index}".encode())

        def all_sent(sent: int = index + 1) -> bool:
            return peers.links[1].sent_batches == sent

        await _until(all_sent)
    peers.forward_txs([b"tx"])
    await _until(lambda: len(peer.batches) == 6)
    assert [m for b in peer.batches for m in b["messages"]] == [b"m0", b"m1", b"m2", b"m3", b"m4"]
    assert peer.batches[-1]["txs"] == [b"tx"]
    assert peer.streams_opened == 2  # the messages' channel and the transactions'


async def test_a_stream_the_peer_closed_is_reopened_and_nothing_is_lost(
    scripted_peer: tuple[FakePeer, str], peers: Peers
) -> None:
    peer, _ = scripted_peer
    peer.close_after_next = True
    peers.send(1, b"first")
    await _until(lambda: len(peer.batches) == 1)
    peers.send(1, b"second")
    await _until(lambda: len(peer.batches) == 2)
    assert [b["messages"] for b in peer.batches] == [[b"first"], [b"second"]]
    assert peer.streams_opened == 2
    assert peers.links[1].up and peers.links[1].failures == 0  # not counted as down


async def test_a_batch_too_large_for_the_peer_is_not_sent_again(
    scripted_peer: tuple[FakePeer, str], peers: Peers
) -> None:
    peer, _ = scripted_peer
    peers.send(1, b"x" * 8192)  # the peer takes frames of 4,096 bytes at most
    await _until(lambda: peers.links[1].sent_batches == 1)
    peers.send(1, b"small")
    await _until(lambda: len(peer.batches) == 1)
    assert peer.batches[0]["messages"] == [b"small"]
    assert peers.links[1].sent_batches == 2 and peers.links[1].status()["queued"] == 0


async def test_a_stream_the_node_closed_while_idle_is_replaced_without_counting_a_failure(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The node pings an idle stream and closes it when no pong comes back; the sender reads
    # (and so answers pings) only while a batch waits for its ack.
    monkeypatch.setattr("node.api.PEER_STREAM_HEARTBEAT_S", 0.2)
    app = create_app(node)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    peers = Peers(
        self_index=0, links=[PeerLink(index=1, name="b", url=str(server.make_url("")).rstrip("/"))]
    )
    await peers.start()
    try:
        peers.send(1, b"first")
        await _until(lambda: peers.links[1].sent_batches == 1)
        await _until(lambda: not app[PEER_STREAMS_KEY], timeout_s=10)  # closed by the node
        peers.send(1, b"second")
        await _until(lambda: peers.links[1].sent_batches == 2)
        assert peers.links[1].failures == 0 and peers.links[1].up
        assert node.counters.messages_received == 2
    finally:
        await peers.stop()
        await server.close()
