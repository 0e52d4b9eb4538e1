"""Mempool.remove_committed keeps a committed transaction whose nonce is unused while the check
it is given (admission's, in the node) takes it, and keeps the pool's indexes consistent.

The node-level behaviour, through real blocks and consensus, is in test_mempool_gate_failed.py.
"""

from __future__ import annotations

import contextlib
import random

import pytest

from ledger.crypto import KeyPair
from ledger.tx import Transaction
from node.errors import Duplicate, MempoolFull
from node.mempool import Mempool

ALICE = KeyPair.from_seed(b"\x01" * 32)
BOB = KeyPair.from_seed(b"\x02" * 32)


def _tx(keys: KeyPair, nonce: int) -> Transaction:
    return Transaction.create(
        keys,
        chain_id="c",
        nonce=nonce,
        contract="inventory",
        method="receive",
        args={"item": "steel", "location": "main", "qty": 1},
    )


def _pool(committed: dict[bytes, int], capacity: int = 100) -> Mempool:
    return Mempool(capacity=capacity, committed_nonce=lambda sender: committed.get(sender, 0))


class _Admission:
    """A stand-in for the node's admission check: records what it was asked, answers `takes`."""

    def __init__(self, *, takes: bool = True) -> None:
        self.takes = takes
        self.asked: list[Transaction] = []

    def __call__(self, tx: Transaction) -> bool:
        self.asked.append(tx)
        return self.takes


def test_an_unused_nonce_keeps_the_transaction_pending_until_its_turn() -> None:
    committed = {ALICE.public_key: 5}
    pool = _pool(committed)
    early = _tx(ALICE, 7)
    pool.add(early)
    pool.add(_tx(ALICE, 6))
    admission = _Admission()
    pool.remove_committed([early], admission)
    assert admission.asked == [early] and early.hash in pool and len(pool) == 2
    assert pool.pending_count(ALICE.public_key) == 2
    assert pool.next_nonce(ALICE.public_key) == 5  # nonce 5 is still missing
    pool.add(_tx(ALICE, 5))
    assert [tx.nonce for tx in pool.cut(10)] == [5, 6, 7]
    assert not pool.ready_count_at_least(1)  # all three in flight


def test_a_refused_one_goes_as_before_and_so_does_every_one_without_a_check() -> None:
    committed = {ALICE.public_key: 5}
    pool = _pool(committed)
    early, later = _tx(ALICE, 7), _tx(ALICE, 8)
    pool.add(early)
    pool.add(later)
    pool.remove_committed([early], _Admission(takes=False))
    assert early.hash not in pool and later.hash in pool
    pool.remove_committed([later])
    assert len(pool) == 0


def test_only_transactions_whose_nonce_is_unused_are_checked() -> None:
    # A block whose transactions all used their nonces asks the check nothing.
    committed = {ALICE.public_key: 0, BOB.public_key: 0}
    pool = _pool(committed)
    txs = [_tx(keys, nonce) for keys in (ALICE, BOB) for nonce in range(3)]
    for tx in txs:
        pool.add(tx)
    committed.update({ALICE.public_key: 3, BOB.public_key: 2})  # Bob's 2 failed a gate
    admission = _Admission()
    pool.remove_committed(txs, admission)
    assert admission.asked == [txs[-1]]
    assert pool.run_from(BOB.public_key, 2, 10) == [txs[-1]]
    admission.asked.clear()
    committed[BOB.public_key] = 3
    pool.remove_committed([txs[-1]], admission)
    assert admission.asked == [] and len(pool) == 0


def test_a_transaction_this_node_cut_and_the_block_failed_is_cut_again() -> None:
    # This node cut 5, 6 and 7; the block holding 5 failed it at a gate (its sender was
    # suspended there and reinstated later in it, say). 6 and 7, cut after it, would wait
    # for 5 forever if the cut did not start at 5 again.
    committed = {ALICE.public_key: 5}
    pool = _pool(committed)
    txs = [_tx(ALICE, nonce) for nonce in (5, 6, 7)]
    for tx in txs:
        pool.add(tx)
    assert pool.cut(10) == txs
    pool.remove_committed([txs[0]], _Admission())
    assert pool.cut(10) == txs


def test_a_kept_transaction_holds_its_place_and_expires_behind_a_gap() -> None:
    committed = {ALICE.public_key: 5}
    pool = _pool(committed, capacity=2)
    early = _tx(ALICE, 9)
    pool.add(early, arrived_ms=0)
    pool.add(_tx(BOB, 0), arrived_ms=0)
    pool.remove_committed([early], _Admission())
    assert len(pool) == 2
    with pytest.raises(MempoolFull):
        pool.add(_tx(BOB, 1))
    assert pool.expire_gapped(now_ms=600_000, ttl_ms=600_000) == [early]
    assert len(pool) == 1


def test_the_indexes_agree_whatever_is_committed_kept_or_cut() -> None:
    rng = random.Random(11)
    committed: dict[bytes, int] = {}
    pool = _pool(committed, capacity=10_000)
    senders = [ALICE, BOB]
    made: dict[tuple[bytes, int], Transaction] = {}
    for _ in range(1500):
        keys = rng.choice(senders)
        sender = keys.public_key
        base = committed.get(sender, 0)
        step = rng.random()
        if step < 0.5:
            nonce = base + rng.randrange(10)
            tx = made.setdefault((sender, nonce), _tx(keys, nonce))
            if tx.hash not in pool:
                with contextlib.suppress(Duplicate, MempoolFull):
                    pool.add(tx)
        elif step < 0.7:
            pool.cut(rng.randrange(1, 6))
        elif step < 0.95:
            # A block: some of the run from the committed nonce, some pending ones ahead that
            # fail a gate, some of which admission would take again.
            run = pool.run_from(sender, base, rng.randrange(0, 4))
            ahead = [tx for (s, n), tx in made.items() if s == sender and n >= base + len(run)]
            failed = rng.sample(ahead, min(len(ahead), rng.randrange(0, 3)))
            committed[sender] = base + len(run)
            pool.remove_committed(run + failed, lambda tx: rng.random() < 0.7)
            assert all(tx.hash not in pool for tx in run)
        else:
            pool.return_in_flight()
        _check(pool, committed, senders)


def _check(pool: Mempool, committed: dict[bytes, int], senders: list[KeyPair]) -> None:
    """The pool's indexes agree with each other and with the committed nonces."""
    pending = {tx.hash: tx for run in pool._by_sender.values() for tx in run.values()}
    assert pending.keys() == pool._by_hash.keys()
    assert all(run for run in pool._by_sender.values())
    assert all(nonce == tx.nonce for run in pool._by_sender.values() for nonce, tx in run.items())
    assert pool._in_flight.keys() <= pending.keys()
    assert pool._arrived_ms.keys() <= pending.keys() and pool._sent_ms.keys() <= pending.keys()
    for keys in senders:
        sender = keys.public_key
        base = committed.get(sender, 0)
        assert all(nonce >= base for nonce in pool._by_sender.get(sender, {}))
        assert pool._next.get(sender, base) >= base
        walk = base
        while pool.run_from(sender, walk, 1):
            walk += 1
        assert pool.next_nonce(sender) == walk
