"""The primary's cutter asks the database for its head only when it may propose something: every
node runs it, woken by each admission, so a backup's or an idle primary's call must cost nothing
(node/service.py, Node._propose_ready)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ledger.genesis import Params
from node.service import Node
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
