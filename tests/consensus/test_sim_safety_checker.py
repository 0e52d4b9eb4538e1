"""The safety checker bites: forks and regressions raise SafetyViolation naming the seed."""

from __future__ import annotations

import dataclasses

import pytest

from consensus import messages as m
from consensus.actions import Action, CommitBlock
from consensus.errors import SafetyViolation
from consensus.replica import Replica
from consensus.sim.checker import SafetyChecker
from consensus.sim.harness import GENESIS_STATE_DIGEST, ActionHook, Cluster
from ledger.block import ZERO_HASH, Block


def forge_at(replica: int, height: int) -> ActionHook:
    """An action hook that swaps `replica`'s committed block at `height` for a different one."""

    def hook(index: int, action: Action) -> list[Action]:
        if index == replica and isinstance(action, CommitBlock) and action.block.height == height:
            header = dataclasses.replace(action.block.header, timestamp_ms=123_456_789)
            forged = Block(header=header, txs=action.block.txs)
            return [dataclasses.replace(action, block=forged)]
        return [action]

    return hook


def test_a_forged_block_at_one_replica_is_a_fork() -> None:
    cluster = Cluster(4, seed=31, blocks_max=10, action_hook=forge_at(2, 3))
    with pytest.raises(SafetyViolation, match=r"seed 31: fork at height 3"):
        cluster.run_until_committed(10, time_ms_max=10_000)


def test_a_commit_handed_out_twice_is_a_regression() -> None:
    def hook(index: int, action: Action) -> list[Action]:
        if index == 1 and isinstance(action, CommitBlock) and action.block.height == 4:
            return [action, action]
        return [action]

    cluster = Cluster(4, seed=32, blocks_max=10, action_hook=hook)
    with pytest.raises(SafetyViolation, match=r"seed 32: replica 1 committed height 4 after 4"):
        cluster.run_until_committed(10, time_ms_max=10_000)


def test_a_commit_the_replica_does_not_report_is_caught_after_the_step() -> None:
    def hook(index: int, action: Action) -> list[Action]:
        if index == 0 and isinstance(action, CommitBlock) and action.block.height == 2:
            return []
        return [action]

    cluster = Cluster(4, seed=33, blocks_max=10, action_hook=hook)
    with pytest.raises(SafetyViolation, match="seed 33: replica 0 reports committed height 2"):
        cluster.run_until_committed(10, time_ms_max=10_000)


class CarelessReplica(Replica):
    """A broken variant: prepared on f prepares and committed on f+1 commits."""

    def _prepares_needed(self) -> int:
        return self.config.f

    def _commit_quorum(self) -> int:
        return self.config.f + 1


def equivocate(cluster: Cluster) -> None:
    """Byzantine primary 0 proposes block A to replicas 1 and 2, block B to replica 3, and
    backs each with its own commit."""
    keys, chain_id = cluster.keys[0], cluster.chain_id
    blocks = [
        Block.build(
            chain_id=chain_id,
            height=1,
            prev_hash=ZERO_HASH,
            state_height=0,
            state_digest=GENESIS_STATE_DIGEST,
            proposer=0,
            view=0,
            timestamp_ms=stamp,
            txs=(),
        )
        for stamp in (1, 2)
    ]
    for destination, block in ((1, blocks[0]), (2, blocks[0]), (3, blocks[1])):
        pre_prepare = m.sign_pre_prepare(keys, chain_id, view=0, seq=1, block=block, sender=0)
        commit = m.sign_commit(keys, chain_id, view=0, seq=1, block_hash=block.hash, sender=0)
        cluster.inject(destination, pre_prepare)
        cluster.inject(destination, commit)


def test_careless_quorums_let_an_equivocating_primary_fork_the_chain() -> None:
    cluster = Cluster(4, seed=35, crashed={0}, replica_factory=CarelessReplica)
    with pytest.raises(SafetyViolation, match="seed 35: fork at height 1"):
        equivocate(cluster)
        cluster.run_until(lambda c: False, time_ms_max=1_000)


def test_honest_quorums_survive_the_same_equivocating_primary() -> None:
    cluster = Cluster(4, seed=35, crashed={0})
    equivocate(cluster)
    cluster.run_until(lambda c: False, time_ms_max=1_000)
    assert [r.committed_height for r in cluster.replicas] == [0, 1, 1, 0]


def test_checker_accepts_identical_commits_from_every_replica() -> None:
    cluster = Cluster(4, seed=34, blocks_max=3)
    assert cluster.run_until_committed(3, time_ms_max=10_000)
    checker = SafetyChecker(seed=34, start_heights=[0, 0])
    for commit in cluster.records[0].commits:
        checker.on_commit(0, commit.block)
        checker.on_commit(1, commit.block)
    assert checker.committed_hash(3) == cluster.records[0].commits[2].block.hash


def test_honest_commits_that_f_byzantine_ones_would_certify_for_another_block_are_caught() -> None:
    # n = 4: two honest commits for a block other than the committed one, in one view, plus the
    # byzantine replica's make a certificate; in either order of commit and votes.
    cluster = Cluster(4, seed=34, blocks_max=1)
    assert cluster.run_until_committed(1, time_ms_max=10_000)
    block = cluster.records[0].commits[0].block
    other = bytes(32)
    checker = SafetyChecker(seed=36, start_heights=[0] * 4)
    checker.on_commit(0, block)
    checker.on_commit_vote(1, 1, 1, other)
    checker.on_commit_vote(2, 2, 1, other)  # another view: no certificate with the first
    checker.on_commit_vote(3, 1, 1, block.hash)
    with pytest.raises(SafetyViolation, match=r"seed 36: honest replicas \[1, 2\] .* height 1"):
        checker.on_commit_vote(2, 1, 1, other)
    checker = SafetyChecker(seed=37, start_heights=[0] * 4)
    checker.on_commit_vote(1, 1, 1, other)
    checker.on_commit_vote(2, 1, 1, other)
    with pytest.raises(SafetyViolation, match=r"seed 37: honest replicas \[1, 2\]"):
        checker.on_commit(0, block)
