"""GET /state/inventory?after=CURSOR: one page of stock records over HTTP (at most
NEWEST_QUERY_MAX, whether more follow, the cursor to go on from), while GET /state/inventory,
which `millchain query inventory` reads, still answers every record. The cursor rides in the
query string because item names are path segments: an item may be called "after" or "newest"."""

from __future__ import annotations

from typing import Any

import pytest

from contracts.contract import NEWEST_QUERY_MAX
from ledger.tx import Transaction
from node.client import NodeClient
from node.service import Node
from tests.node.conftest import Client, Setup, certify, next_block
from tests.node.test_openapi import check_answer


def _receive(node: Node, setup: Setup, items: list[str]) -> None:
    """Commit one block in which the supplier receives one unit of each item at "main"."""
    _receive_at(node, setup, [(item, "main") for item in items])


def _receive_at(node: Node, setup: Setup, pairs: list[tuple[str, str]]) -> None:
    """Commit one block in which the supplier receives one unit of each (item, location)."""
    txs = [
        Transaction.create(
            setup.identities["supplier"],
            chain_id=setup.genesis.chain_id,
            nonce=nonce,
            contract="inventory",
            method="receive",
            args={"item": item, "location": location, "qty": 1},
        )
        for nonce, (item, location) in enumerate(pairs)
    ]
    block = next_block(setup, node.storage, txs)
    node._execute(block, certify(setup, block))


def _items(count: int) -> list[str]:
    return [f"item-{n:04d}" for n in range(count)]


async def _get(client: Client, path: str) -> tuple[int, dict[str, Any]]:
    response = await client.get(path)
    raw = await response.read()
    check_answer("GET", path, response.status, response.headers, raw)
    body: dict[str, Any] = await response.json()
    return response.status, body


def _records(page: dict[str, Any]) -> list[str]:
    return [
        f"{item}/{location}" for item, locations in page["items"].items() for location in locations
    ]


async def _whole(client: Client) -> dict[str, Any]:
    status, body = await _get(client, "/state/inventory")
    assert status == 200
    value: dict[str, Any] = body["value"]
    return value


async def test_a_page_answers_the_first_records_and_says_more_follow(
    client: Client,
    node: Node,
    setup: Setup,
) -> None:
    items = _items(NEWEST_QUERY_MAX + 1)
    _receive(node, setup, items)
    status, body = await _get(client, "/state/inventory?after=")
    assert status == 200
    page = body["value"]
    assert _records(page) == [f"{item}/main" for item in items[:NEWEST_QUERY_MAX]]
    assert page["more"] is True
    assert page["next_after"] == f"{items[NEWEST_QUERY_MAX - 1]}/main"
    assert page["items"][items[0]] == (await _whole(client))[items[0]]


async def test_the_cursor_continues_where_the_page_stopped(
    client: Client,
    node: Node,
    setup: Setup,
) -> None:
    items = _items(NEWEST_QUERY_MAX + 1)
    _receive(node, setup, items)
    _, first = await _get(client, "/state/inventory?after=")
    status, second = await _get(client, f"/state/inventory?after={first['value']['next_after']}")
    assert status == 200
    assert second["value"] == {
        "items": {items[-1]: (await _whole(client))[items[-1]]},
        "more": False,
        "next_after": None,
    }


async def test_exactly_a_page_of_records_has_nothing_more(
    client: Client,
    node: Node,
    setup: Setup,
) -> None:
    _receive(node, setup, _items(NEWEST_QUERY_MAX))
    _, body = await _get(client, "/state/inventory?after=")
    assert len(_records(body["value"])) == NEWEST_QUERY_MAX
    assert body["value"]["more"] is False
    assert body["value"]["next_after"] is None


async def test_the_whole_list_still_answers_every_record(
    client: Client,
    node: Node,
    setup: Setup,
) -> None:
    items = _items(NEWEST_QUERY_MAX + 1)
    _receive(node, setup, items)
    whole = await _whole(client)
    assert list(whole) == items
    # What `millchain query inventory` and `millchain inventory show` read.
    async with NodeClient(str(client.make_url(""))) as node_client:
        assert await node_client.query("inventory", []) == whole


async def test_an_item_named_after_reads_as_an_item(
    client: Client,
    node: Node,
    setup: Setup,
) -> None:
    _receive(node, setup, ["after", "newest"])
    status, body = await _get(client, "/state/inventory/after")
    assert status == 200
    assert body["value"]["main"]["on_hand"] == 1
    _, body = await _get(client, "/state/inventory?after=after/main")
    assert _records(body["value"]) == ["newest/main"]


async def test_one_items_locations_page_by_location(
    client: Client,
    node: Node,
    setup: Setup,
) -> None:
    locations = [f"bay-{n:04d}" for n in range(NEWEST_QUERY_MAX + 1)]
    _receive_at(node, setup, [("steel", location) for location in locations])
    status, first = await _get(client, "/state/inventory/steel?after=")
    assert status == 200
    assert list(first["value"]["locations"]) == locations[:NEWEST_QUERY_MAX]
    assert first["value"]["more"] is True
    cursor = first["value"]["next_after"]
    assert cursor == locations[NEWEST_QUERY_MAX - 1]
    _, second = await _get(client, f"/state/inventory/steel?after={cursor}")
    whole = (await _whole(client))["steel"]
    assert second["value"] == {
        "locations": {locations[-1]: whole[locations[-1]]},
        "more": False,
        "next_after": None,
    }
    assert {**first["value"]["locations"], **second["value"]["locations"]} == whole


@pytest.mark.parametrize(
    ("path", "status", "fragment"),
    [
        ("/state/inventory?after=steel", 400, "after must be an item/location"),
        ("/state/inventory?after=steel/main/extra", 400, "after must be an item/location"),
        ("/state/inventory?after=%2Fmain", 400, "after must be an item/location"),
        ("/state/inventory?after=" + "x" * 300 + "/main", 400, "after must be an item/location"),
        ("/state/inventory?after=st%C3%A4el/main", 400, "after must be an item/location"),
        ("/state/inventory?after=&after=steel/main", 400, "after must be given once"),
        ("/state/inventory/steel?after=main/x", 400, "after must be a location"),
        ("/state/inventory/steel/main?after=", 400, "read one stock record"),
        ("/state/inventory/zinc?after=", 404, "no stock records for zinc"),
        ("/state/orders?after=", 400, "contract orders pages no listing"),
        ("/state/nosuch?after=", 404, "unknown contract"),
    ],
)
async def test_bad_page_requests_get_a_clear_error_and_change_nothing(
    client: Client,
    node: Node,
    setup: Setup,
    path: str,
    status: int,
    fragment: str,
) -> None:
    _receive(node, setup, ["steel"])
    head_before = node.storage.head()
    got, body = await _get(client, path)
    assert got == status, body
    assert fragment in body["error"]
    assert node.storage.head() == head_before
    assert len(node.mempool) == 0
