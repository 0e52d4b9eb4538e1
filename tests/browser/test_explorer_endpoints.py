"""The explorer's endpoints on an in-process node (no browser): the page and its assets, the
cluster as the node sees it, the event stream, view-change history and the CORS header; and
`millchain explorer` without a running cluster."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from click.testing import CliRunner

from cli.explorer_cmd import explorer
from cli.layout import init_cluster
from ledger.block import Block
from ledger.encoding import decode, encode
from ledger.tx import Transaction
from node import explorer as explorer_module
from node.api import create_app
from node.explorer import (
    EXPLORER_KEY,
    OBSERVED_VIEWS_MAX,
    STATUS_FIELDS,
    Explorer,
    _peer_status,
    _stored_header,
    chain_views,
    setup_explorer,
)
from node.service import Node
from node.stages import STAGES
from node.storage import Storage
from tests.browser.blocks import commit_empty_blocks
from tests.node.conftest import CHAIN_ID, make_setup

Client = TestClient[web.Request, web.Application]


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    setup = make_setup()
    node = Node(
        name="node1",
        genesis=setup.genesis,
        keys=setup.validator_keys[1],  # peers on port 9 are unreachable: they show as down
        storage=Storage(tmp_path / "chain.sqlite"),
    )
    await node.start()
    try:
        yield node
    finally:
        await node.stop()


@pytest.fixture
async def client(node: Node) -> AsyncIterator[Client]:
    app = create_app(node)
    setup_explorer(app)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


async def test_serves_the_page_and_its_assets(client: Client) -> None:
    page = await client.get("/explorer/")
    assert page.status == 200
    assert "millchain explorer" in await page.text()
    for asset in ("app.js", "chain.js", "factory.js", "chart.js", "util.js", "explorer.css"):
        response = await client.get(f"/explorer/static/{asset}")
        assert response.status == 200, asset
    script = await client.get("/explorer/static/app.js")
    assert "javascript" in script.headers["Content-Type"]  # module scripts need a JS type
    root = await client.get("/", allow_redirects=False)
    assert (root.status, root.headers["Location"]) == (302, "/explorer/")


async def test_info_lists_the_validators_of_the_genesis(client: Client, node: Node) -> None:
    info = await (await client.get("/explorer/info")).json()
    assert info["chain_id"] == CHAIN_ID
    assert info["node"] == {"name": "node1", "index": 1, "observer": False}
    assert [v["name"] for v in info["validators"]] == ["node0", "node1", "node2", "node3"]
    assert info["validators"][2]["url"] == node.genesis.validators[2].url


async def test_cluster_shows_this_node_up_and_unreachable_validators_down(client: Client) -> None:
    body = await (await client.get("/explorer/cluster")).json()
    rows = {row["name"]: row for row in body["nodes"]}
    assert list(rows) == ["node0", "node1", "node2", "node3"]
    assert rows["node1"]["alive"] and rows["node1"]["self"]
    assert rows["node1"]["height"] == 0
    assert rows["node1"]["primary_name"] == "node0"
    # Where a block's time goes, as /status has it; nothing committed here yet.
    assert set(rows["node1"]["stages"]) == set(STAGES)
    assert all(stage["count"] == 0 for stage in rows["node1"]["stages"].values())
    for name in ("node0", "node2", "node3"):
        assert rows[name]["alive"] is False
        assert rows[name]["error"]


async def test_event_stream_starts_with_the_head_and_follows_commits(
    client: Client, node: Node
) -> None:
    response = await client.get("/explorer/events")
    assert response.headers["Content-Type"] == "text/event-stream"

    async def next_head() -> dict[str, object]:
        while True:
            line = (await response.content.readline()).decode()
            if line.startswith("data: "):
                head: dict[str, object] = json.loads(line.removeprefix("data: "))
                return head

    first = await asyncio.wait_for(next_head(), 5)
    assert (first["height"], first["view"]) == (0, 0)
    commit_empty_blocks(node, [0, 0])
    following = await asyncio.wait_for(next_head(), 5)
    while following["height"] != 2:
        following = await asyncio.wait_for(next_head(), 5)
    assert following["head"] == node.storage.head().hash.hex()
    response.close()


async def test_shutdown_ends_open_event_streams(node: Node) -> None:
    app = create_app(node)
    setup_explorer(app)
    client = TestClient(TestServer(app))
    await client.start_server()
    response = await client.get("/explorer/events")
    await response.content.readline()
    # Without ending the stream, the server would wait for it for its whole shutdown timeout.
    await asyncio.wait_for(client.close(), 5)


async def test_views_find_the_first_block_of_each_view(client: Client, node: Node) -> None:
    commit_empty_blocks(node, [0, 0, 0, 1, 1, 3, 3, 3, 3, 3, 3, 4])
    body = await (await client.get("/explorer/views")).json()
    assert [(v["view"], v["first_height"]) for v in body["blocks"]] == [
        (0, 1),
        (1, 4),
        (3, 6),
        (4, 12),
    ]
    assert body["blocks"][1]["proposer"] == 1
    assert body["validators"][3] == "node3"
    assert body["observed"][0]["kind"] == "start"
    assert body["node"] == []  # this node entered no view itself


async def test_observed_views_keep_the_newest(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    explorer = client.app[EXPLORER_KEY]
    seen = explorer.snapshot()
    views = itertools.count(1)  # the watcher task may look too: never runs out
    monkeypatch.setattr(Explorer, "snapshot", lambda self: {**seen, "view": next(views)})
    for _ in range(OBSERVED_VIEWS_MAX + 4):
        explorer.watch_once()
    body = await (await client.get("/explorer/views")).json()
    observed = [entry["view"] for entry in body["observed"]]
    assert len(observed) == OBSERVED_VIEWS_MAX
    assert observed[-1] >= OBSERVED_VIEWS_MAX + 4
    assert observed == list(range(observed[-1] - OBSERVED_VIEWS_MAX + 1, observed[-1] + 1))


async def test_view_search_decodes_few_headers(client: Client, node: Node) -> None:
    commit_empty_blocks(node, [0] * 300 + [1] * 300)
    explorer = client.app[EXPLORER_KEY]
    found, truncated = chain_views(explorer, 600)
    assert [(v["view"], v["first_height"]) for v in found] == [(0, 1), (1, 301)]
    assert not truncated
    assert len(explorer.header_views) < 40


async def test_a_later_search_looks_only_above_the_head_the_last_one_reached(
    client: Client, node: Node
) -> None:
    commit_empty_blocks(node, [0] * 300 + [1] * 300)
    explorer = client.app[EXPLORER_KEY]
    chain_views(explorer, 600)
    commit_empty_blocks(node, [1] * 100 + [2] * 200, start_ms=1_700_000_100_000)
    read: list[int] = []
    block_range = node.storage.block_range

    def counted(start: int, end: int) -> list[tuple[int, bytes, bytes]]:
        read.append(start)
        return block_range(start, end)

    node.storage.block_range = counted  # type: ignore[method-assign]
    found, truncated = chain_views(explorer, 900)
    assert [(v["view"], v["first_height"]) for v in found] == [(0, 1), (1, 301), (2, 701)]
    assert not truncated
    assert min(read) > 600 and len(read) < 20  # a bisection of 600..900 only
    assert len(explorer.header_views) == 1


async def test_a_search_cut_short_finds_the_newest_views_first(
    client: Client, node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    commit_empty_blocks(node, [view for view in range(40) for _ in range(5)])
    monkeypatch.setattr(explorer_module, "VIEW_SEARCH_DECODES_MAX", 30)
    found, truncated = chain_views(client.app[EXPLORER_KEY], 200)
    assert truncated
    assert found[-1]["view"] == 39 and found[-1]["first_height"] == 196
    found, truncated = chain_views(client.app[EXPLORER_KEY], 200)  # goes on where it stopped
    while truncated:
        found, truncated = chain_views(client.app[EXPLORER_KEY], 200)
    assert [v["first_height"] for v in found] == list(range(1, 200, 5))


def test_a_stored_blocks_header_is_read_without_its_transactions() -> None:
    setup = make_setup()
    txs = [
        Transaction.create(
            setup.identities["supplier"],
            chain_id=CHAIN_ID,
            nonce=n,
            contract="inventory",
            method="receive",
            args={"item": "steel", "location": "main", "qty": 1},
        )
        for n in range(3)
    ]
    block = Block.build(
        chain_id=CHAIN_ID,
        height=1,
        prev_hash=bytes(32),
        state_height=0,
        state_digest=bytes(32),
        proposer=2,
        view=7,
        timestamp_ms=1_700_000_000_000,
        txs=txs,
    )
    assert _stored_header(block.to_wire()) == decode(block.to_wire())["header"]
    with pytest.raises(ValueError, match="not a map of its header"):
        _stored_header(encode({"txs": []}))


async def test_public_json_allows_other_origins_but_admin_does_not(client: Client) -> None:
    status = await client.get("/status")
    assert status.headers["Access-Control-Allow-Origin"] == "*"
    admin = await client.get("/admin/pause")
    assert "Access-Control-Allow-Origin" not in admin.headers


async def test_setup_is_idempotent(node: Node) -> None:
    app = create_app(node)
    setup_explorer(app)
    setup_explorer(app)
    assert len([r for r in app.router.resources() if r.canonical == "/explorer/cluster"]) == 1


def test_explorer_command_says_when_no_node_answers(tmp_path: Path) -> None:
    init_cluster(tmp_path / "cluster", nodes=4)
    result = CliRunner().invoke(explorer, ["--dir", str(tmp_path / "cluster"), "--no-open"])
    assert result.exit_code == 1
    assert "no node answered" in result.output
    assert "millchain cluster up" in result.output


@pytest.mark.parametrize(
    "status",
    [
        [],
        "up",
        {"counters": [1]},
        {"counters": "x", "stages": ["commit"]},
        {
            "height": "9",
            "view": True,
            "is_primary": 1,
            "mempool": 1.5,
            "name": "n" * 10_000,
            "stages": {"commit": {"count": 3, "p50_ms": "4.0", "p90_ms": 5}, "bogus": {}},
            "counters": {"view_changes": None, "txs_committed": 12},
        },
    ],
    ids=["list", "text", "counters-list", "counters-text", "fields-of-other-types"],
)
async def test_a_peer_status_of_other_types_is_shown_as_unknown_not_a_failure(
    status: object,
) -> None:
    # A faulty validator's /status is whatever it sends; the cluster view must still answer.
    async def answer(request: web.Request) -> web.Response:
        return web.json_response(status)

    app = web.Application()
    app.router.add_get("/status", answer)
    async with TestClient(TestServer(app)) as peer, aiohttp.ClientSession() as session:
        url = str(peer.make_url("")).rstrip("/")
        row = await _peer_status(session, 0, "node0", url)

    json.dumps(row)  # what /explorer/cluster sends
    assert (row["index"], row["name"]) == (0, "node0")
    if not isinstance(status, dict):
        assert row["alive"] is False and "/status answered a" in row["error"]
        return
    assert row["alive"] is True
    for key, kinds in STATUS_FIELDS.items():
        assert row[key] is None or isinstance(row[key], kinds), key
    assert isinstance(row["stages"], dict)
    for timing in row["stages"].values():
        assert all(v is None or type(v) in (int, float) for v in timing.values())
    if "height" in status:  # the last case, field by field
        assert (row["height"], row["view"], row["is_primary"], row["mempool"]) == (None,) * 4
        assert row["stages"] == {"commit": {"count": 3, "p50_ms": None, "p90_ms": 5}}
        assert (row["view_changes"], row["txs_committed"]) == (None, 12)
