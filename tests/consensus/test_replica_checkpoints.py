"""Checkpoints: stable at a quorum, garbage collection, watermarks, and state divergence."""

from __future__ import annotations

from consensus import messages as m
from consensus.actions import Action, CheckpointStable, StateDivergence
from consensus.events import BlockExecuted, ProposeBatch
from tests.consensus.pbft_bench import Bench, broadcasts

DIGEST = b"\x0d" * 32
OTHER_DIGEST = b"\x0e" * 32


def committed_and_executed(bench: Bench, height: int) -> list[Action]:
    """Commit and execute blocks 1..height at the bench replica; the actions of the last step."""
    actions: list[Action] = []
    for block in bench.chain(height):
        bench.deliver(bench.pre_prepare(block))
        bench.commit_block(block)
        actions = bench.execute(block.height, DIGEST if block.height == height else bytes(32))
    return actions


def stable_events(actions: list[Action]) -> list[CheckpointStable]:
    return [action for action in actions if isinstance(action, CheckpointStable)]


def test_executing_a_checkpoint_height_broadcasts_a_signed_checkpoint() -> None:
    bench = Bench(checkpoint_interval=2, watermark_window=4)
    block = bench.block(1)
    bench.deliver(bench.pre_prepare(block))
    bench.commit_block(block)
    assert not broadcasts(bench.execute(1, bytes(32)), m.Checkpoint)  # not a checkpoint height
    bench = Bench(checkpoint_interval=2, watermark_window=4)
    [checkpoint] = broadcasts(committed_and_executed(bench, 2), m.Checkpoint)
    assert isinstance(checkpoint, m.Checkpoint)
    assert (checkpoint.seq, checkpoint.block_hash, checkpoint.state_digest) == (
        2,
        bench.blocks[2].hash,
        DIGEST,
    )


def test_checkpoint_is_stable_with_2f_plus_1_and_collects_the_log() -> None:
    bench = Bench(checkpoint_interval=2, watermark_window=4)
    committed_and_executed(bench, 2)
    block_hash = bench.blocks[2].hash
    assert bench.replica.log_size == 2
    assert not stable_events(bench.deliver(bench.checkpoint(2, block_hash, DIGEST, 0)))
    [stable] = stable_events(bench.deliver(bench.checkpoint(2, block_hash, DIGEST, 3)))
    assert (stable.seq, stable.state_digest) == (2, DIGEST)
    replica = bench.replica
    assert (replica.low_watermark, replica.high_watermark) == (2, 6)
    assert replica.log_size == 0
    proof = replica.stable_checkpoint
    assert proof is not None and [c.sender for c in proof.proof] == [0, 1, 3]


def test_quorum_before_own_execution_becomes_stable_when_executed() -> None:
    bench = Bench(checkpoint_interval=2, watermark_window=4)
    first, second = bench.chain(2)
    for block in (first, second):
        bench.deliver(bench.pre_prepare(block))
        bench.commit_block(block)
    votes = [bench.checkpoint(2, second.hash, DIGEST, sender) for sender in (0, 2, 3)]
    assert not stable_events(bench.deliver(*votes))
    bench.execute(1, bytes(32))
    [stable] = stable_events(bench.execute(2, DIGEST))
    assert stable.seq == 2 and bench.replica.low_watermark == 2


def test_quorum_on_a_different_digest_reports_state_divergence() -> None:
    bench = Bench(checkpoint_interval=2, watermark_window=4)
    committed_and_executed(bench, 2)
    block_hash = bench.blocks[2].hash
    votes = [bench.checkpoint(2, block_hash, OTHER_DIGEST, sender) for sender in (0, 2, 3)]
    actions = bench.deliver(*votes)
    [divergence] = [a for a in actions if isinstance(a, StateDivergence)]
    assert (divergence.height, divergence.ours, divergence.quorum) == (2, DIGEST, OTHER_DIGEST)
    assert not stable_events(actions)
    assert bench.replica.low_watermark == 0


def test_watermarks_advance_so_the_primary_can_keep_proposing() -> None:
    bench = Bench(index=0, checkpoint_interval=2, watermark_window=2)
    replica = bench.replica
    for seq in (1, 2):
        [pp] = broadcasts(replica.handle(ProposeBatch(txs=(), now_ms=seq)), m.PrePrepare)
        assert isinstance(pp, m.PrePrepare)
        bench.blocks[seq] = pp.block
        bench.deliver(bench.prepare(pp.block, 1), bench.prepare(pp.block, 2))
        bench.deliver(bench.commit(pp.block, 1), bench.commit(pp.block, 2))
    assert not replica.can_propose
    replica.handle(BlockExecuted(height=1, state_digest=bytes(32)))
    replica.handle(BlockExecuted(height=2, state_digest=DIGEST))
    bench.deliver(*(bench.checkpoint(2, bench.blocks[2].hash, DIGEST, s) for s in (1, 2)))
    assert replica.low_watermark == 2 and replica.can_propose and replica.next_seq == 3
