"""State transfer, retransmission and restart at one replica, driven event by event."""

from __future__ import annotations

import pytest

from consensus import messages as m
from consensus.actions import Action, Broadcast, FetchBlocks, Send, ViewEntered
from consensus.config import ChainPoint
from consensus.errors import ConfigError
from consensus.events import BlockState, BlocksTransferred, RequestsPending, Tick
from consensus.messages import Message
from consensus.replica import Replica, ReplicaStart
from consensus.sim.harness import AcceptAll
from ledger.block import ZERO_HASH, Block
from tests.consensus.pbft_bench import (
    GENESIS_DIGEST,
    GENESIS_TIME_MS,
    Bench,
    broadcasts,
    commits,
    rejections,
)

DIGEST = b"\x0d" * 32


def fetches(actions: list[Action]) -> list[FetchBlocks]:
    return [action for action in actions if isinstance(action, FetchBlocks)]


def test_state_transfer_is_requested_behind_a_stable_checkpoint_and_the_replica_continues() -> None:
    bench = Bench(checkpoint_interval=2, watermark_window=4)
    blocks = bench.chain(7)
    votes = [bench.checkpoint(6, blocks[5].hash, DIGEST, sender) for sender in (0, 2, 3)]
    actions = bench.deliver(*votes, now_ms=100)
    [fetch] = fetches(actions)
    assert (fetch.from_height, fetch.to_height) == (1, 6) and set(fetch.hint) == {0, 2, 3}
    replica = bench.replica
    assert not fetches(replica.handle(Tick(now_ms=600)))  # the fetch is still young
    [again] = fetches(replica.handle(Tick(now_ms=1_100)))  # no progress: ask again
    assert (again.from_height, again.to_height) == (1, 6)
    transferred = BlocksTransferred(
        header=blocks[5].header, certificate=bench.certificate(blocks[5]), state_digest=DIGEST
    )
    replica.handle(transferred)
    assert (replica.committed_height, replica.executed_height, replica.low_watermark) == (6, 6, 6)
    assert replica.next_seq == 7
    seventh = bench.block(7, state_height=6, state_digest=DIGEST)
    actions = bench.deliver(bench.pre_prepare(seventh), now_ms=1_200)
    [prepare] = broadcasts(actions, m.Prepare)
    assert prepare.seq == 7
    [committed] = commits(bench.commit_block(seventh))
    assert committed.block == seventh
    assert not fetches(replica.handle(Tick(now_ms=5_000)))


def test_a_quorum_of_commits_above_us_is_fetched_once_we_are_stuck() -> None:
    bench = Bench()
    first, second = bench.chain(2)
    actions = bench.deliver(*(bench.commit(second, sender) for sender in (0, 2, 3)), now_ms=10)
    assert not fetches(actions)  # the normal case may still get there by itself
    assert not fetches(bench.replica.handle(Tick(now_ms=100)))
    [fetch] = fetches(bench.replica.handle(Tick(now_ms=600)))  # stuck for an interval
    assert (fetch.from_height, fetch.to_height) == (1, 2)
    assert first.height == 1


def test_f_plus_1_peers_working_far_ahead_trigger_a_fetch() -> None:
    bench = Bench(checkpoint_interval=2, watermark_window=4)
    far = bench.block(20, state_height=0)
    assert not fetches(bench.deliver(bench.prepare(far, 2)))
    [fetch] = fetches(bench.deliver(bench.prepare(far, 3)))
    assert fetch.from_height == 1 and fetch.to_height >= 12 and set(fetch.hint) == {2, 3}


def test_retransmission_resends_the_same_signed_messages_when_stuck() -> None:
    bench = Bench()
    block = bench.block(1)
    actions = bench.deliver(bench.pre_prepare(block), bench.prepare(block, 2), now_ms=0)
    sent = broadcasts(actions)
    assert [type(message) for message in sent] == [m.Prepare, m.Commit]
    replica = bench.replica
    assert replica.handle(Tick(now_ms=100)) == []  # within the retransmit interval
    resent = broadcasts(replica.handle(Tick(now_ms=600)))
    assert resent == sent and all(a is b for a, b in zip(resent, sent, strict=True))
    assert replica.handle(Tick(now_ms=700)) == []  # once per interval
    bench.deliver(bench.commit(block, 0), bench.commit(block, 3), now_ms=800)
    assert replica.committed_height == 1
    assert broadcasts(replica.handle(Tick(now_ms=5_000))) == []  # nothing left in flight


