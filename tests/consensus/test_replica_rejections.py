"""Messages that break the protocol are rejected, named, and change nothing."""

from __future__ import annotations

import dataclasses

import pytest

from consensus import messages as m
from consensus.actions import Action, Rejected
from consensus.normalcase import VIEWS_AHEAD_MAX
from consensus.sim.harness import REJECT_METHOD, RejectMarked
from tests.consensus.pbft_bench import (
    GENESIS_DIGEST,
    Bench,
    broadcasts,
    make_tx,
    rejections,
    tamper_txs,
)


def only_rejection(actions: list[Action]) -> Rejected:
    assert not broadcasts(actions), actions
    [rejected] = rejections(actions)
    return rejected


def rejection_and_view_change(actions: list[Action]) -> Rejected:
    """An equivocating primary: the second proposal is rejected and the backup moves on."""
    [view_change] = broadcasts(actions, m.ViewChange)
    assert view_change.new_view == 1
    [rejected] = rejections(actions)
    return rejected


def assert_untouched(bench: Bench) -> None:
    assert bench.replica.in_flight == ()
    assert bench.replica.committed_height == 0


def test_unknown_sender_is_rejected() -> None:
    bench = Bench()
    prepare = dataclasses.replace(bench.prepare(bench.block(1), 2), sender=17)
    rejected = only_rejection(bench.deliver(prepare))
    assert rejected.sender == 17 and "unknown sender" in rejected.reason


def test_bad_signature_is_rejected() -> None:
    bench = Bench()
    pre_prepare = dataclasses.replace(bench.pre_prepare(bench.block(1)), signature=b"\x00" * 64)
    rejected = only_rejection(bench.deliver(pre_prepare))
    assert rejected.sender == 0 and "signature" in rejected.reason
    assert_untouched(bench)


def test_message_signed_by_someone_else_is_rejected() -> None:
    bench = Bench()
    forged = bench.pre_prepare(bench.block(1), sender=2)  # validator 2 signs...
    forged = dataclasses.replace(forged, sender=0)  # ...and claims to be the primary
    assert "signature" in only_rejection(bench.deliver(forged)).reason
    assert_untouched(bench)


def test_message_claiming_to_be_our_own_is_rejected() -> None:
    bench = Bench()
    rejected = only_rejection(bench.deliver(bench.prepare(bench.block(1), 1)))
    assert "this replica" in rejected.reason


def test_wrong_view_is_rejected() -> None:
    bench = Bench()
    block = bench.block(1, view=1, proposer=2)
    rejected = only_rejection(bench.deliver(bench.pre_prepare(block, view=1, sender=2)))
    assert "view 1" in rejected.reason and not rejected.stale
    assert "view 1" in only_rejection(bench.deliver(bench.prepare(block, 2, view=1))).reason
    assert_untouched(bench)


@pytest.mark.parametrize("seq", [81, 100])
def test_pre_prepare_beyond_the_held_window_is_rejected(seq: int) -> None:
    bench = Bench(watermark_window=40)
    block = bench.block(seq, state_height=0)
    rejected = only_rejection(bench.deliver(bench.pre_prepare(block)))
    assert "beyond the high watermark 40" in rejected.reason and not rejected.stale
    assert_untouched(bench)


def test_messages_past_the_high_watermark_are_held_until_it_moves() -> None:
    bench = Bench(checkpoint_interval=1, watermark_window=1)
    first, second = bench.chain(2)
    assert bench.deliver(bench.pre_prepare(second)) == []  # held: seq 2 > high watermark 1
    assert bench.deliver(bench.prepare(second, 2)) == []
    bench.deliver(bench.pre_prepare(first))
    bench.commit_block(first)
    bench.execute(1, b"\x01" * 32)
    actions = bench.deliver(*(bench.checkpoint(1, first.hash, b"\x01" * 32, s) for s in (0, 2)))
    assert bench.replica.low_watermark == 1
    assert [p.seq for p in broadcasts(actions, m.Prepare)] == [2]
    assert [c.seq for c in broadcasts(actions, m.Commit)] == [2]  # the held prepare counted


