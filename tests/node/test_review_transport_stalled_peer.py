"""A peer that takes the connection and never reads (a stopped process, an overloaded host, a
byzantine validator, or anybody listening on a down validator's port): the sender's link to it
must count it down within the ack timeout and drop its backlog, and its other links go on."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
from collections.abc import AsyncIterator, Callable

import pytest

from node import peers as peers_module
from node.peers import PeerLink, Peers
from node.protocol import PROTOCOL_VERSION, subprotocol
from tests.node.fake_peer import FakePeer, serving

_WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class StalledPeer:
    """Answers the WebSocket handshake of GET /peer/stream, then never reads another byte."""

    def __init__(self) -> None:
        self.writers: list[asyncio.StreamWriter] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        key = next(
            line.split(b":", 1)[1].strip()
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"sec-websocket-key:")
        )
        accept = base64.b64encode(hashlib.sha1(key + _WS_GUID).digest())
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept + b"\r\n"
            b"Sec-WebSocket-Protocol: " + subprotocol(PROTOCOL_VERSION).encode() + b"\r\n\r\n"
        )
        await writer.drain()
        transport = writer.transport
        assert isinstance(transport, asyncio.Transport)
        transport.pause_reading()  # the kernel's buffers fill, then the sender's
        self.writers.append(writer)


@pytest.fixture
async def stalled_url() -> AsyncIterator[str]:
    peer = StalledPeer()
    server = await asyncio.start_server(peer.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        for writer in peer.writers:
            writer.transport.abort()
        await server.wait_closed()


async def _until(check: Callable[[], bool], what: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out after {timeout_s} s waiting for {what}"
        await asyncio.sleep(0.02)


async def test_a_peer_that_never_reads_counts_as_down_and_loses_its_backlog(
    stalled_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(peers_module, "ACK_TIMEOUT_S", 0.5)
    monkeypatch.setattr(peers_module, "STALE_AFTER_MS", 1000)
    healthy = FakePeer()
    async with serving(healthy) as healthy_url:
        peers = Peers(
            self_index=0,
            links=[
                PeerLink(index=1, name="stalled", url=stalled_url),
                PeerLink(index=2, name="healthy", url=healthy_url),
            ],
        )
        await peers.start()
        try:
            stalled = peers.links[1]
            # One frame far larger than the kernel's socket buffers, then a backlog behind it.
            peers.send(1, b"p" * (24 * 1024 * 1024))
            for index in range(8):
                peers.send(1, b"m%d" % index)
            # Before the fix the send waited for the socket to drain for ever: no ack timeout,
            # the link never counted down, and its backlog (up to 64 MiB a channel) stayed.
            await _until(lambda: stalled.failures >= 1, "the stalled link to count as down")
            assert not stalled.up and stalled.down_since_ms is not None
            await _until(
                lambda: stalled.status()["queued"] == 0 and stalled.messages.size == 0,
                "the stalled link's backlog to be dropped",
            )
            assert stalled.status()["dropped"] >= 8
            # Meanwhile the link to the other peer carries its messages as ever.
            peers.send(2, b"to the healthy peer")
            await _until(lambda: len(healthy.batches) == 1, "the healthy peer's batch")
            assert healthy.batches[0]["messages"] == [b"to the healthy peer"]
        finally:
            await asyncio.wait_for(peers.stop(), timeout=10)
