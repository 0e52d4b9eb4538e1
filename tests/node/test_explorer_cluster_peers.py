"""GET /explorer/cluster asks every other validator's /status (up to 1 s each) and keeps the
answer 250 ms; a validator may be slow, down or faulty.

- Requests that arrived while no answer was kept each asked every validator again: any client
  (or a few open explorer tabs while a peer is slow or down, when every ask takes the whole
  second and the kept answer is always stale) made the node open n - 1 outbound requests per
  request it sent. Concurrent requests now share one round of asks.
- What a faulty validator answers must cost this node no more than an honest status does, and
  must not take the page down for everybody. Its answer was read whole, of any size (every
  other read of a peer's answer is capped: node/peers.py read_capped), and a status nested
  deeper than the JSON decoder goes raised RecursionError through the handler: a 500 for every
  client of every honest node.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from node.api import Handler, create_app
from node.service import Node
from tests.node.conftest import Client, Setup, backup_node, make_setup

CONCURRENT_REQUESTS = 8
DEADLINE_S = 10.0
# Far past what an honest /status holds (a few KiB: its peers, stages and counters).
HUGE_STATUS_BYTES = 32 * 1024 * 1024
HUGE_STATUS = b'{"name": "' + b"x" * HUGE_STATUS_BYTES + b'"}'
DEEP_STATUS = b"[" * 100_000

StatusHandler = Callable[[web.Request], Awaitable[web.Response]]


@contextlib.asynccontextmanager
async def _node_whose_peers_answer(status: StatusHandler, tmp_path: Path) -> AsyncIterator[Node]:
    """Validator 1, started, whose three peers are one server answering /status with `status`."""
    fake = web.Application()
    fake.router.add_get("/status", status)
    server = TestServer(fake, host="127.0.0.1")
    await server.start_server()
    try:
        assert server.port is not None
        setup = make_setup()
        validators = tuple(
            validator if index == 1 else dataclasses.replace(validator, port=server.port)
            for index, validator in enumerate(setup.genesis.validators)
        )
        genesis = dataclasses.replace(setup.genesis, validators=validators)
        node = backup_node(
            Setup(
                genesis=genesis, validator_keys=setup.validator_keys, identities=setup.identities
            ),
            tmp_path / "chain.sqlite",
        )
        await node.start()
        try:
            yield node
        finally:
            await node.stop()
    finally:
        await server.close()


def _answering(body: bytes) -> StatusHandler:
    async def status(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    return status


async def test_concurrent_cluster_requests_share_one_round_of_asks(tmp_path: Path) -> None:
    release = asyncio.Event()
    asked = arrived = 0

    async def held_status(request: web.Request) -> web.Response:
        nonlocal asked
        asked += 1
        await release.wait()
        return web.json_response({"name": "peer", "height": 0})

    @web.middleware
    async def count(request: web.Request, handler: Handler) -> web.StreamResponse:
        nonlocal arrived
        if request.path == "/explorer/cluster":
            arrived += 1
        return await handler(request)

    async with _node_whose_peers_answer(held_status, tmp_path) as node:
        app = create_app(node)
        app.middlewares.append(count)  # innermost: the handler runs on from here without a pause
        client: Client
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            requests = [
                asyncio.ensure_future(client.get("/explorer/cluster"))
                for _ in range(CONCURRENT_REQUESTS)
            ]
            try:
                deadline = time.monotonic() + DEADLINE_S
                while arrived < CONCURRENT_REQUESTS or asked < 3:
                    assert time.monotonic() < deadline, (arrived, asked)
                    await asyncio.sleep(0.01)
            finally:
                release.set()
            for response in await asyncio.gather(*requests):
                assert response.status == 200
                assert len((await response.json())["nodes"]) == 4
    # Three peers, each asked once for all the requests: not once per request.
    assert asked == 3, f"{asked} /status asks for {CONCURRENT_REQUESTS} requests"


async def _other_rows(body: bytes, tmp_path: Path) -> list[dict[str, object]]:
    """The rows /explorer/cluster shows for the peers when all of them answer `body`."""
    async with (
        _node_whose_peers_answer(_answering(body), tmp_path) as node,
        TestClient(TestServer(create_app(node), host="127.0.0.1")) as client,
    ):
        response = await client.get("/explorer/cluster")
        assert response.status == 200, (await response.text())[:200]
        rows = [row for row in (await response.json())["nodes"] if not row["self"]]
    assert len(rows) == 3
    return rows


async def test_a_peer_status_of_any_size_is_not_read_whole(tmp_path: Path) -> None:
    for row in await _other_rows(HUGE_STATUS, tmp_path):
        assert row["alive"] is False, {key: str(value)[:80] for key, value in row.items()}
        assert row["error"]


async def test_a_peer_status_nested_too_deep_does_not_take_the_page_down(tmp_path: Path) -> None:
    assert [row["alive"] for row in await _other_rows(DEEP_STATUS, tmp_path)] == [False] * 3
