"""Nodes of different protocol versions (node/protocol.py) refuse each other up front.

A node answers a peer request that states no version, or another, with 409 naming both, and
takes nothing of it. A node whose link a peer refuses, or takes as a node from before versions
were stated does, marks the link incompatible with the peer's version in its status, logs one
ERROR for it however often the link is retried, and links once the peer speaks its version.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from ledger.encoding import encode
from node.api import create_app
from node.peers import STREAM_PATH, Peers
from node.protocol import PROTOCOL_HEADER, PROTOCOL_VERSION, REFUSED_STATUS
from node.service import Node
from tests.node.conftest import PEER_PROTOCOL, Client, Setup, steel_received
from tests.node.fake_peer import FakePeer, linked

OTHER_VERSIONS = [None, "1", str(PROTOCOL_VERSION + 1), "two"]
PEER_READS = [
    ("GET", "/peer/history?from=1&to=10", None),
    ("GET", "/peer/blocks?from=1", None),
    ("POST", "/peer/pending", encode({"senders": [bytes(32)]})),
]


@pytest.fixture
async def bare_client(node: Node) -> AsyncIterator[Client]:
    """A client of `node`'s app that states no protocol version unless a request does."""
    async with TestClient(TestServer(create_app(node))) as client:
        yield client


def _headers(version: str | None) -> dict[str, str]:
    return {} if version is None else {PROTOCOL_HEADER: version}


def _fingerprint(node: Node) -> tuple[object, ...]:
    head = node.storage.head()
    return (
        head.height,
        head.hash,
        len(node.mempool),
        node.admission_backlog,
        node.counters.messages_received,
    )


def _names_both_versions(message: str, version: str | None) -> None:
    assert f"this node speaks millchain protocol {PROTOCOL_VERSION}" in message, message
    stated = {None: "protocol 1 (states no version", "two": "an unreadable version ('two')"}
    assert stated.get(version, f"protocol {version}") in message, message


async def _until(check: Callable[[], bool], what: str, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("version", OTHER_VERSIONS)
async def test_a_stream_of_another_version_is_refused_and_changes_nothing(
    bare_client: Client, node: Node, setup: Setup, version: str | None
) -> None:
    before = _fingerprint(node)
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await bare_client.ws_connect(STREAM_PATH, headers=_headers(version))
    assert refused.value.status == REFUSED_STATUS
    assert refused.value.headers is not None
    assert refused.value.headers[PROTOCOL_HEADER] == str(PROTOCOL_VERSION)
    # The same route asked plainly shows the message; a batch of a valid transaction on the
    # other peer route is refused as well, and nothing of it is admitted.
    response = await bare_client.get(STREAM_PATH, headers=_headers(version))
    assert response.status == REFUSED_STATUS
    _names_both_versions((await response.json())["error"], version)
    batch = encode({"messages": [], "txs": [steel_received(setup).to_wire()]})
    response = await bare_client.post("/peer/batch", data=batch, headers=_headers(version))
    assert response.status == REFUSED_STATUS
    assert _fingerprint(node) == before
    assert node.counters.rejected["peer_protocol"] == 3


async def test_the_same_batch_of_this_version_is_taken(
    client: Client, setup: Setup, node: Node
) -> None:
    batch = encode({"messages": [], "txs": [steel_received(setup).to_wire()]})
    response = await client.post("/peer/batch", data=batch)
    assert response.status == 200
    await _until(lambda: len(node.mempool) == 1, "the transaction's admission")
    assert "peer_protocol" not in node.counters.rejected


@pytest.mark.parametrize(("method", "path", "body"), PEER_READS)
async def test_catch_up_reads_of_another_version_are_refused(
    bare_client: Client, method: str, path: str, body: bytes | None
) -> None:
    for version in OTHER_VERSIONS:
        response = await bare_client.request(method, path, data=body, headers=_headers(version))
        assert response.status == REFUSED_STATUS, (version, await response.text())
        _names_both_versions((await response.json())["error"], version)
    response = await bare_client.request(method, path, data=body, headers=PEER_PROTOCOL)
    assert response.status == 200, await response.text()


async def test_refusals_from_one_address_are_logged_once(
    bare_client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="node.api")
    for _ in range(5):
        assert (await bare_client.get(STREAM_PATH)).status == REFUSED_STATUS
    refusals = [r for r in caplog.records if "refused GET /peer/stream" in r.getMessage()]
    assert len(refusals) == 1, [r.getMessage() for r in refusals]


class _OtherVersionPeer:
    """A peer of another version: it refuses streams as a node of `version` does (409 with its
    version), or with `version` 1 takes them without a subprotocol, as a node from before
    versions were stated; once `upgraded`, it is a peer of this version."""

    def __init__(self, version: int) -> None:
        self.version = version
        self.upgraded = False
        self.attempts = 0
        self.current = FakePeer()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.attempts += 1
        if self.upgraded:
            return await self.current.handle(request)
        if self.version == 1:
            stream = web.WebSocketResponse()
            await stream.prepare(request)
            async for _ in stream:
                pass
            return stream
        return web.json_response(
            {"error": f"this node speaks millchain protocol {self.version}"},
            status=REFUSED_STATUS,
            headers={PROTOCOL_HEADER: str(self.version)},
        )


@contextlib.asynccontextmanager
async def _linked_to(peer: _OtherVersionPeer) -> AsyncIterator[Peers]:
    app = web.Application()
    app.router.add_get(STREAM_PATH, peer.handle)
    async with linked(app) as peers:
        yield peers


@pytest.mark.parametrize("version", [1, PROTOCOL_VERSION + 1])
async def test_a_link_to_a_peer_of_another_version_says_so_once_and_retries(
    version: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="node.peers")
    peer = _OtherVersionPeer(version)
    async with _linked_to(peer) as peers:
        link = peers.links[1]
        peers.send(1, b"a consensus message")
        peers.forward_txs_to(1, [b"a transaction"])
        await _until(lambda: link.failures >= 6, "several refused tries")
        status = peers.status()[0]
        assert status["up"] is False
        assert status["protocol_incompatible"] is True
        assert status["peer_protocol"] == version
        errors = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert len(errors) == 1, [r.getMessage() for r in errors]
        assert f"speaks protocol {version}" in errors[0].getMessage()
        assert f"this node speaks protocol {PROTOCOL_VERSION}" in errors[0].getMessage()
        # Still retried with the back-off, and linked once the peer is upgraded.
        peer.upgraded = True
        await _until(lambda: link.sent_batches == 2, "both channels' batches acked")
        assert len(peer.current.batches) == 2
        status = peers.status()[0]
        assert status["up"] is True
        assert status["protocol_incompatible"] is False
        assert status["peer_protocol"] == PROTOCOL_VERSION
        assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == 1


async def test_a_link_between_two_nodes_of_this_version_shows_it(node: Node) -> None:
    async with linked(create_app(node)) as peers:
        peers.send(1, b"a consensus message")
        await _until(lambda: peers.links[1].sent_batches == 1, "the batch")
        status = peers.status()[0]
        assert (status["peer_protocol"], status["protocol_incompatible"]) == (
            PROTOCOL_VERSION,
            False,
        )
    assert "peer_protocol" not in node.counters.rejected


async def test_status_names_the_nodes_protocol_version(client: Client) -> None:
    status = await (await client.get("/status")).json()
    assert status["protocol_version"] == PROTOCOL_VERSION
    assert all(peer["protocol_incompatible"] is False for peer in status["peers"])