def test_a_restarted_replica_never_signs_a_second_different_prepare() -> None:
    bench = Bench()
    block = bench.block(1)
    other = bench.block(1, timestamp_ms=GENESIS_TIME_MS + 3)
    [prepare] = broadcasts(bench.deliver(bench.pre_prepare(block)), m.Prepare)
    start = ReplicaStart(
        height=0,
        block_hash=ZERO_HASH,
        timestamp_ms=GENESIS_TIME_MS,
        state_height=0,
        state_digest=GENESIS_DIGEST,
        signed=(prepare,),
    )
    restarted = Replica(bench.config, bench.keys[1], AcceptAll(), start)
    bench.replica = restarted
    # An equivocating primary shows the restarted replica another block first.
    actions = bench.deliver(bench.pre_prepare(other), now_ms=10)
    assert not broadcasts(actions, m.Prepare)
    restarted.handle(Tick(now_ms=500))
    resent = [a.message for a in restarted.handle(Tick(now_ms=1_000)) if isinstance(a, Broadcast)]
    assert prepare in resent  # its old prepare, byte for byte


def test_a_restarted_replica_resumes_its_view_change_with_the_same_message() -> None:
    bench = Bench()
    block = bench.block(1)
    bench.deliver(bench.pre_prepare(block), bench.prepare(block, 2))
    bench.replica.handle(RequestsPending(now_ms=0, pending=True))
    [view_change] = broadcasts(bench.replica.handle(Tick(now_ms=2_000)), m.ViewChange)
    start = ReplicaStart(
        height=0,
        block_hash=ZERO_HASH,
        timestamp_ms=GENESIS_TIME_MS,
        state_height=0,
        state_digest=GENESIS_DIGEST,
        signed=(view_change,),
    )
    restarted = Replica(bench.config, bench.keys[1], AcceptAll(), start)
    assert (restarted.view, restarted.view_active) == (1, False)
    restarted.handle(Tick(now_ms=2_500))
    resent = broadcasts(restarted.handle(Tick(now_ms=3_000)), m.ViewChange)
    assert resent == [view_change]


def test_a_restarted_replica_starts_in_its_persisted_view() -> None:
    bench = Bench()
    start = ReplicaStart(
        height=0,
        block_hash=ZERO_HASH,
        timestamp_ms=GENESIS_TIME_MS,
        state_height=0,
        state_digest=GENESIS_DIGEST,
        view=5,
    )
    replica = Replica(bench.config, bench.keys[1], AcceptAll(), start)
    assert (replica.view, replica.view_active, replica.primary) == (5, True, 1)
    assert replica.can_propose


def _two_blocks_first_executed() -> tuple[Bench, Block, Block]:
    """A bench whose replica committed and executed block 1; block 2 vouches for genesis state
    (its proposer had not executed block 1 yet)."""
    bench = Bench()
    first, second = bench.chain(2)
    bench.deliver(bench.pre_prepare(first))
    assert commits(bench.commit_block(first))
    bench.execute(1, DIGEST)
    return bench, first, second


def _restart_at_first_block(
    bench: Bench, first: Block, signed: tuple[Message, ...], genesis: ChainPoint | None = None
) -> Replica:
    """Bench's replica rebuilt as a node rebuilds it: from block 1, executed, and what it signed."""
    start = bench.start_at(first, DIGEST, signed=signed, genesis=genesis)
    bench.replica = Replica(bench.config, bench.keys[1], AcceptAll(), start)
    return bench.replica


def test_a_restarted_replica_keeps_the_prepared_certificate_its_votes_stand_for() -> None:
    # Once restarted from block 1, the replica holds only block 1's digest and could not check
    # block 2's claim about the genesis state again. It must still take the block back, or its
    # view change would leave out a block it voted to commit, and a new view could replace it.
    bench, first, second = _two_blocks_first_executed()
    received: list[Message] = [bench.pre_prepare(second), bench.prepare(second, 2)]
    signed = broadcasts(bench.deliver(*received))
    assert [type(message) for message in signed] == [m.Prepare, m.Commit]

    restarted = _restart_at_first_block(bench, first, tuple(signed))
    assert not rejections(bench.deliver(*received, now_ms=10))  # the node replays its log
    restarted.handle(RequestsPending(now_ms=10, pending=True))
    [view_change] = broadcasts(restarted.handle(Tick(now_ms=2_100)), m.ViewChange)
    [proof] = view_change.prepared
    assert (proof.seq, proof.view, proof.pre_prepare.block_hash) == (2, 0, second.hash)
    assert {prepare.sender for prepare in proof.prepares} == {1, 2}