def test_messages_at_or_below_the_low_watermark_are_rejected_as_stale() -> None:
    bench = Bench(checkpoint_interval=1, watermark_window=4)
    block = bench.block(1)
    bench.deliver(bench.pre_prepare(block))
    bench.commit_block(block)
    digest = b"\x09" * 32
    bench.execute(1, digest)
    bench.deliver(*(bench.checkpoint(1, block.hash, digest, sender) for sender in (0, 2)))
    assert bench.replica.low_watermark == 1
    rejected = only_rejection(bench.deliver(bench.commit(block, 3)))
    assert rejected.stale and "low watermark" in rejected.reason


def test_conflicting_pre_prepare_for_the_same_view_and_seq_is_rejected() -> None:
    bench = Bench()
    honest = bench.block(1)
    other = bench.block(1, txs=(make_tx(99),))
    bench.deliver(bench.pre_prepare(honest))
    rejected = rejection_and_view_change(bench.deliver(bench.pre_prepare(other)))
    assert "conflicting pre-prepare" in rejected.reason
    assert bench.replica.view == 1 and not bench.replica.view_active


def test_conflicting_pre_prepare_while_the_first_is_buffered_is_rejected() -> None:
    bench = Bench()
    bench.chain(1)
    bench.deliver(bench.pre_prepare(bench.block(2)))
    other = bench.block(2, txs=(make_tx(99),))
    actions = bench.deliver(bench.pre_prepare(other))
    assert "conflicting" in rejection_and_view_change(actions).reason


def test_pre_prepare_from_a_non_primary_is_rejected() -> None:
    bench = Bench()
    block = bench.block(1, proposer=2)
    rejected = only_rejection(bench.deliver(bench.pre_prepare(block, sender=2)))
    assert "primary of view 0 is 0" in rejected.reason
    assert_untouched(bench)


def test_pre_prepare_with_a_bad_prev_hash_is_rejected() -> None:
    bench = Bench()
    bench.deliver(bench.pre_prepare(bench.block(1)))
    block = bench.block(2, prev_hash=b"\x11" * 32)
    assert "prev_hash" in only_rejection(bench.deliver(bench.pre_prepare(block))).reason
    assert bench.replica.in_flight == (1,)


def test_first_block_must_build_on_the_starting_block() -> None:
    bench = Bench()
    block = bench.block(1, prev_hash=b"\x11" * 32)
    assert "prev_hash" in only_rejection(bench.deliver(bench.pre_prepare(block))).reason


def test_pre_prepare_with_a_tx_root_mismatch_is_rejected() -> None:
    bench = Bench()
    block = tamper_txs(bench.block(1), (make_tx(42),))
    assert "tx_root" in only_rejection(bench.deliver(bench.pre_prepare(block))).reason
    assert_untouched(bench)


@pytest.mark.parametrize(
    ("changes", "complaint"),
    [
        ({"height": 2}, "height is 2, expected 1"),
        ({"view": 3}, "view is 3, expected 0"),
        ({"proposer": 2}, "proposer is 2, expected 0"),
        ({"chain_id": "elsewhere", "txs": ()}, "chain_id"),
        ({"timestamp_ms": 0}, "before the parent"),
        ({"state_digest": b"\x33" * 32}, "state digest"),
    ],
)
def test_pre_prepare_with_a_bad_header_is_rejected(
    changes: dict[str, object], complaint: str
) -> None:
    bench = Bench()
    block = bench.block(1, **changes)
    rejected = only_rejection(bench.deliver(bench.pre_prepare(block, seq=1)))
    assert complaint in rejected.reason
    assert_untouched(bench)


def test_block_refused_by_the_application_is_rejected() -> None:
    bench = Bench(validator=RejectMarked())
    block = bench.block(1, txs=(make_tx(1, method=REJECT_METHOD),))
    assert "refused" in only_rejection(bench.deliver(bench.pre_prepare(block))).reason
    assert_untouched(bench)
    assert broadcasts(bench.deliver(bench.pre_prepare(bench.block(1))), m.Prepare)


def test_prepare_from_the_primary_is_rejected() -> None:
    bench = Bench()
    block = bench.block(1)
    bench.deliver(bench.pre_prepare(block))
    assert "primary" in only_rejection(bench.deliver(bench.prepare(block, 0))).reason


