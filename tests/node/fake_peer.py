"""A fake validator for testing a node's outbound links (node/peers.py): it serves the peer
stream on 127.0.0.1, records every batch it reads with the time it came, and acks each; and
`FakeAnswer`, an answer as node.peers reads one, for a fake session."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from ledger.encoding import decode
from node.peers import STREAM_PATH, PeerLink, Peers, encode_ack
from node.protocol import PROTOCOL_VERSION, subprotocol


class FakePeer:
    def __init__(self, *, max_msg_size: int = 4 * 1024 * 1024) -> None:
        self.arrivals: list[tuple[float, dict[str, Any]]] = []  # (time.monotonic(), batch)
        self.streams_opened = 0
        self.max_msg_size = max_msg_size
        self.close_after_next = False  # close the stream after acking the next batch

    @property
    def batches(self) -> list[dict[str, Any]]:
        return [batch for _, batch in self.arrivals]

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        stream = web.WebSocketResponse(
            max_msg_size=self.max_msg_size, protocols=(subprotocol(PROTOCOL_VERSION),)
        )
        await stream.prepare(request)
        self.streams_opened += 1
        async for frame in stream:
            self.arrivals.append((time.monotonic(), decode(frame.data)))
            await stream.send_bytes(encode_ack(200, None))
            if self.close_after_next:
                self.close_after_next = False
                await stream.close()
        return stream


@contextlib.asynccontextmanager
async def serving(peer: FakePeer) -> AsyncIterator[str]:
    """Serve `peer` on a free port of 127.0.0.1; yields its base URL."""
    app = web.Application()
    app.router.add_get(STREAM_PATH, peer.handle)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


@contextlib.asynccontextmanager
async def linked(app: web.Application, *, self_index: int = 0) -> AsyncIterator[Peers]:
    """Serve `app` (a node's, or a fake peer's) on a free port of 127.0.0.1 as validator 1
    ("node1"), and yield started links to it from `self_index`; stops both after."""
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    url = str(server.make_url("")).rstrip("/")
    peers = Peers(self_index=self_index, links=[PeerLink(index=1, name="node1", url=url)])
    await peers.start()
    try:
        yield peers
    finally:
        await peers.stop()
        await server.close()


class _Chunks:
    def __init__(self, body: bytes) -> None:
        self._body = body

    async def iter_chunked(self, size: int) -> AsyncIterator[bytes]:
        for start in range(0, len(self._body), size):
            yield self._body[start : start + size]


class FakeAnswer:
    """What node.peers reads of an aiohttp response (node.peers.read_capped): a 200 with `body`."""

    status = 200

    def __init__(self, body: bytes) -> None:
        self.content_length = len(body)
        self.content = _Chunks(body)
