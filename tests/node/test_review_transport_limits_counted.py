"""What the HTTP limits refuse is counted, as admission counts what it refuses: requests over the
rate limit (429, on any route and on a peer stream), bodies over body_bytes_max (413) and bodies
too slow (408). Before, nothing counted or logged them (the server keeps no access log), so an
operator could not tell a flood from a quiet node, nor which clients' requests were refused."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from ledger.encoding import encode
from node.api import create_app
from node.limits import ApiLimits
from node.peers import STREAM_PATH, parse_ack
from node.service import Node
from tests.node.conftest import PEER_PROTOCOL, Client


@pytest.fixture
async def client(node: Node) -> AsyncIterator[Client]:
    limits = ApiLimits(rate_limit_per_s=0.001, rate_limit_burst=2, body_timeout_s=0.3)
    async with TestClient(
        TestServer(create_app(node, limits), host="127.0.0.1"), headers=PEER_PROTOCOL
    ) as test_client:
        yield test_client


async def _metric(client: Client, reason: str) -> str | None:
    text = await (await client.get("/metrics")).text()
    prefix = f'millchain_txs_rejected_total{{reason="{reason}"}} '
    values = [line[len(prefix) :] for line in text.splitlines() if line.startswith(prefix)]
    return values[0] if values else None


async def test_requests_the_limits_refuse_are_counted(
    client: Client,
    node: Node,
) -> None:
    # The 413 takes a token of the two; the 408 (a peer route) none.
    too_large = await client.post("/tx", data=b"\x00" * (node.params.body_bytes_max + 1))
    assert too_large.status == 413

    async def slow_body() -> AsyncIterator[bytes]:
        yield b"\x00"
        await asyncio.sleep(5)  # longer than the body timeout: the node answers 408 first
        yield b"\x00"

    too_slow = await client.post("/peer/batch", data=slow_body())
    assert too_slow.status == 408
    assert [(await client.get("/status")).status for _ in range(2)] == [200, 429]
    async with client.ws_connect(STREAM_PATH) as stream:
        await stream.send_bytes(encode({"messages": [], "txs": []}))
        assert parse_ack((await stream.receive(timeout=10)).data)[0] == 429
    assert node.counters.rejected.get("rate_limited") == 2
    assert node.counters.rejected.get("body_too_large") == 1
    assert node.counters.rejected.get("body_timeout") == 1
    # Scraped through a server of its own: this client has no tokens left for /metrics.
    async with TestClient(
        TestServer(create_app(node), host="127.0.0.1"), headers=PEER_PROTOCOL
    ) as scraper:
        assert await _metric(scraper, "rate_limited") == "2.0"
        assert await _metric(scraper, "body_too_large") == "1.0"
