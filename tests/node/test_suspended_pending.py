"""A pending transaction whose sender is suspended while it waits, and that the primary does not
hold, leaves the pool of the backup holding it.

`remove_committed` drops what admission now refuses among a committed block's transactions
only. A pending transaction of a sender another block suspended stayed "ready" at the backup (it
carries the sender's committed nonce, so it is never behind a gap and never expires): the backup
resent it to primaries that refuse it, and its view-change deadline stayed armed for a request
nobody would ever commit, until it timed out a sound primary alone. After a block with an
identity transaction the node now drops what admission refuses (Mempool.drop_refused).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from ledger.genesis import Params
from ledger.tx import Transaction
from node.faults import LinkFaults
from tests.node.inproc import CHAIN_ID, in_process_cluster, steel_receipt

TIMEOUT_MS = 1000


async def _until(what: str, holds: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not holds():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.02)


def test_a_suspended_senders_pending_transaction_leaves_the_backup_that_holds_it(
    tmp_path: Path,
) -> None:
    params = Params(view_change_timeout_ms=TIMEOUT_MS)
    with in_process_cluster(tmp_path, params=params) as cluster:
        nodes = cluster.nodes
        backup = nodes[1]
        stranded = steel_receipt(cluster.identities, 0)
        suspend = Transaction.create(
            cluster.identities["admin"],
            chain_id=CHAIN_ID,
            nonce=0,
            contract="identity",
            method="suspend",
            args={"name": "supplier"},
        )

        async def scenario() -> None:
            # The backup admits the supplier's transaction; its forwards are lost.
            for peer in ("node0", "node2", "node3"):
                backup.peers.faults.set(peer, LinkFaults(loss=1.0))
            status, _, body = await cluster.request(1, "POST", "/tx", body=stranded.to_wire())
            assert status == 202, body
            await _until(
                "the backup's forwards were not dropped",
                lambda: all(not link.txs.items for link in backup.peers.links.values()),
                10,
            )
            backup.peers.faults.clear()
            assert all(stranded.hash not in node.mempool for node in nodes if node is not backup)
            # The admin suspends the supplier; the block commits everywhere.
            status, _, body = await cluster.request(0, "POST", "/tx", body=suspend.to_wire())
            assert status == 202, body
            await cluster.wait_height(1, 15)
            assert all(node.storage.tx_succeeded(suspend.hash) for node in nodes)
            # Admission refuses the stranded transaction now at every node ...
            assert backup._still_admissible(stranded) is False
            # ... and it has left the backup's pool, which no longer has work waiting.
            await _until(
                "a transaction no node will ever commit is still pending at the backup",
                lambda: stranded.hash not in backup.mempool,
                10,
            )
            assert not backup.mempool.has_ready()

        cluster.run(scenario(), timeout_s=60)
