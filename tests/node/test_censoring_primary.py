"""A primary that leaves one sender's transactions out of its blocks, while it keeps committing
other senders' ones, is replaced, and that sender's transactions commit in the next view.

The view-change deadline is pushed back by every commit (consensus/replica.py), so a censoring
primary that commits a block every so often kept every backup's deadline moving for ever. PBFT's
request timer is per request: a backup now also suspects its primary when a sender it resent
has stood still while enough blocks committed past it (Mempool.starved_since).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from ledger.genesis import Params
from ledger.tx import Transaction
from tests.node.inproc import CHAIN_ID, in_process_cluster, steel_receipt

TIMEOUT_MS = 1000


def test_a_primary_that_censors_one_sender_is_replaced(tmp_path: Path) -> None:
    params = Params(view_change_timeout_ms=TIMEOUT_MS)
    with in_process_cluster(tmp_path, params=params) as cluster:
        nodes = cluster.nodes
        primary = nodes[0]
        censored = cluster.identities["customer"].public_key
        order = Transaction.create(
            cluster.identities["customer"],
            chain_id=CHAIN_ID,
            nonce=0,
            contract="orders",
            method="place",
            args={"product": "widget", "variant": "std", "quantity": 1},
        )
        honest_cut = primary.mempool.cut

        def censoring_cut(txs_max: int, bytes_max: int | None = None) -> list[Transaction]:
            # A byzantine primary: everything but the customer's transactions.
            return [tx for tx in honest_cut(txs_max, bytes_max) if tx.sender != censored]

        primary.mempool.cut = censoring_cut  # type: ignore[method-assign]

        async def scenario() -> None:
            status, _, body = await cluster.request(1, "POST", "/tx", body=order.to_wire())
            assert status == 202, body
            # Another sender's traffic keeps blocks committing, one every 300 ms.
            deadline = time.monotonic() + 8 * TIMEOUT_MS / 1000
            nonce = 0
            while time.monotonic() < deadline and not all(
                node.storage.has_tx(order.hash) for node in nodes
            ):
                tx = steel_receipt(cluster.identities, nonce)
                status, _, body = await cluster.request(2, "POST", "/tx", body=tx.to_wire())
                assert status == 202, body
                nonce += 1
                await asyncio.sleep(0.3)
            views = [node.replica.view if node.replica else None for node in nodes]
            heights = [node.storage.head().height for node in nodes]
            held = [order.hash in node.mempool for node in nodes]
            assert all(node.storage.has_tx(order.hash) for node in nodes), (
                f"the censored order never committed in 8 view-change timeouts "
                f"(views {views}, heights {heights}, pending at {held})"
            )

        cluster.run(scenario(), timeout_s=60)
