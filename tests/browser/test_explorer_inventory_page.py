"""The inventory tab in headless Chromium against a real in-process node: it shows the first page
of stock records (GET /state/inventory?after=) and says when there are more, instead of reading
every record a supplier ever made.

Blocks are built by hand and committed through the node's own path for executed blocks."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from contracts.contract import NEWEST_QUERY_MAX
from ledger.tx import Transaction
from node.api import create_app
from node.explorer import setup_explorer
from node.service import Node
from node.storage import Storage
from tests.browser.cdp import Page, chromium_page, find_chromium
from tests.node.conftest import Setup, certify, make_setup, next_block

pytestmark = [
    pytest.mark.slow,
    pytest.mark.integration,
    pytest.mark.skipif(find_chromium() is None, reason="no Chromium on PATH"),
]

ROWS = "document.querySelectorAll('#inventory-table tbody tr').length"
NOTE = "document.getElementById('inventory-shown')"


@pytest.fixture
def setup() -> Setup:
    return make_setup()


@pytest.fixture
async def served(setup: Setup, tmp_path: Path) -> AsyncIterator[tuple[Node, str]]:
    """Validator 1 (a backup whose peers do not answer: nothing moves unless a test commits)
    serving the explorer; the node and its base URL."""
    node = Node(
        name="node1",
        genesis=setup.genesis,
        keys=setup.validator_keys[1],
        storage=Storage(tmp_path / "chain.sqlite"),
    )
    await node.start()
    app = create_app(node)
    setup_explorer(app)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield node, str(server.make_url("")).rstrip("/")
    finally:
        await server.close()
        await node.stop()


def _receive_items(node: Node, setup: Setup, count: int) -> None:
    """Commit one block in which the supplier receives one unit of `count` distinct items."""
    txs = [
        Transaction.create(
            setup.identities["supplier"],
            chain_id=setup.genesis.chain_id,
            nonce=nonce,
            contract="inventory",
            method="receive",
            args={"item": f"item-{nonce:04d}", "location": "main", "qty": 1},
        )
        for nonce in range(count)
    ]
    block = next_block(setup, node.storage, txs)
    node._execute(block, certify(setup, block))


async def _inventory_tab(page: Page, url: str, rows: int) -> None:
    await page.navigate(f"{url}/explorer/#inventory")
    await page.wait_for(f"{ROWS} === {rows}", what=f"{rows} inventory rows")
    errors = [line for line in page.console if line.startswith("exception")]
    assert not errors, json.dumps(errors)


async def test_the_tab_shows_the_first_page_and_says_there_are_more(
    served: tuple[Node, str], setup: Setup
) -> None:
    node, url = served
    _receive_items(node, setup, NEWEST_QUERY_MAX + 1)
    chromium = find_chromium()
    assert chromium is not None
    async with chromium_page(chromium) as page:
        await _inventory_tab(page, url, NEWEST_QUERY_MAX)
        assert await page.evaluate(f"{NOTE}.hidden") is False
        note: str = await page.evaluate(f"{NOTE}.textContent")
        assert f"first {NEWEST_QUERY_MAX} stock records" in note and "more" in note, note
        last = f"item-{NEWEST_QUERY_MAX - 1:04d}"
        assert await page.evaluate(
            f"!!document.querySelector('#inventory-table tr[data-item=\"{last}\"]')"
        )


async def test_the_tab_says_nothing_more_when_it_shows_everything(
    served: tuple[Node, str], setup: Setup
) -> None:
    node, url = served
    _receive_items(node, setup, 3)
    chromium = find_chromium()
    assert chromium is not None
    async with chromium_page(chromium) as page:
        await _inventory_tab(page, url, 3)
        assert await page.evaluate(f"{NOTE}.hidden") is True
