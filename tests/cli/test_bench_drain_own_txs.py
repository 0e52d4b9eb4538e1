"""The bench's wait for its admitted transactions to commit ends when they have committed, not
when the count of every hash the watched node committed (other clients' transactions too, such
as the oracle's readings and reports in scripts/oracle_cost.py) reaches the count submitted.

The bench runs against a fake cluster (tests/cli/bench_fake.py): it admits every transaction at
once and commits each half a second later, in blocks that also carry other clients' ones.
"""

from __future__ import annotations

import pytest

from cli import bench
from tests.cli.bench_fake import SENDERS, FakeCluster, FakeLayout, use_fake_cluster


async def test_other_clients_commits_do_not_end_the_wait_for_the_bench_transactions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cluster = FakeCluster(commit_delay_s=0.5, foreign_per_block=100)
    use_fake_cluster(monkeypatch, cluster)
    figures = await bench._offer_load(
        FakeLayout(),  # type: ignore[arg-type]
        SENDERS,
        duration_s=1.0,
        rate_per_s=400,
        batch=10,
    )
    assert figures["rejected"] == 0
    assert figures["submitted"] > 300
    # Every admitted transaction commits half a second after it was admitted, well within the
    # bench's 15-s wait: all of them count, and the slowest are in the latency figures.
    assert figures["committed"] == figures["submitted"]
