"""The client rate limit counts per client, and a client is not one address: any local process
may send from any of 127.0.0.0/8's 16 million addresses, and an IPv6 host from any address of
its /64. Before, each such address started with a full bucket of its own, so cycling source
addresses took the limit away."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from node.api import create_app
from node.limits import ApiLimits, RateLimited, RateLimiter
from node.service import Node

BURST = 3


async def _status_from(server: TestServer, source: str) -> int:
    connector = aiohttp.TCPConnector(local_addr=(source, 0))
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.get(server.make_url("/status")) as response,
    ):
        return response.status


async def test_another_loopback_source_address_draws_on_the_same_bucket(node: Node) -> None:
    limits = ApiLimits(rate_limit_per_s=0.001, rate_limit_burst=BURST)
    server = TestServer(create_app(node, limits), host="127.0.0.1", port=0)
    await server.start_server()
    try:
        assert [await _status_from(server, "127.0.0.1") for _ in range(BURST)] == [200] * BURST
        assert await _status_from(server, "127.0.0.1") == 429
        # Before: 200 from each of 127.0.0.2, 127.0.0.3, ..., a full bucket apiece.
        assert [await _status_from(server, f"127.0.0.{n}") for n in range(2, 6)] == [429] * 4
    finally:
        await server.close()


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("2001:db8:0:7::1", "2001:db8:0:7:ffff:ffff:ffff:fffe"),  # one /64
        ("::1", "127.0.0.9"),  # loopback, either family
        ("::ffff:192.0.2.7", "192.0.2.7"),  # an IPv4 client on a dual-stack socket
    ],
)
def test_addresses_of_one_client_share_a_bucket(first: str, second: str) -> None:
    limiter = RateLimiter(rate_per_s=0.001, burst=BURST, clock=lambda: 0.0)
    limiter.take(first, BURST)
    with pytest.raises(RateLimited):
        limiter.take(second)


@pytest.mark.parametrize(
    ("first", "second"),
    [("192.0.2.7", "192.0.2.8"), ("2001:db8:0:7::1", "2001:db8:0:8::1"), ("unix", "127.0.0.1")],
)
def test_other_clients_keep_buckets_of_their_own(first: str, second: str) -> None:
    limiter = RateLimiter(rate_per_s=0.001, burst=BURST, clock=lambda: 0.0)
    limiter.take(first, BURST)
    limiter.take(second, BURST)
