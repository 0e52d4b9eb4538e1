"""NodeClient puts each key of a state path, and an event subject, into the URL as one encoded
segment: "#", "?" and "/" stay part of the key instead of ending or splitting the path, and keys
that URLs normalise away ('', '.', '..') are refused before any request."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from node.client import ClientError, NodeClient, PathSegmentError, wait_until_up
from tests.node.conftest import Client


@pytest.fixture
async def node_client(client: Client) -> AsyncIterator[NodeClient]:
    async with NodeClient(str(client.make_url(""))) as node_client:
        yield node_client


async def test_a_plain_key_reads_its_record(node_client: NodeClient) -> None:
    record = await node_client.query("identity", ["admin"])
    assert record["name"] == "admin"


@pytest.mark.parametrize("key", ["admin#2", "admin?x", "admin/roles", "admin%2Froles"])
async def test_a_key_with_url_syntax_names_no_other_record(
    node_client: NodeClient, key: str
) -> None:
    with pytest.raises(ClientError) as caught:
        await node_client.query("identity", [key])
    assert caught.value.status == 404
    assert repr(key) in str(caught.value)


@pytest.mark.parametrize("key", ["", ".", ".."])
async def test_a_key_a_url_normalises_away_is_refused(node_client: NodeClient, key: str) -> None:
    with pytest.raises(PathSegmentError, match="cannot be sent as a key"):
        await node_client.query("identity", [key])
    with pytest.raises(PathSegmentError):
        await node_client.query(key, [])


async def test_an_event_subject_is_sent_whole(node_client: NodeClient) -> None:
    assert await node_client.events("item:steel@main#2?x") == []
    with pytest.raises(PathSegmentError):
        await node_client.events("..")


async def test_the_api_keeps_an_encoded_slash_inside_its_key(
    client: Client,
) -> None:
    response = await client.get("/state/identity/admin%2Froles")
    assert response.status == 404
    assert "admin/roles" in (await response.json())["error"]
    response = await client.get("/state/identity/admin")
    assert response.status == 200


async def test_waiting_for_nodes_refuses_a_port_that_answers_as_another_node() -> None:
    async def status(request: web.Request) -> web.Response:
        return web.json_response({"name": "node7"})

    app = web.Application()
    app.router.add_get("/status", status)
    async with TestServer(app) as server:
        url = str(server.make_url("")).rstrip("/")
        assert (await wait_until_up([url], 5, names={url: "node7"}))[url]["name"] == "node7"
        with pytest.raises(ClientError, match="answers as 'node7', not as node2"):
            await wait_until_up([url], 5, names={url: "node2"})

        def gave_up() -> None:
            raise RuntimeError("the node exited")

        with pytest.raises(RuntimeError, match="exited"):
            await wait_until_up([url], 5, check=gave_up)
