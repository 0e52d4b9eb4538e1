"""One replica through pre-prepare, prepare and commit, driven message by message."""

from __future__ import annotations

import pytest

from consensus import messages as m
from consensus.actions import CommitBlock
from consensus.errors import ConfigError, LocalProtocolError
from consensus.events import BlockExecuted, BlocksTransferred, ProposeBatch, Tick
from consensus.replica import ReplicaConfig
from ledger.block import ZERO_HASH
from tests.consensus.pbft_bench import (
    CHAIN_ID,
    GENESIS_DIGEST,
    GENESIS_TIME_MS,
    Bench,
    broadcasts,
    commits,
    make_tx,
    rejections,
)


def test_backup_prepares_a_valid_pre_prepare() -> None:
    bench = Bench()
    block = bench.block(1)
    actions = bench.deliver(bench.pre_prepare(block))
    [prepare] = broadcasts(actions, m.Prepare)
    assert (prepare.view, prepare.seq, prepare.block_hash) == (0, 1, block.hash)
    assert prepare.sender == 1
    assert bench.replica.in_flight == (1,)


def test_prepared_backup_commits_and_a_quorum_of_commits_commits_the_block() -> None:
    bench = Bench()
    block = bench.block(1)
    bench.deliver(bench.pre_prepare(block))
    actions = bench.deliver(bench.prepare(block, 2))  # own + 2 = 2f prepares
    [commit] = broadcasts(actions, m.Commit)
    assert commit.block_hash == block.hash
    assert not commits(bench.deliver(bench.commit(block, 0)))
    [committed] = commits(bench.deliver(bench.commit(block, 3)))
    assert committed.block == block
    assert bench.replica.committed_height == 1
    assert bench.replica.in_flight == ()


def test_certificate_holds_a_quorum_of_commits_sorted_by_index_and_verifies() -> None:
    bench = Bench(n=7, index=4)
    block = bench.block(1)
    bench.deliver(bench.pre_prepare(block))
    [committed] = commits(bench.commit_block(block))
    certificate = committed.certificate
    assert [index for index, _ in certificate.commits] == sorted(i for i, _ in certificate.commits)
    assert len(certificate.commits) == bench.config.quorum
    assert (certificate.height, certificate.view, certificate.block_hash) == (1, 0, block.hash)
    certificate.verify(chain_id=CHAIN_ID, validators=bench.validators)


def test_prepares_from_one_backup_do_not_make_a_quorum() -> None:
    bench = Bench()
    block = bench.block(1)
    bench.deliver(bench.pre_prepare(block))
    actions = bench.deliver(bench.prepare(block, 2), bench.prepare(block, 2))
    assert len(broadcasts(actions, m.Commit)) == 1
    bench2 = Bench(n=7, index=1)  # 2f = 4: own + 2 others is not enough
    block = bench2.block(1)
    bench2.deliver(bench2.pre_prepare(block))
    actions = bench2.deliver(bench2.prepare(block, 2), bench2.prepare(block, 3))
    assert not broadcasts(actions, m.Commit)


def test_commits_wait_for_prepared_even_with_a_quorum_of_commits() -> None:
    bench = Bench()
    block = bench.block(1)
    bench.deliver(bench.pre_prepare(block))
    actions = bench.deliver(*(bench.commit(block, sender) for sender in (0, 2, 3)))
    assert not commits(actions)
    [committed] = commits(bench.deliver(bench.prepare(block, 3)))
    assert committed.block == block


def test_pre_prepare_waiting_for_its_parent_is_buffered_then_accepted() -> None:
    bench = Bench()
    first, second = bench.chain(2)
    assert not bench.deliver(bench.pre_prepare(second))
    assert bench.replica.in_flight == (2,)
    actions = bench.deliver(bench.pre_prepare(first))
    prepared_seqs = [prepare.seq for prepare in broadcasts(actions, m.Prepare)]
    assert prepared_seqs == [1]  # seq 2 is accepted but waits for 1 to be prepared


