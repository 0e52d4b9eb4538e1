"""Whole clusters in the deterministic harness: agreement, pipelining, watermarks, crashes."""

from __future__ import annotations

import pytest

from consensus.sim.harness import Cluster
from consensus.sim.network import NetworkConfig


def chain_hashes(cluster: Cluster, index: int) -> list[bytes]:
    return [commit.block.hash for commit in cluster.records[index].commits]


def assert_identical_chains(cluster: Cluster, height: int) -> None:
    reference = chain_hashes(cluster, cluster.live[0])[:height]
    assert len(reference) == height
    for index in cluster.live:
        assert chain_hashes(cluster, index)[:height] == reference


@pytest.mark.parametrize("n", [4, 7, 10])
def test_normal_case_commits_identical_chains_with_valid_certificates(n: int) -> None:
    cluster = Cluster(n, seed=n, blocks_max=12)
    assert cluster.run_until_committed(12, time_ms_max=10_000)
    assert_identical_chains(cluster, 12)
    validators = [key.public_key for key in cluster.keys]
    for index in range(n):
        for height, commit in enumerate(cluster.records[index].commits, start=1):
            assert commit.block.height == height
            assert commit.certificate.block_hash == commit.block.hash
            commit.certificate.verify(chain_id=cluster.chain_id, validators=validators)
    for record in cluster.records:
        assert [r for r in record.rejections if not r.stale] == []
    assert all(not record.divergences for record in cluster.records)


def test_several_sequence_numbers_are_in_flight_at_once() -> None:
    network = NetworkConfig(delay_ms_min=10, delay_ms_max=30)
    cluster = Cluster(4, seed=3, network=network, batch_interval_ms=2, blocks_max=30)
    assert cluster.run_until_committed(30, time_ms_max=10_000)
    assert cluster.records[0].in_flight_max >= 5


@pytest.mark.slow
def test_long_run_keeps_committing_as_checkpoints_advance_the_watermarks() -> None:
    cluster = Cluster(4, seed=5, checkpoint_interval=10, watermark_window=40, txs_per_block=1)
    assert cluster.run_until_committed(500, time_ms_max=200_000)
    assert_identical_chains(cluster, 500)
    for replica in cluster.replicas:
        assert replica.low_watermark >= 480
        assert replica.log_size <= 40 + 10
    assert all(len(record.stable) >= 48 for record in cluster.records)


def test_primary_is_throttled_by_the_watermark_window() -> None:
    network = NetworkConfig(delay_ms_min=50, delay_ms_max=50)
    cluster = Cluster(4, seed=6, network=network, batch_interval_ms=1, watermark_window=10)
    cluster.run_until(lambda c: c.now_ms >= 40, time_ms_max=40)
    assert cluster.blocks_proposed == 10
    assert cluster.replicas[0].in_flight == tuple(range(1, 11))


@pytest.mark.parametrize(("n", "crashed"), [(4, {3}), (7, {1, 6}), (10, {2, 5, 9})])
def test_f_crashed_backups_do_not_stop_commits(n: int, crashed: set[int]) -> None:
    cluster = Cluster(n, seed=11, crashed=crashed, blocks_max=25, checkpoint_interval=5)
    assert cluster.run_until_committed(25, time_ms_max=20_000)
    assert_identical_chains(cluster, 25)
    assert all(cluster.replicas[i].committed_height == 0 for i in crashed)
    assert all(cluster.replicas[i].low_watermark >= 20 for i in cluster.live)


@pytest.mark.parametrize(("n", "crashed"), [(4, {2, 3}), (7, {1, 2, 3})])
def test_f_plus_1_crashed_backups_stop_commits_without_breaking_safety(
    n: int, crashed: set[int]
) -> None:
    cluster = Cluster(n, seed=12, crashed=crashed, blocks_max=10)
    assert not cluster.run_until_committed(1, time_ms_max=2_000)
    assert all(replica.committed_height == 0 for replica in cluster.replicas)


@pytest.mark.parametrize("seed", range(8))
def test_delivery_order_fuzz_keeps_identical_chains(seed: int) -> None:
    network = NetworkConfig(delay_ms_min=0, delay_ms_max=40, duplicate_rate=0.2)
    cluster = Cluster(
        4 + 3 * (seed % 2),
        seed=seed,
        network=network,
        batch_interval_ms=3,
        blocks_max=30,
        checkpoint_interval=4,
        watermark_window=8,
        execute_delay_ms=seed % 3,
    )
    assert cluster.run_until_committed(30, time_ms_max=20_000), f"seed {seed} stalled"
    assert_identical_chains(cluster, 30)
    assert cluster.network.stats.duplicated > 0


def test_same_seed_gives_the_same_run() -> None:
    def run(seed: int) -> tuple[int, list[bytes]]:
        network = NetworkConfig(delay_ms_min=1, delay_ms_max=20, duplicate_rate=0.1)
        cluster = Cluster(4, seed=seed, network=network, blocks_max=10)
        assert cluster.run_until_committed(10, time_ms_max=10_000)
        return cluster.now_ms, chain_hashes(cluster, 0)

    assert run(21) == run(21)
    assert run(21)[0] != run(22)[0] or run(21)[1] != run(22)[1]
