"""NodeClient turns whatever a node answers into its answer or a ClientError. An error answer
that is not JSON (aiohttp's plain-text 500, a proxy's HTML 502) escaped as a JSONDecodeError:
the CLI printed a traceback instead of the status, and wait_committed_anywhere, which leaves out
a node that does not answer, gave up on every node the moment one answered that way."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from node.client import ClientError, NodeClient, wait_committed_anywhere

TX_HASH = "ab" * 32
DEADLINE_S = 10.0


def _waits_per_node() -> list[asyncio.Task[Any]]:
    """The tasks wait_committed_anywhere still runs, one a node it asks."""
    return [
        task
        for task in asyncio.all_tasks()
        if getattr(task.get_coro(), "__qualname__", "") == "wait_committed_anywhere.<locals>.ask"
    ]


async def _serve(app: web.Application) -> TestServer:
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server


@pytest.fixture
async def broken_and_good() -> AsyncIterator[tuple[str, str]]:
    """A node whose /tx answers a plain-text 500, and one that answers the commit once the
    broken one has answered."""
    broken_answered = asyncio.Event()

    async def broken(request: web.Request) -> web.Response:
        broken_answered.set()
        return web.Response(
            status=500, text="500 Internal Server Error\n\nServer got itself in trouble"
        )

    async def good(request: web.Request) -> web.Response:
        # Once the client is done with the broken node's answer: only one of the waits that
        # wait_committed_anywhere runs (one a node) is left.
        await broken_answered.wait()
        deadline = time.monotonic() + DEADLINE_S
        while len(_waits_per_node()) > 1:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        return web.json_response({"status": "committed", "settled": True, "height": 1})

    servers = []
    for handler in (broken, good):
        app = web.Application()
        app.router.add_get("/tx/{hash}", handler)
        servers.append(await _serve(app))
    try:
        broken_url, good_url = (str(server.make_url("")).rstrip("/") for server in servers)
        yield broken_url, good_url
    finally:
        broken_answered.set()
        for server in servers:
            await server.close()


async def test_an_error_answer_that_is_not_json_is_a_client_error(
    broken_and_good: tuple[str, str],
) -> None:
    broken_url, _ = broken_and_good
    async with NodeClient(broken_url) as client:
        with pytest.raises(ClientError) as caught:
            await client.tx(TX_HASH)
    assert caught.value.status == 500
    assert "500" in str(caught.value)


async def test_waiting_on_several_nodes_outlasts_one_that_answers_garbage(
    broken_and_good: tuple[str, str],
) -> None:
    answer = await asyncio.wait_for(
        wait_committed_anywhere(list(broken_and_good), TX_HASH, timeout_s=5), timeout=30
    )
    assert answer["status"] == "committed"