def test_prepare_for_seq_waits_until_previous_seq_is_prepared() -> None:
    bench = Bench()
    first, second = bench.chain(2)
    bench.deliver(bench.pre_prepare(first), bench.pre_prepare(second))
    actions = bench.deliver(bench.prepare(first, 2))
    assert [p.seq for p in broadcasts(actions, m.Prepare)] == [2]
    assert [c.seq for c in broadcasts(actions, m.Commit)] == [1]


def test_blocks_are_handed_out_in_height_order() -> None:
    bench = Bench()
    first, second = bench.chain(2)
    bench.deliver(bench.pre_prepare(first), bench.pre_prepare(second))
    bench.deliver(bench.prepare(first, 2))
    assert not commits(bench.commit_block(second))
    actions = bench.commit_block(first)
    assert [c.block.height for c in commits(actions)] == [1, 2]


def test_duplicates_are_ignored_and_nothing_is_signed_twice() -> None:
    bench = Bench()
    block = bench.block(1)
    pre_prepare = bench.pre_prepare(block)
    assert broadcasts(bench.deliver(pre_prepare))
    assert bench.deliver(pre_prepare) == []
    bench.deliver(bench.prepare(block, 2))
    assert bench.deliver(bench.prepare(block, 2), bench.prepare(block, 3)) == []


def test_primary_proposes_block_on_top_of_its_last_proposal() -> None:
    bench = Bench(index=0)
    replica = bench.replica
    assert replica.is_primary and replica.can_propose and replica.next_seq == 1
    [first] = broadcasts(replica.handle(ProposeBatch(txs=(make_tx(1),), now_ms=5_000)))
    [second] = broadcasts(replica.handle(ProposeBatch(txs=(make_tx(2),), now_ms=10)))
    assert isinstance(first, m.PrePrepare) and isinstance(second, m.PrePrepare)
    header = first.block.header
    assert (header.height, header.prev_hash, header.proposer, header.view) == (1, ZERO_HASH, 0, 0)
    assert (header.state_height, header.state_digest) == (0, GENESIS_DIGEST)
    assert header.timestamp_ms == 5_000
    assert second.block.header.prev_hash == first.block.hash
    assert second.block.header.timestamp_ms == 5_000  # never before its parent
    assert replica.in_flight == (1, 2) and replica.next_seq == 3
    m.verify_signature(first, CHAIN_ID, bench.validators)


def test_primary_commits_after_2f_backup_prepares() -> None:
    bench = Bench(index=0)
    [pre_prepare] = broadcasts(bench.replica.handle(ProposeBatch(txs=(), now_ms=0)))
    assert isinstance(pre_prepare, m.PrePrepare)
    block = pre_prepare.block
    actions = bench.deliver(bench.prepare(block, 1), bench.prepare(block, 2))
    assert len(broadcasts(actions, m.Commit)) == 1
    [committed] = commits(bench.deliver(bench.commit(block, 1), bench.commit(block, 3)))
    assert committed.block == block


def test_proposal_header_names_the_latest_executed_state() -> None:
    bench = Bench(index=0)
    replica = bench.replica
    [pp] = broadcasts(replica.handle(ProposeBatch(txs=(), now_ms=0)))
    assert isinstance(pp, m.PrePrepare)
    bench.deliver(bench.prepare(pp.block, 1), bench.prepare(pp.block, 2), bench.commit(pp.block, 1))
    bench.deliver(bench.commit(pp.block, 2))
    replica.handle(BlockExecuted(height=1, state_digest=b"\x05" * 32))
    [pp2] = broadcasts(replica.handle(ProposeBatch(txs=(), now_ms=0)))
    assert isinstance(pp2, m.PrePrepare)
    assert (pp2.block.header.state_height, pp2.block.header.state_digest) == (1, b"\x05" * 32)


def test_backup_refuses_to_propose() -> None:
    bench = Bench(index=1)
    assert not bench.replica.can_propose
    with pytest.raises(LocalProtocolError, match="cannot propose"):
        bench.replica.handle(ProposeBatch(txs=(), now_ms=0))


