"""A transaction that never reached the primary is sent to it again, so the chain moves on in the
same view instead of replacing an honest primary (node/mempool.py, Node._resend_stalled)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ledger.encoding import decode, encode
from ledger.genesis import Params
from node import pause
from node.client import ClientError, wait_committed_anywhere
from node.faults import LinkFaults
from node.service import Node
from node.stages import clock_ms
from tests.node.fake_peer import FakeAnswer
from tests.node.inproc import in_process_cluster, steel_receipt


async def _until(check: object, what: str, timeout_s: float) -> None:
    assert callable(check)
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout_s} s: {what}"
        await asyncio.sleep(0.02)


def test_a_transaction_the_primary_missed_is_sent_again_and_commits_in_the_same_view(
    tmp_path: Path,
) -> None:
    # A timeout long enough that a slow machine commits well within it once the primary has
    # the transaction: the resend comes at half of it.
    with in_process_cluster(tmp_path, params=Params(view_change_timeout_ms=4000)) as cluster:
        primary, backup = cluster.nodes[0], cluster.nodes[1]
        first, second = steel_receipt(cluster.identities, 0), steel_receipt(cluster.identities, 1)

        async def scenario() -> None:
            # The backup's forward of the first transaction to the primary is lost on the way.
            backup.peers.faults.set("node0", LinkFaults(loss=1.0))
            status, _, _ = await cluster.request(1, "POST", "/tx", body=first.to_wire())
            assert status == 202
            await _until(
                lambda: (
                    all(first.hash in node.mempool for node in cluster.nodes[1:])
                    and not backup.peers.links[0].txs.items
                ),
                "the first transaction forwarded (and lost on the way to the primary)",
                10,
            )
            backup.peers.faults.clear()
            # The second reaches the primary, which cannot propose it without the first.
            status, _, _ = await cluster.request(1, "POST", "/tx", body=second.to_wire())
            assert status == 202
            await _until(lambda: second.hash in primary.mempool, "the second at the primary", 10)
            assert first.hash not in primary.mempool
            await _until(
                lambda: all(node.storage.has_tx(second.hash) for node in cluster.nodes),
                "both transactions committed on every node",
                15,
            )

        cluster.run(scenario(), timeout_s=60)
        assert [node.replica.view for node in cluster.nodes if node.replica] == [0, 0, 0, 0]
        assert all(node.counters.view_changes == 0 for node in cluster.nodes)
        assert sum(node.counters.txs_resent for node in cluster.nodes[1:]) >= 1
        assert primary.counters.txs_resent == 0  # the primary asks nobody


def test_pending_query_answers_each_senders_missing_nonce_and_refuses_bad_input(
    tmp_path: Path,
) -> None:
    with in_process_cluster(tmp_path, params=Params()) as cluster:
        node = cluster.nodes[2]
        supplier = cluster.identities["supplier"].public_key
        admin = cluster.identities["admin"].public_key

        async def scenario() -> None:
            for nonce in (0, 1, 3):
                status, _, _ = await cluster.request(
                    2, "POST", "/tx", body=steel_receipt(cluster.identities, nonce).to_wire()
                )
                assert status == 202
            await _until(lambda: len(node.mempool) >= 3, "three pending", 10)
            status, _, body = await cluster.request(
                2, "POST", "/peer/pending", body=encode({"senders": [supplier, admin]})
            )
            assert status == 200
            answer = decode(body)
            assert answer["next_nonces"] == [2, 0]  # nonce 2 was never sent
            assert answer["queued_since_ms"] is None or answer["queued_since_ms"] > 0
            for bad in (
                b"\xc1",
                encode([supplier]),
                encode({"senders": [b"short"]}),
                encode({"senders": "all"}),
                encode({"senders": [supplier] * 1025}),
            ):
                status, _, body = await cluster.request(2, "POST", "/peer/pending", body=bad)
                assert status == 400, body
                assert b"pending query" in body

        cluster.run(scenario(), timeout_s=60)


class _Replica:
    """What `_resend_stalled` reads of the replica: here, a view that changes mid-question."""

    def __init__(self) -> None:
        self.view, self.primary, self.is_primary, self.view_active = 0, 0, False, True


class _Session:
    """Answers /peer/pending (its admission queue's oldest batch arrived at `queued_since_ms`);
    with `become_primary`, this node becomes primary meanwhile."""

    def __init__(
        self, replica: _Replica, *, become_primary: bool, queued_since_ms: int | None = None
    ) -> None:
        self.replica, self.become_primary, self.asked = replica, become_primary, 0
        self.queued_since_ms = queued_since_ms

    def post(self, url: str, **_: object) -> contextlib.AbstractAsyncContextManager[FakeAnswer]:
        assert url.endswith("/peer/pending")
        self.asked += 1

        @contextlib.asynccontextmanager
        async def answer() -> AsyncIterator[FakeAnswer]:
            if self.become_primary:
                self.replica.view, self.replica.primary, self.replica.is_primary = 1, 1, True
            yield FakeAnswer(encode({"next_nonces": [0], "queued_since_ms": self.queued_since_ms}))

        return answer()


async def _resend_stalled(node: Node, stub: _Replica, fake: _Session) -> None:
    """Two scans of `node`'s resender with `stub` for its replica and `fake` for its session:
    the first sees the sender, the second finds it stalled and asks the primary."""
    replica, session = node.replica, node.peers._session
    node.replica, node.peers._session = stub, fake  # type: ignore[assignment]
    try:
        await node._resend_stalled(after_ms=0)
        await node._resend_stalled(after_ms=0)
    finally:
        node.replica, node.peers._session = replica, session


@pytest.mark.parametrize("become_primary", [False, True])
def test_a_resend_is_dropped_when_the_view_changes_while_the_primary_is_asked(
    tmp_path: Path, become_primary: bool
) -> None:
    with in_process_cluster(tmp_path, params=Params()) as cluster:
        node = cluster.nodes[1]
        first = steel_receipt(cluster.identities, 0)

        async def scenario() -> None:
            node.mempool.add(first)  # held here only: nobody commits it meanwhile
            stub = _Replica()
            fake = _Session(stub, become_primary=become_primary)
            await _resend_stalled(node, stub, fake)
            assert fake.asked == 1
            queued = list(node.peers.links[0].txs.items)
            if become_primary:
                assert node.counters.txs_resent == 0 and node.halted is None
                assert first.wire not in queued
            else:
                assert node.counters.txs_resent == 1
                assert first.wire in queued

        cluster.run(scenario(), timeout_s=30)


@pytest.mark.parametrize("forwarded_late", [True, False])
def test_a_transaction_still_queued_at_the_primary_is_not_sent_again(
    tmp_path: Path, forwarded_late: bool
) -> None:
    """The primary's oldest queued batch arrived 2 s ago. A client's transaction that reached
    this node 5 s ago but waited here for admission was forwarded only now: it sits in that
    queue, so resending it would only make a duplicate. One that a peer forwarded here 5 s ago
    went to the primary then: it was refused or lost, and goes again."""
    with in_process_cluster(tmp_path, params=Params()) as cluster:
        node = cluster.nodes[1]
        first = steel_receipt(cluster.identities, 0)

        async def scenario() -> None:
            now = clock_ms()
            if forwarded_late:
                assert node.submit_many([first.wire], arrived_ms=now - 5_000) == [first]
                for link in node.peers.links.values():
                    link.txs.drop_all()  # on its way (before any await): as good as sent here
            else:
                node.mempool.add(first, now - 5_000)
            stub = _Replica()
            fake = _Session(stub, become_primary=False, queued_since_ms=int(now - 2_000))
            await _resend_stalled(node, stub, fake)
            assert fake.asked == 1
            assert node.counters.txs_resent == (0 if forwarded_late else 1)

        cluster.run(scenario(), timeout_s=30)


def test_a_node_left_alone_in_a_view_change_sends_its_stalled_transactions_to_every_validator(
    tmp_path: Path,
) -> None:
    # node2 is cut off when a client gives it a transaction: its forwards are lost, it times
    # out alone and changes view alone. Once the links heal, the others are still in view 0,
    # and node2 waits in a view nobody else entered: it knows no primary to ask, so it sends
    # what it holds to every validator, and the transaction commits.
    with in_process_cluster(tmp_path, params=Params(view_change_timeout_ms=1000)) as cluster:
        cut = cluster.nodes[2]
        others = [node for node in cluster.nodes if node is not cut]
        tx = steel_receipt(cluster.identities, 0)

        def cut_off(faults: LinkFaults | None) -> None:
            for node in others:
                if faults is None:
                    cut.peers.faults.clear(node.name)
                    node.peers.faults.clear(cut.name)
                else:
                    cut.peers.faults.set(node.name, faults)
                    node.peers.faults.set(cut.name, faults)

        async def scenario() -> None:
            cut_off(LinkFaults(loss=1.0))
            status, _, _ = await cluster.request(2, "POST", "/tx", body=tx.to_wire())
            assert status == 202
            assert cut.replica is not None
            await _until(lambda: not cut.replica.view_active, "node2 changing view alone", 15)
            cut_off(None)
            await _until(
                lambda: all(node.storage.has_tx(tx.hash) for node in cluster.nodes),
                "the transaction committed on every node",
                20,
            )

        cluster.run(scenario(), timeout_s=60)
        assert all(node.replica and node.replica.view == 0 for node in others)
        assert cut.counters.txs_resent >= 1


def test_waiting_for_a_commit_asks_every_node_not_only_a_paused_one(tmp_path: Path) -> None:
    # node0 takes the transaction and then pauses before executing blocks: the others commit
    # it. Asking node0 alone said "not committed", and a client trying again would sign anew.
    with in_process_cluster(tmp_path, params=Params()) as cluster:
        paused = cluster.nodes[0]
        tx = steel_receipt(cluster.identities, 0)

        async def scenario() -> None:
            paused.arm_pause(pause.PausePoint(phase=pause.Phase.AFTER_COMMIT))
            status, _, _ = await cluster.request(0, "POST", "/tx", body=tx.to_wire())
            assert status == 202
            alone = wait_committed_anywhere(cluster.urls[:1], tx.hash.hex(), 3)
            with pytest.raises(ClientError, match="not committed within 3 s"):
                await alone
            result = await wait_committed_anywhere(
                [*cluster.urls, "http://127.0.0.1:9"], tx.hash.hex(), 20
            )
            assert result["status"] == "committed"
            assert paused.paused_at is not None and not paused.storage.has_tx(tx.hash)

        cluster.run(scenario(), timeout_s=60)
