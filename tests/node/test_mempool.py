"""The mempool orders each sender's transactions by nonce and serves senders fairly."""

from __future__ import annotations

import pytest

from ledger.crypto import KeyPair
from ledger.tx import Transaction
from node.errors import Duplicate, MempoolFull
from node.mempool import NONCE_AHEAD_MAX, Mempool


def _tx(keys: KeyPair, nonce: int) -> Transaction:
    return Transaction.create(
        keys, chain_id="c", nonce=nonce, contract="inventory", method="receive", args={"n": nonce}
    )


ALICE = KeyPair.from_seed(b"\x01" * 32)
BOB = KeyPair.from_seed(b"\x02" * 32)


def _pool(capacity: int = 100, committed: dict[bytes, int] | None = None) -> Mempool:
    nonces = committed if committed is not None else {}
    return Mempool(capacity=capacity, committed_nonce=lambda sender: nonces.get(sender, 0))


def test_cut_takes_only_consecutive_nonces_from_the_next_one() -> None:
    pool = _pool()
    for nonce in (2, 0, 3):
        pool.add(_tx(ALICE, nonce))
    assert [tx.nonce for tx in pool.cut(10)] == [0]
    pool.add(_tx(ALICE, 1))
    assert [tx.nonce for tx in pool.cut(10)] == [1, 2, 3]
    assert pool.cut(10) == []


def test_cut_serves_senders_round_robin_when_full() -> None:
    pool = _pool()
    for nonce in range(5):
        pool.add(_tx(ALICE, nonce))
        pool.add(_tx(BOB, nonce))
    first = pool.cut(5)
    second = pool.cut(5)
    assert {tx.sender for tx in first} == {ALICE.public_key}
    assert {tx.sender for tx in second} == {BOB.public_key}


def test_duplicates_and_used_nonces_are_refused() -> None:
    committed = {ALICE.public_key: 3}
    pool = _pool(committed=committed)
    with pytest.raises(Duplicate, match="already used"):
        pool.add(_tx(ALICE, 2))
    tx = _tx(ALICE, 3)
    pool.add(tx)
    with pytest.raises(Duplicate, match="already pending"):
        pool.add(tx)
    with pytest.raises(Duplicate, match="nonce 3"):
        pool.add(
            Transaction.create(ALICE, chain_id="c", nonce=3, contract="x", method="y", args={})
        )
    with pytest.raises(MempoolFull, match="ahead"):
        pool.add(_tx(ALICE, 3 + NONCE_AHEAD_MAX))


def test_full_pool_answers_mempool_full() -> None:
    pool = _pool(capacity=2)
    pool.add(_tx(ALICE, 0))
    pool.add(_tx(ALICE, 1))
    with pytest.raises(MempoolFull, match="full"):
        pool.add(_tx(BOB, 0))


def test_committed_transactions_leave_and_next_nonce_follows() -> None:
    committed: dict[bytes, int] = {}
    pool = _pool(committed=committed)
    txs = [_tx(ALICE, n) for n in range(3)]
    for tx in txs:
        pool.add(tx)
    assert pool.next_nonce(ALICE.public_key) == 3
    batch = pool.cut(2)
    committed[ALICE.public_key] = 2
    pool.remove_committed(batch)
    assert len(pool) == 1
    assert [tx.nonce for tx in pool.cut(10)] == [2]


def test_returned_in_flight_transactions_can_be_cut_again() -> None:
    pool = _pool()
    pool.add(_tx(ALICE, 0))
    assert len(pool.cut(10)) == 1
    assert pool.cut(10) == []
    pool.return_in_flight()
    assert len(pool.cut(10)) == 1


def test_arrival_times_live_as_long_as_their_transactions() -> None:
    committed = {ALICE.public_key: 0}
    pool = _pool(committed=committed)
    first, second, stale = _tx(ALICE, 0), _tx(ALICE, 1), _tx(BOB, 0)
    pool.add(first, arrived_ms=10.0)
    pool.add(second, arrived_ms=12.5)
    pool.add(stale)  # no arrival given: none kept
    with pytest.raises(Duplicate):
        pool.add(first, arrived_ms=99.0)  # a refused duplicate leaves the first arrival alone
    assert pool.arrived_ms(first.hash) == 10.0
    assert pool.arrived_ms(stale.hash) is None
    pool.cut(10)
    assert pool.arrived_ms(second.hash) == 12.5  # cut but not committed: still pending
    committed[ALICE.public_key] = 2
    pool.remove_committed([first])  # second's nonce is now used too: it leaves with it
    assert pool.arrived_ms(first.hash) is None
    assert pool.arrived_ms(second.hash) is None