def test_a_restarted_replica_still_checks_a_block_it_never_voted_for() -> None:
    bench, first, second = _two_blocks_first_executed()
    [prepare] = broadcasts(bench.deliver(bench.pre_prepare(second)), m.Prepare)
    # Another block 2 for view 0 from an equivocating primary, and a vote-free restart: both
    # meet the checks (and a stale state claim) as before.
    other = bench.block(2, timestamp_ms=GENESIS_TIME_MS + 5)
    _restart_at_first_block(bench, first, (prepare,))
    [refused] = rejections(bench.deliver(bench.pre_prepare(other), now_ms=10))
    assert "older than the history kept here" in refused.reason
    _restart_at_first_block(bench, first, ())
    [refused] = rejections(bench.deliver(bench.pre_prepare(second), now_ms=10))
    assert "older than the history kept here" in refused.reason


def test_a_replica_signs_the_checkpoint_a_state_transfer_took_it_past() -> None:
    # Replica 1 fetched blocks 1..12. Validators 2 and 3 executed them and signed checkpoint 10;
    # 0 is faulty. Checkpoint 10 becomes stable there only with 1's vote (else their low
    # watermark stays below it, and once the primary reaches the high one, nothing moves), so
    # 1 signs it as if it had executed block 10, and resends it to a peer still resending its
    # own checkpoint for 10.
    bench = Bench(checkpoint_interval=5, watermark_window=10)
    blocks = bench.chain(12)
    fifth, tenth = (
        BlockState(height=h, block_hash=blocks[h - 1].hash, state_digest=bytes([h]) * 32)
        for h in (5, 10)
    )
    transferred = BlocksTransferred(
        header=blocks[11].header,
        certificate=bench.certificate(blocks[11]),
        state_digest=DIGEST,
        states=(fifth, tenth),
    )
    [checkpoint] = broadcasts(bench.replica.handle(transferred), m.Checkpoint)
    assert (checkpoint.seq, checkpoint.sender) == (10, 1)
    assert (checkpoint.block_hash, checkpoint.state_digest) == (
        tenth.block_hash,
        tenth.state_digest,
    )
    stuck = bench.checkpoint(10, tenth.block_hash, tenth.state_digest, 2)
    answer = bench.deliver(stuck, now_ms=100)
    assert Send(to=2, message=checkpoint) in answer


def test_a_restarted_replica_follows_a_new_view_that_starts_at_the_chain_start() -> None:
    # Replica 1 committed block 1 and restarted; the others had only prepared it, so the new
    # view for view 2 builds on the chain's start and re-proposes block 1. A replica restarted
    # above height 0 knows that start only from what its node passes it.
    bench, first, _ = _two_blocks_first_executed()
    changes = tuple(bench.view_change(sender, 2, (bench.proof(first),)) for sender in (0, 2, 3))
    new_view = bench.new_view(changes, (first,), view=2)
    _restart_at_first_block(bench, first, ())
    [rejected] = rejections(bench.deliver(new_view))
    assert "starts at the chain's start, which this replica lacks" in rejected.reason
    genesis = ChainPoint.genesis(
        block_hash=ZERO_HASH, timestamp_ms=GENESIS_TIME_MS, state_digest=GENESIS_DIGEST
    )
    replica = _restart_at_first_block(bench, first, (), genesis=genesis)
    actions = bench.deliver(new_view)
    assert ViewEntered(view=2) in actions and not rejections(actions)
    assert (replica.view, replica.view_active, replica.committed_height) == (2, True, 1)


def test_a_start_with_another_chains_genesis_is_refused() -> None:
    other = ChainPoint.genesis(block_hash=b"\x01" * 32, timestamp_ms=0, state_digest=GENESIS_DIGEST)
    with pytest.raises(ConfigError, match="not the start of this chain"):
        ReplicaStart(
            height=0,
            block_hash=ZERO_HASH,
            timestamp_ms=GENESIS_TIME_MS,
            state_height=0,
            state_digest=GENESIS_DIGEST,
            genesis=other,
        )


