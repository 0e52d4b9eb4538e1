"""The mempool orders each sender's transactions by nonce and serves senders fairly."""

from __future__ import annotations

import contextlib
import itertools
import random

import pytest

from ledger.crypto import KeyPair
from ledger.tx import Transaction
from node.errors import Duplicate, MempoolBusy, MempoolFull
from node.mempool import GAPPED_FROM_CLIENT_MAX, NONCE_AHEAD_MAX, STALL_BACKOFF_MAX, Mempool


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


def test_clients_fill_half_the_pool_and_forwards_the_rest() -> None:
    pool = _pool(capacity=4)
    assert pool.client_max == 2
    for nonce in (0, 1):
        pool.check_room(_tx(ALICE, nonce), from_client=True)
        pool.add(_tx(ALICE, nonce))
    with pytest.raises(MempoolBusy, match=r"fewer than 2 .* room for what peers forward"):
        pool.check_room(_tx(BOB, 0), from_client=True)
    pool.check_room(_tx(BOB, 0))  # forwarded: the other half is its room
    pool.add(_tx(BOB, 0))
    pool.add(_tx(BOB, 1))
    with pytest.raises(MempoolFull, match="is full"):
        pool.check_room(_tx(BOB, 2))
    # A duplicate is named as one, not as a busy pool.
    with pytest.raises(Duplicate):
        pool.check_room(_tx(ALICE, 0), from_client=True)


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


def test_pending_count_is_per_sender_and_counts_in_flight_ones_until_committed() -> None:
    committed: dict[bytes, int] = {}
    pool = _pool(committed=committed)
    for tx in [_tx(ALICE, 0), _tx(ALICE, 1), _tx(ALICE, 5), _tx(BOB, 0)]:
        pool.add(tx)
    assert (pool.pending_count(ALICE.public_key), pool.pending_count(BOB.public_key)) == (3, 1)
    batch = pool.cut(10)  # in flight: still pending
    assert pool.pending_count(ALICE.public_key) == 3
    committed[ALICE.public_key], committed[BOB.public_key] = 2, 1
    pool.remove_committed(batch)
    assert (pool.pending_count(ALICE.public_key), pool.pending_count(BOB.public_key)) == (1, 0)
    assert pool.pending_count(KeyPair.from_seed(b"\x03" * 32).public_key) == 0


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


def test_send_times_default_to_arrival_and_leave_with_their_transactions() -> None:
    committed = {ALICE.public_key: 0}
    pool = _pool(committed=committed)
    forwarded, submitted = _tx(ALICE, 0), _tx(ALICE, 1)
    pool.add(forwarded, arrived_ms=10.0)  # a peer forwarded it: it sent the primary one too
    pool.add(submitted, arrived_ms=11.0)
    outsider = _tx(BOB, 0)
    pool.mark_sent([submitted.hash, outsider.hash], 5_000.0)  # forwarded after its admission
    assert pool.sent_ms(forwarded.hash) == 10.0
    assert pool.sent_ms(submitted.hash) == 5_000.0
    assert pool.arrived_ms(submitted.hash) == 11.0  # the latency stages keep the arrival
    assert pool.sent_ms(outsider.hash) is None  # not pending here: nothing kept
    pool.mark_sent([submitted.hash], 9_000.0)  # resent later
    assert pool.sent_ms(submitted.hash) == 9_000.0
    committed[ALICE.public_key] = 2
    pool.remove_committed([forwarded, submitted])
    assert pool.sent_ms(forwarded.hash) is None and pool.sent_ms(submitted.hash) is None
    assert pool._sent_ms == {}


def test_next_nonce_follows_the_consecutive_run_through_gaps_filled_late() -> None:
    committed = {ALICE.public_key: 5}
    pool = _pool(committed=committed)
    for nonce in (7, 5, 9):
        pool.add(_tx(ALICE, nonce))
    assert pool.next_nonce(ALICE.public_key) == 6
    pool.add(_tx(ALICE, 6))  # fills the gap: the run reaches past 7
    assert pool.next_nonce(ALICE.public_key) == 8
    batch = pool.cut(10)
    assert [tx.nonce for tx in batch] == [5, 6, 7]
    committed[ALICE.public_key] = 8
    pool.remove_committed(batch)
    assert pool.next_nonce(ALICE.public_key) == 8
    assert pool.next_nonce(BOB.public_key) == 0


def test_transactions_behind_a_gap_leave_room_for_the_ones_that_fill_it() -> None:
    pool = _pool(capacity=20)  # 2 places kept for transactions that extend a ready run
    assert pool.gap_reserve == 2
    for nonce in range(1, 19):  # nonce 0 is missing: none of these is ready
        pool.add(_tx(ALICE, nonce))
    with pytest.raises(MempoolFull, match="behind nonce 0"):
        pool.add(_tx(ALICE, 19))
    with pytest.raises(MempoolFull, match="nonce 1 would wait behind nonce 0"):
        pool.add(_tx(BOB, 1))
    pool.add(_tx(ALICE, 0))  # the gap is filled although the pool is nearly full
    pool.add(_tx(BOB, 0))
    assert len(pool) == 20
    assert len(pool.cut(100)) == 20
    with pytest.raises(MempoolFull, match="is full"):
        pool.add(_tx(BOB, 1))


