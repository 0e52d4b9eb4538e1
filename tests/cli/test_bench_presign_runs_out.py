"""An unpaced bench whose pre-signed transactions run out before the end of the load does not
report what it committed as the cluster's throughput: the senders stopped, not the cluster.

The cluster is a fake (tests.cli.test_bench_drain_own_txs.py) that takes whatever it is sent at
once, as a cluster faster than UNPACED_PRESIGN_PER_S would.
"""

from __future__ import annotations

import pytest

from cli import bench
from tests.cli.bench_fake import SENDERS, FakeCluster, FakeLayout, use_fake_cluster


async def test_a_load_that_ran_out_of_transactions_is_not_reported_as_throughput(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cluster = FakeCluster(submit_delay_s=0.005)
    use_fake_cluster(monkeypatch, cluster)
    try:
        figures = await bench._offer_load(
            FakeLayout(),  # type: ignore[arg-type]
            SENDERS,
            duration_s=2.0,
            rate_per_s=0,
            batch=64,
        )
    except bench.BenchError as exc:
        assert "ran out" in str(exc)
        return
    presigned = int(bench.UNPACED_PRESIGN_PER_S * 2.0 * 1.1) + 1000
    # The senders sent all they had and stopped long before the end of the load.
    assert figures["submitted"] == presigned
    assert figures.get("load_ran_out") is True, (
        f"{figures['committed_tx_per_s']} tx/s reported as the cluster's throughput, but the "
        f"senders ran out of their {presigned:,} pre-signed transactions before the end"
    )