def test_after_a_transfer_blocks_proposed_on_an_older_state_are_still_checked() -> None:
    # Replica 1 fetched blocks 1..6. The primary proposed block 7 while it had executed only
    # block 5 (blocks in flight): its header vouches for the state after 5, which the replica
    # knows from the transfer, not from executing block 5 itself.
    bench = Bench(checkpoint_interval=2, watermark_window=4)
    blocks = bench.chain(6)
    states = tuple(
        BlockState(height=h, block_hash=blocks[h - 1].hash, state_digest=bytes([h]) * 32)
        for h in range(1, 7)
    )
    transferred = BlocksTransferred(
        header=blocks[5].header,
        certificate=bench.certificate(blocks[5]),
        state_digest=states[-1].state_digest,
        states=states,
    )
    bench.replica.handle(transferred)
    assert bench.replica.committed_height == 6
    seventh = bench.block(7, state_height=5, state_digest=bytes([5]) * 32)
    actions = bench.deliver(bench.pre_prepare(seventh), now_ms=1_200)
    assert not rejections(actions)
    [prepare] = broadcasts(actions, m.Prepare)
    assert prepare.seq == 7


def test_a_backup_restarted_in_a_view_it_installed_takes_that_views_new_view_again() -> None:
    # Block 1 was prepared in view 0, its commits lost; view 2 re-proposed it, and replica 1
    # prepared and committed it there, then restarted before the others' commits reached it.
    # Its node restarts it in view 2 and replays its log, the NEW-VIEW first. Refused as stale,
    # the replica would not know the re-proposed block 1, and its next VIEW-CHANGE would leave
    # out a block it committed to, which a later view could then replace.
    bench = Bench()
    first = bench.block(1)
    changes = tuple(bench.view_change(sender, 2, (bench.proof(first),)) for sender in (0, 2, 3))
    new_view = bench.new_view(changes, (first,), view=2)
    received: list[Message] = [
        new_view,
        bench.prepare(first, 0, view=2),
        bench.prepare(first, 3, view=2),
    ]
    signed = broadcasts(bench.deliver(*received))
    # Other kinds carry no view; None for one of them fails the comparison.
    views = [(type(s), s.view if isinstance(s, m.Prepare | m.Commit) else None) for s in signed]
    assert views == [(m.Prepare, 2), (m.Commit, 2)]
    start = ReplicaStart(
        height=0,
        block_hash=ZERO_HASH,
        timestamp_ms=GENESIS_TIME_MS,
        state_height=0,
        state_digest=GENESIS_DIGEST,
        view=2,
        signed=tuple(signed),
    )
    restarted = bench.replica = Replica(bench.config, bench.keys[1], AcceptAll(), start)
    replayed = bench.deliver(*received, now_ms=10)
    assert not rejections(replayed)
    assert not [action for action in replayed if isinstance(action, ViewEntered)]  # entered before
    assert not broadcasts(replayed)  # its votes stand as they were signed
    # Once it holds the NEW-VIEW of its view, another copy is stale, as before.
    assert [r.stale for r in rejections(bench.deliver(new_view, now_ms=20))] == [True]
    restarted.handle(RequestsPending(now_ms=20, pending=True))
    [view_change] = broadcasts(restarted.handle(Tick(now_ms=60_000)), m.ViewChange)
    [proof] = view_change.prepared
    assert (proof.seq, proof.view, proof.pre_prepare.block_hash) == (1, 2, first.hash)


def test_commits_of_garbage_from_one_sender_do_not_hide_a_quorums_commit() -> None:
    # A byzantine validator signs commits for n + 1 made-up blocks at a slot before the honest
    # ones arrive. Evidence was capped at n + 1 hashes a slot, whoever signed them, so the
    # honest quorum's hash was never counted and the replica never learnt it was behind.
    bench = Bench(n=7)
    first, second = bench.chain(2)
    junk = [bench.block(2, timestamp_ms=second.header.timestamp_ms + i) for i in range(1, 9)]
    bench.deliver(*(bench.commit(block, 6) for block in junk), now_ms=10)
    bench.deliver(*(bench.commit(second, sender) for sender in (0, 2, 3, 4, 5)), now_ms=10)
    assert not fetches(bench.replica.handle(Tick(now_ms=100)))
    [fetch] = fetches(bench.replica.handle(Tick(now_ms=600)))  # stuck for an interval
    assert (fetch.from_height, fetch.to_height) == (1, 2) and 6 not in fetch.hint
    assert first.height == 1