def test_one_sender_cannot_park_clients_transactions_enough_to_lock_out_the_others() -> None:
    pool = _pool(capacity=1000, committed={ALICE.public_key: 5})
    for nonce in range(5, 8):
        pool.add(_tx(ALICE, nonce))  # a ready run: 5, 6, 7
    parked = range(9, 9 + GAPPED_FROM_CLIENT_MAX)  # nonce 8 withheld
    for nonce in parked:
        pool.check_room(_tx(ALICE, nonce), from_client=True)
        pool.add(_tx(ALICE, nonce))
    with pytest.raises(
        MempoolBusy, match=rf"{GAPPED_FROM_CLIENT_MAX} transactions .* wait for nonce 8"
    ):
        pool.check_room(_tx(ALICE, parked[-1] + 1), from_client=True)
    pool.check_room(_tx(ALICE, 8), from_client=True)  # the one that fills the gap is welcome
    pool.check_room(_tx(ALICE, parked[-1] + 1))  # forwarded: another node's client sent it
    pool.check_room(_tx(BOB, 0), from_client=True)  # and other clients have room
    pool.add(_tx(ALICE, 8))
    pool.check_room(_tx(ALICE, parked[-1] + 1), from_client=True)  # no gap any more


def test_a_sender_is_named_stalled_once_its_nonce_stops_moving_then_ever_less_often() -> None:
    committed: dict[bytes, int] = {}
    pool = _pool(committed=committed)
    pool.add(_tx(ALICE, 0))
    pool.add(_tx(ALICE, 1))
    pool.add(_tx(BOB, 3))  # not ready here: nothing this node could send
    assert pool.stalled(0, after_ms=1000, senders_max=10) == []  # first sight starts the clock
    assert pool.stalled(999, after_ms=1000, senders_max=10) == []
    assert pool.stalled(1000, after_ms=1000, senders_max=10) == [ALICE.public_key]
    assert pool.stalled(2999, after_ms=1000, senders_max=10) == []  # then twice the wait...
    assert pool.stalled(3000, after_ms=1000, senders_max=10) == [ALICE.public_key]
    assert pool.stalled(6999, after_ms=1000, senders_max=10) == []  # ...and twice again
    assert pool.stalled(7000, after_ms=1000, senders_max=10) == [ALICE.public_key]
    batch = pool.cut(1)
    committed[ALICE.public_key] = 1
    pool.remove_committed(batch)  # progress starts it over
    assert pool.stalled(7100, after_ms=1000, senders_max=10) == []
    assert pool.stalled(8100, after_ms=1000, senders_max=10) == [ALICE.public_key]
    assert [tx.nonce for tx in pool.run_from(ALICE.public_key, 1, 10)] == [1]
    assert pool.run_from(ALICE.public_key, 2, 10) == []
    assert pool.run_from(BOB.public_key, 3, 10)[0].nonce == 3


def test_the_wait_between_stalls_stops_growing() -> None:
    pool = _pool()
    pool.add(_tx(ALICE, 0))
    pool.stalled(0, after_ms=100, senders_max=10)
    named = [t for t in range(0, 10_000, 50) if pool.stalled(t, after_ms=100, senders_max=10)]
    gaps = [b - a for a, b in itertools.pairwise(named)]
    assert gaps[-1] == 100 * STALL_BACKOFF_MAX


def test_at_most_the_asked_number_of_senders_is_named_and_the_rest_keep_their_clocks() -> None:
    pool = _pool()
    pool.add(_tx(ALICE, 0))
    pool.add(_tx(BOB, 0))
    pool.stalled(0, after_ms=100, senders_max=10)
    assert pool.stalled(100, after_ms=100, senders_max=1) == [ALICE.public_key]
    assert pool.stalled(100, after_ms=100, senders_max=1) == [BOB.public_key]


def test_a_committed_transaction_whose_nonce_went_unused_reopens_the_run_there() -> None:
    # A block may carry a transaction whose nonce is ahead: its receipt fails and the nonce
    # stays unused, so the sender's next transaction must take that nonce again.
    committed = {ALICE.public_key: 5}
    pool = _pool(committed=committed)
    txs = {nonce: _tx(ALICE, nonce) for nonce in (5, 6, 7, 8)}
    for tx in txs.values():
        pool.add(tx)
    assert pool.next_nonce(ALICE.public_key) == 9
    pool.remove_committed([txs[7]])  # committed, failed: the committed nonce is still 5
    assert pool.next_nonce(ALICE.public_key) == 7
    committed[ALICE.public_key] = 7
    pool.remove_committed([txs[5], txs[6]])
    assert pool.next_nonce(ALICE.public_key) == 7
    assert [tx.nonce for tx in pool.cut(10)] == []  # 8 waits behind the reopened 7