def test_conflicting_votes_from_one_sender_are_rejected() -> None:
    bench = Bench()
    block = bench.block(1)
    other = bench.block(1, txs=())
    bench.deliver(bench.prepare(block, 2), bench.commit(block, 3))
    assert "two different prepares" in only_rejection(bench.deliver(bench.prepare(other, 2))).reason
    assert "two different commits" in only_rejection(bench.deliver(bench.commit(other, 3))).reason


def test_checkpoint_off_the_interval_is_rejected() -> None:
    bench = Bench(checkpoint_interval=10)
    checkpoint = bench.checkpoint(5, b"\x01" * 32, GENESIS_DIGEST, 2)
    assert "not a multiple" in only_rejection(bench.deliver(checkpoint)).reason


def test_conflicting_checkpoints_from_one_sender_are_rejected() -> None:
    bench = Bench(checkpoint_interval=10)
    bench.deliver(bench.checkpoint(10, b"\x01" * 32, GENESIS_DIGEST, 2))
    conflicting = bench.checkpoint(10, b"\x02" * 32, GENESIS_DIGEST, 2)
    assert "two different checkpoints" in only_rejection(bench.deliver(conflicting)).reason


def test_state_claim_older_than_kept_history_is_rejected() -> None:
    bench = Bench(checkpoint_interval=1, watermark_window=1)
    digests: dict[int, bytes] = {}
    for height in range(1, 5):
        parent_digest = digests.get(height - 1, GENESIS_DIGEST)
        block = bench.block(height, state_height=height - 1, state_digest=parent_digest)
        bench.blocks[height] = block
        bench.deliver(bench.pre_prepare(block))
        bench.commit_block(block)
        digests[height] = bytes([height]) * 32
        bench.execute(height, digests[height])
        bench.deliver(*(bench.checkpoint(height, block.hash, digests[height], s) for s in (0, 2)))
    assert bench.replica.low_watermark == 4
    block = bench.block(5, state_height=1, state_digest=digests[1])
    assert "older than" in only_rejection(bench.deliver(bench.pre_prepare(block))).reason
    accepted = bench.block(5, state_height=3, state_digest=digests[3])
    assert broadcasts(bench.deliver(bench.pre_prepare(accepted)), m.Prepare)


def test_one_validator_signing_for_ever_higher_views_keeps_only_a_bounded_window() -> None:
    # A byzantine validator's commits and view changes for views 1..1,000 (each validly
    # signed): the replica keeps those within VIEWS_AHEAD_MAX of its view and refuses the
    # view changes beyond, instead of holding one entry a view for as long as it runs.
    bench = Bench()
    block = bench.block(1)
    for view in range(1, 1_001):
        bench.deliver(bench.commit(block, 3, view=view))
    assert max(view for view, _ in bench.replica._evidence) == VIEWS_AHEAD_MAX
    refused = []
    for view in range(1, 1_001):
        refused += rejections(bench.deliver(bench.view_change(3, view)))
    assert len(bench.replica._view_changes) == VIEWS_AHEAD_MAX
    assert len(refused) == 1_000 - VIEWS_AHEAD_MAX and not any(r.stale for r in refused)
    assert f"more than {VIEWS_AHEAD_MAX} views above" in refused[0].reason
    # Within the window, nothing changed: f + 1 view changes for a higher view are followed.
    joined = bench.deliver(bench.view_change(2, 5))
    [view_change] = broadcasts(joined, m.ViewChange)
    assert (view_change.new_view, bench.replica.view) == (5, 5)


def test_a_block_stamped_further_ahead_than_the_clock_skew_is_refused() -> None:
    # Every later block must be stamped at least as late, and the contracts take their time
    # from the header: one far-future stamp would move the chain's clock there for good.
    bench = Bench()
    skew = bench.config.clock_skew_max_ms
    now = 50_000
    far = bench.block(1, timestamp_ms=now + skew + 1)
    rejected = only_rejection(bench.deliver(bench.pre_prepare(far), now_ms=now))
    assert f"{skew + 1} ms ahead of this replica's clock" in rejected.reason
    assert not rejected.stale
    assert_untouched(bench)
    # Within the skew it is taken (the other replica's clock may run a little ahead).
    near = bench.block(1, timestamp_ms=now + skew)
    [prepare] = broadcasts(bench.deliver(bench.pre_prepare(near), now_ms=now), m.Prepare)
    assert prepare.block_hash == near.hash
