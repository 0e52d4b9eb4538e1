"""The primary's cutter (node/service.py, Node._propose_ready): it asks the database for its head
only when it may propose something (every node runs it, woken by each admission, so a backup's or
an idle primary's call must cost nothing), and while a block is being agreed it holds a partial
one for a block interval, or for FILL_INTERVALS_BACKLOGGED of them while transactions wait for
admission (the cluster is saturated: fuller blocks spread each block's fixed cost)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from consensus.events import Event, ProposeBatch
from ledger.block import TX_ENTRY_BYTES
from ledger.genesis import Params
from node import service
from node.service import FILL_INTERVALS_BACKLOGGED, Node, _Admission
from node.storage import Head
from tests.node.inproc import in_process_cluster, steel_receipt


def _counting_head(node: Node, asked: list[str]) -> Callable[[], Head]:
    original = node.storage.head

    def head() -> Head:
        asked.append(node.name)
        return original()

    return head


def test_only_a_primary_with_pending_transactions_asks_for_its_head(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with in_process_cluster(tmp_path, params=Params()) as cluster:
        primary, backup = cluster.nodes[0], cluster.nodes[1]
        tx = steel_receipt(cluster.identities, 0)

        async def scenario() -> None:
            asked: list[str] = []
            for node in (primary, backup):
                monkeypatch.setattr(node.storage, "head", _counting_head(node, asked))
            # No await from here to the last check: no other task of the nodes runs meanwhile.
            primary._propose_ready()  # idle
            backup.mempool.add(tx)
            backup._propose_ready()  # something pending, but not the primary
            assert asked == []
            primary.mempool.add(tx)
            primary._propose_ready()
            assert "node0" in asked and "node1" not in asked
            assert primary.replica is not None and primary.replica.in_flight  # proposed
            monkeypatch.undo()
            deadline = time.monotonic() + 15
            while not all(node.storage.has_tx(tx.hash) for node in cluster.nodes):
                assert time.monotonic() < deadline, "the proposed transaction did not commit"
                await asyncio.sleep(0.02)

        cluster.run(scenario(), timeout_s=30)


def test_a_partial_block_waits_longer_to_fill_while_admissions_are_queued(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    params = Params(block_interval_ms=50)
    with in_process_cluster(tmp_path, params=params) as cluster:
        primary = cluster.nodes[0]
        txs = [steel_receipt(cluster.identities, nonce) for nonce in range(3)]
        clock = [1_800_000_000_000]
        monkeypatch.setattr(service, "now_ms", lambda: clock[0])
        interval = params.block_interval_ms

        def proposed() -> int:
            assert primary.replica is not None
            return len(primary.replica.in_flight)

        async def scenario() -> None:
            # No await from here to the last check: no other task of the nodes runs meanwhile,
            # so nothing commits and the queued admission below stays queued.
            primary.mempool.add(txs[0])
            primary._propose_ready()
            assert proposed() == 1  # nothing in flight: out at once
            primary.mempool.add(txs[1])
            clock[0] += interval - 1
            primary._propose_ready()
            assert proposed() == 1  # a block is being agreed: this one may fill up meanwhile
            clock[0] += 1
            primary._propose_ready()
            assert proposed() == 2  # an interval old, no backlog: out
            primary.mempool.add(txs[2])
            primary._queue_admission(_Admission(raws=[b"queued"], done=None))
            clock[0] += interval
            primary._propose_ready()
            assert proposed() == 2  # transactions wait for admission: it may fill up from them
            clock[0] += (FILL_INTERVALS_BACKLOGGED - 1) * interval - 1
            primary._propose_ready()
            assert proposed() == 2
            clock[0] += 1
            primary._propose_ready()
            assert proposed() == 3

        cluster.run(scenario(), timeout_s=30)


def test_a_block_full_by_its_bytes_goes_out_at_once_while_another_is_agreed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    params = Params(block_interval_ms=50)
    with in_process_cluster(tmp_path, params=params) as cluster:
        primary = cluster.nodes[0]
        txs = [steel_receipt(cluster.identities, nonce) for nonce in range(5)]
        # Blocks of two of these transactions, far below block_txs_max by count.
        primary.block_bytes_max = 2 * (len(txs[0].wire) + TX_ENTRY_BYTES)
        clock = [1_800_000_000_000]
        monkeypatch.setattr(service, "now_ms", lambda: clock[0])

        proposed: list[int] = []  # the transactions of each block proposed
        feed = primary.feed

        def recording(event: Event) -> None:
            if isinstance(event, ProposeBatch):
                proposed.append(len(event.txs))
            feed(event)

        monkeypatch.setattr(primary, "feed", recording)

        async def scenario() -> None:
            # No await until the last check: nothing commits meanwhile (see above).
            primary.mempool.add(txs[0])
            primary._propose_ready()
            assert proposed == [1]  # nothing in flight: out at once
            primary.mempool.add(txs[1])
            primary._propose_ready()
            assert proposed == [1]  # half a block: it may fill up
            primary.mempool.add(txs[2])
            primary._propose_ready()
            assert proposed == [1, 2]  # full by its bytes: out, the interval not over
            for tx in txs[3:]:
                primary.mempool.add(tx)
            primary._propose_ready()
            assert proposed == [1, 2, 2]

        cluster.run(scenario(), timeout_s=30)