def test_next_nonce_equals_a_walk_of_the_pending_nonces_whatever_happens() -> None:
    rng = random.Random(7)
    committed: dict[bytes, int] = {}
    pool = _pool(capacity=10_000, committed=committed)
    senders = [ALICE, BOB]
    made: dict[tuple[bytes, int], Transaction] = {}
    for _ in range(600):
        keys = rng.choice(senders)
        sender = keys.public_key
        base = committed.get(sender, 0)
        step = rng.random()
        if step < 0.6:
            nonce = base + rng.randrange(12)
            tx = made.setdefault((sender, nonce), _tx(keys, nonce))
            if tx.hash not in pool:
                with contextlib.suppress(Duplicate, MempoolFull):
                    pool.add(tx)
        elif step < 0.8:
            pool.cut(rng.randrange(1, 6))
        elif step < 0.9:
            # Commit the run from the committed nonce (some of it), with a failed one ahead.
            run = pool.run_from(sender, base, rng.randrange(0, 4))
            extra = [tx for (s, n), tx in made.items() if s == sender and n > base + 4]
            failed = extra[:1] if rng.random() < 0.5 else []
            committed[sender] = base + len(run)
            pool.remove_committed(run + [tx for tx in failed if tx.hash in pool])
        else:
            pool.return_in_flight()
        for keys in senders:
            walk = committed.get(keys.public_key, 0)
            while pool.run_from(keys.public_key, walk, 1):
                walk += 1
            assert pool.next_nonce(keys.public_key) == walk


def test_transactions_behind_a_gap_expire_and_nothing_else_does() -> None:
    committed = {ALICE.public_key: 5}
    pool = _pool(committed=committed)
    ready = [_tx(ALICE, n) for n in (5, 6)]
    behind = [_tx(ALICE, n) for n in (8, 9)]  # nonce 7 withheld
    early, late = _tx(BOB, 1), _tx(BOB, 2)  # Bob's nonce 0 withheld
    for tx in ready + behind:
        pool.add(tx, arrived_ms=1_000)
    pool.add(early, arrived_ms=1_000)
    pool.add(late, arrived_ms=5_000)
    pool.add(_tx(BOB, 3))  # no arrival time: never expires
    assert pool.expire_gapped(now_ms=10_999, ttl_ms=10_000) == []
    assert pool.expire_gapped(now_ms=11_000, ttl_ms=10_000) == [*behind, early]
    assert [tx.hash in pool for tx in ready + behind] == [True, True, False, False]
    assert pool.next_nonce(ALICE.public_key) == 7
    assert pool.pending_count(BOB.public_key) == 2
    # Once the gaps close, nothing expires, however old it is.
    pool.add(_tx(BOB, 0), arrived_ms=15_000)
    pool.add(early, arrived_ms=15_000)
    assert pool.expire_gapped(now_ms=100_000, ttl_ms=10_000) == []
    assert pool.next_nonce(BOB.public_key) == 4
    # Expired transactions may come again once the gap is filled.
    pool.add(_tx(ALICE, 7))
    pool.add(behind[0])
    assert pool.next_nonce(ALICE.public_key) == 9


def test_ready_bytes_follow_what_is_held_and_what_is_in_flight() -> None:
    """`ready_bytes_at_least` (a block full by its bytes, for the cutter) counts the block
    bytes of what is held less what is in flight, through cuts, returns and commits."""
    committed = {ALICE.public_key: 0, BOB.public_key: 0}
    pool = _pool(committed=committed)
    txs = [_tx(keys, nonce) for keys in (ALICE, BOB) for nonce in range(4)]
    for tx in txs:
        pool.add(tx)

    def cost(batch: list[Transaction]) -> int:
        return sum(len(tx.wire) + 5 for tx in batch)

    def ready_exactly(size: int) -> bool:
        return pool.ready_bytes_at_least(size) and not pool.ready_bytes_at_least(size + 1)

    assert ready_exactly(cost(txs))
    batch = pool.cut(5)
    assert ready_exactly(cost(txs) - cost(batch))
    pool.return_in_flight()  # a view change: all of it may be cut again
    assert ready_exactly(cost(txs))
    batch = pool.cut(3)
    again = pool.cut(3)
    assert ready_exactly(cost(txs) - cost(batch) - cost(again))
    committed[batch[0].sender] = max(tx.nonce for tx in batch if tx.sender == batch[0].sender) + 1
    pool.remove_committed(batch)
    assert ready_exactly(cost(txs) - cost(batch) - cost(again))
    pool.return_in_flight()
    assert ready_exactly(cost(txs) - cost(batch))
