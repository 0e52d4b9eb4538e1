"""What the explorer's inventory tab reads, refreshed on the node's event loop at every head
change and every 5 s: one page of stock records (GET /state/inventory?after=), not all of them.
Any supplier makes a record per item and location it receives, so the whole list grows without
bound; the tab's read must not, and says when it shows only the first page."""

from __future__ import annotations

import re

from contracts.contract import NEWEST_QUERY_MAX
from ledger.tx import Transaction
from node.service import Node
from tests.node.conftest import Client, Setup, certify, next_block

ITEMS = 3 * NEWEST_QUERY_MAX


def _receive_items(node: Node, setup: Setup, count: int) -> None:
    """Commit one block in which the supplier receives one unit of `count` distinct items."""
    txs = [
        Transaction.create(
            setup.identities["supplier"],
            chain_id=setup.genesis.chain_id,
            nonce=nonce,
            contract="inventory",
            method="receive",
            args={"item": f"item-{nonce}", "location": "main", "qty": 1},
        )
        for nonce in range(count)
    ]
    block = next_block(setup, node.storage, txs)
    node._execute(block, certify(setup, block))


# How factory.js asks for a contract's state: state("contract[/path][?query]").
STATE_READ = re.compile(r'state\("(inventory[^"]*)"\)')


async def test_the_inventory_the_explorer_reads_is_bounded(
    node: Node,
    setup: Setup,
    explorer_client: Client,
) -> None:
    _receive_items(node, setup, ITEMS)
    assert node.storage.head().height == 1
    page_script = await (await explorer_client.get("/explorer/static/factory.js")).text()
    reads = STATE_READ.findall(page_script)
    assert len(reads) == 1, f"the inventory tab's reads: {reads}"
    response = await explorer_client.get(f"/state/{reads[0]}")
    assert response.status == 200
    value = (await response.json())["value"]
    assert isinstance(value.get("items"), dict), f"not a page: {len(value)} items at the top"
    records = sum(len(locations) for locations in value["items"].values())
    assert records == NEWEST_QUERY_MAX, f"{records} stock records in one answer"
    assert value["more"] is True  # what the tab's "there are more" note shows from
    assert "inventory-shown" in page_script
