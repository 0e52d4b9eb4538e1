"""GET /peer/stream takes anybody's WebSocket (consensus messages need no link proof). The node's
idle timeout must hold there as on any connection: a stream that sends no whole frame for
idle_timeout_s is closed, however many pings and fragments of a frame keep it busy. Before,
any byte (a ping, a 1-byte fragment) restarted aiohttp's heartbeat, so one client could hold any
number of streams, each with a frame's worth (body_bytes_max) of fragments, for ever."""

from __future__ import annotations

import asyncio
import base64
import os
import struct
import time
from collections.abc import AsyncIterator, Callable

import pytest
from aiohttp.test_utils import TestServer

from node.api import PEER_STREAMS_KEY, create_app
from node.limits import ApiLimits
from node.peers import STREAM_PATH, PeerLink, Peers
from node.protocol import PROTOCOL_HEADER, PROTOCOL_VERSION
from node.service import Node

IDLE_TIMEOUT_S = 0.5
# The busy stream must be closed within this many seconds of opening: far past the idle timeout,
# for a loaded machine, and still short of the 20 s heartbeat a ping used to restart for ever.
CLOSED_WITHIN_S = 10.0
OP_CONTINUATION, OP_BINARY, OP_CLOSE, OP_PING = 0x0, 0x2, 0x8, 0x9


def _frame(opcode: int, payload: bytes, *, fin: bool = True) -> bytes:
    """A client's frame, masked (with a zero key, which leaves the payload as it is)."""
    head = bytes([(0x80 if fin else 0) | opcode])
    if len(payload) < 126:
        head += bytes([0x80 | len(payload)])
    else:
        head += bytes([0x80 | 126]) + struct.pack("!H", len(payload))
    return head + bytes(4) + payload


@pytest.fixture
async def server(node: Node) -> AsyncIterator[TestServer]:
    app = create_app(node, ApiLimits(idle_timeout_s=IDLE_TIMEOUT_S))
    test_server = TestServer(app, host="127.0.0.1", port=0)
    await test_server.start_server()
    try:
        yield test_server
    finally:
        await test_server.close()


async def _open_raw_stream(
    server: TestServer,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    assert server.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        f"GET {STREAM_PATH} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        f"{PROTOCOL_HEADER}: {PROTOCOL_VERSION}\r\n\r\n"
        "".encode()
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
    assert head.startswith(b"HTTP/1.1 101"), head
    return reader, writer


def _opcodes(data: bytes) -> list[int]:
    """The opcodes of the server's frames in `data` (unmasked, none longer than 125 bytes)."""
    opcodes, at = [], 0
    while at + 2 <= len(data):
        opcodes.append(data[at] & 0x0F)
        at += 2 + (data[at + 1] & 0x7F)
    return opcodes


async def _read_until_closed(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, deadline: float
) -> bytes:
    """Feed the begun frame a small fragment and a ping every 50 ms, reading what the node sends,
    until its close frame arrives; everything it sent.

    A client stops sending once the node's close frame is in: bytes sent on after it can reach
    the node's socket after the node closed it, and the node's kernel answers them with a reset
    that discards what the node sent before (a loaded machine makes that window wide)."""
    received = b""
    while OP_CLOSE not in _opcodes(received):
        assert time.monotonic() < deadline, (
            f"the stream was still open {CLOSED_WITHIN_S} s after it opened, with an idle "
            f"timeout of {IDLE_TIMEOUT_S} s"
        )
        writer.write(_frame(OP_CONTINUATION, b"x" * 16, fin=False) + _frame(OP_PING, b""))
        try:
            async with asyncio.timeout(0.05):
                chunk = await reader.read(4096)
        except TimeoutError:
            continue
        assert chunk, f"the node closed the connection without a close frame: {received!r}"
        received += chunk
    return received


async def test_a_stream_kept_busy_without_a_whole_frame_is_closed_after_the_idle_timeout(
    server: TestServer,
) -> None:
    # Taken before the upgrade is asked for, so no earlier than the node's idle clock starts.
    opened_at = time.monotonic()
    reader, writer = await _open_raw_stream(server)
    try:
        # A frame begun and never finished, kept busy with fragments and pings.
        writer.write(_frame(OP_BINARY, b"x" * 1024, fin=False))
        received = await _read_until_closed(reader, writer, deadline=opened_at + CLOSED_WITHIN_S)
        closed_after_s = time.monotonic() - opened_at
        assert OP_CLOSE in _opcodes(received)  # closed by the node, with a close frame
        assert closed_after_s >= IDLE_TIMEOUT_S, (
            f"closed {closed_after_s:.3f} s after it opened, before the idle timeout of "
            f"{IDLE_TIMEOUT_S} s"
        )
        # As a client must, it answers the close and sends nothing more.
        writer.write(_frame(OP_CLOSE, struct.pack("!H", 1000)))
        assert server.app is not None
        app = server.app
        await _until(lambda: not app[PEER_STREAMS_KEY], "the node to drop the stream")
    finally:
        writer.transport.abort()


async def _until(check: Callable[[], bool], what: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out after {timeout_s} s waiting for {what}"
        await asyncio.sleep(0.02)


async def test_a_validator_whose_idle_stream_was_closed_sends_on_a_new_one(
    server: TestServer, node: Node
) -> None:
    # The honest side of the same rule: a sender's stream idle between batches is closed, and
    # its next batch goes on a new stream without the peer counting as down.
    url = str(server.make_url("")).rstrip("/")
    peers = Peers(self_index=0, links=[PeerLink(index=1, name="node1", url=url)])
    await peers.start()
    try:
        peers.send(1, b"first")
        await _until(lambda: peers.links[1].sent_batches == 1, "the first batch")
        assert server.app is not None
        app = server.app
        await _until(lambda: not app[PEER_STREAMS_KEY], "the idle stream to be closed")
        peers.send(1, b"second")
        await _until(lambda: peers.links[1].sent_batches == 2, "the second batch")
        assert peers.links[1].failures == 0 and peers.links[1].up
        assert node.counters.messages_received == 2
    finally:
        await peers.stop()