def test_primary_stops_proposing_at_the_high_watermark() -> None:
    bench = Bench(index=0, checkpoint_interval=2, watermark_window=3)
    for _ in range(3):
        bench.replica.handle(ProposeBatch(txs=(), now_ms=0))
    assert bench.replica.next_seq == 4 and bench.replica.high_watermark == 3
    assert not bench.replica.can_propose
    with pytest.raises(LocalProtocolError):
        bench.replica.handle(ProposeBatch(txs=(), now_ms=0))


def test_blocks_must_be_executed_in_order_and_after_commit() -> None:
    bench = Bench()
    with pytest.raises(LocalProtocolError, match="expected 1"):
        bench.execute(1, b"\x01" * 32)  # not committed yet
    block = bench.block(1)
    bench.deliver(bench.pre_prepare(block))
    bench.commit_block(block)
    bench.execute(1, b"\x01" * 32)
    with pytest.raises(LocalProtocolError):
        bench.execute(3, b"\x01" * 32)
    assert bench.replica.executed_height == 1


def test_tick_does_nothing_in_the_normal_case() -> None:
    assert Bench().replica.handle(Tick(now_ms=123)) == []


def test_configuration_is_checked() -> None:
    bench = Bench()
    with pytest.raises(ConfigError, match="at least 4"):
        ReplicaConfig(
            chain_id=CHAIN_ID,
            validators=bench.validators[:3],
            index=0,
            checkpoint_interval=1,
            watermark_window=1,
        )
    with pytest.raises(ConfigError, match="never advance"):
        ReplicaConfig(
            chain_id=CHAIN_ID,
            validators=bench.validators,
            index=0,
            checkpoint_interval=10,
            watermark_window=5,
        )


def test_late_commits_after_committing_change_nothing() -> None:
    bench = Bench()
    block = bench.block(1)
    bench.deliver(bench.pre_prepare(block))
    bench.commit_block(block)
    actions = bench.deliver(bench.commit(block, 3))
    assert not commits(actions) and not rejections(actions)
    assert all(not isinstance(a, CommitBlock) for a in actions)
    assert block.header.timestamp_ms > GENESIS_TIME_MS


def test_a_commit_waits_until_the_parent_commit_went_out() -> None:
    # Block 2 is prepared here (2f prepares from the others) while block 1 is not. A commit for
    # 2 now could complete a certificate for 2 while block 1 is prepared at too few replicas for
    # a view change to keep it: the next view would put a null block under a certified one.
    bench = Bench()
    first, second = bench.chain(2)
    bench.deliver(bench.pre_prepare(first), bench.pre_prepare(second))
    actions = bench.deliver(bench.prepare(second, 2), bench.prepare(second, 3))
    assert not broadcasts(actions, m.Commit)
    actions = bench.deliver(bench.prepare(first, 2))
    assert [c.seq for c in broadcasts(actions, m.Commit)] == [1, 2]


def test_a_block_that_does_not_chain_to_the_committed_one_below_is_never_handed_out() -> None:
    # Block 2 gathered its commits here, then a state transfer brings a different block 1 (which
    # takes more than f faulty replicas); block 2 does not go out on top of it.
    bench = Bench()
    first, second = bench.chain(2)
    bench.deliver(bench.pre_prepare(first), bench.pre_prepare(second))
    bench.deliver(bench.prepare(first, 2), bench.prepare(second, 2))
    assert not commits(bench.deliver(bench.commit(second, 0), bench.commit(second, 2)))
    other = bench.block(1, timestamp_ms=GENESIS_TIME_MS + 99)
    transferred = BlocksTransferred(
        header=other.header,
        certificate=bench.certificate(other, view=1),
        state_digest=GENESIS_DIGEST,
        now_ms=10,
    )
    actions = bench.replica.handle(transferred)
    assert not commits(actions)
    assert bench.replica.committed_height == 1
