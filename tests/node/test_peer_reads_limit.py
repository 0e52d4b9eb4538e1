"""The peer reads (GET /peer/history, GET /peer/blocks, POST /peer/pending) answer anybody who
reaches the port, and were outside the client rate limit, which spares everything under /peer/:
a client over its limit, refused GET /blocks/1 with 429, could still read the same blocks (and
their receipts and write sets, up to 8 MiB an answer, read on the node's event loop) from
/peer/history without end. Such a read takes a token as a client's request does, unless a
validator proves it asks (node/peer_auth.py), as a peer batch does."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from ledger.encoding import encode
from node.api import create_app
from node.limits import ApiLimits
from node.peer_auth import link_headers
from node.service import Node
from tests.node.conftest import CHAIN_ID, PEER_PROTOCOL, Client, Setup

BURST = 5
READS = [
    ("GET", "/peer/history?from=1&to=200", None),
    ("GET", "/peer/blocks?from=1", None),
    ("POST", "/peer/pending", encode({"senders": [bytes(32)]})),
]


@pytest.fixture
async def client(node: Node) -> AsyncIterator[Client]:
    limits = ApiLimits(rate_limit_per_s=0.001, rate_limit_burst=BURST)
    async with TestClient(
        TestServer(create_app(node, limits), host="127.0.0.1"), headers=PEER_PROTOCOL
    ) as test_client:
        yield test_client


@pytest.mark.parametrize(("method", "path", "body"), READS, ids=["history", "blocks", "pending"])
async def test_peer_reads_from_anybody_run_out_of_tokens(
    client: Client,
    method: str,
    path: str,
    body: bytes | None,
) -> None:
    statuses = [(await client.request(method, path, data=body)).status for _ in range(2 * BURST)]
    assert statuses.count(200) == BURST, statuses
    assert statuses[BURST:] == [429] * BURST
    # And the client API refuses the same client too: the tokens are the same.
    assert (await client.get("/blocks?limit=1")).status == 429


@pytest.mark.parametrize(("method", "path", "body"), READS, ids=["history", "blocks", "pending"])
async def test_a_validator_that_proves_it_asks_is_not_limited(
    client: Client,
    node: Node,
    setup: Setup,
    method: str,
    path: str,
    body: bytes | None,
) -> None:
    for _ in range(2 * BURST):
        headers = link_headers(
            setup.validator_keys[0],
            CHAIN_ID,
            sender=0,
            receiver=node.index,
            now_ms=int(time.time() * 1000),
        )
        response = await client.request(method, path, data=body, headers=headers)
        assert response.status == 200, await response.text()
