"""A short soak (scripts/soak.py) on a real 4-node cluster: about 75 s of load while a seeded
nemesis kills and restarts, pauses and partitions nodes (each kind at least once), then every
transaction a client saw committed must sit exactly once, at the height it was told, in every
node's certified chain, and the nodes must agree block by block."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts.soak import Kind, SoakConfig, run_soak, summary

pytestmark = [pytest.mark.slow, pytest.mark.integration]

ACKED_MIN = 1000  # about 7000 in 75 s on an idle 2-core machine


def test_a_short_soak_under_kills_pauses_and_partitions_loses_nothing(tmp_path: Path) -> None:
    config = SoakConfig(
        nodes=4,
        duration_s=60,
        seed=11,
        quiet_s=(2.0, 5.0),
        fault_s=(2.0, 5.0),
        settle_s=10,
    )
    report = run_soak(tmp_path / "cluster", config)
    print(summary(report))
    assert all(report.nemesis["by_kind"][kind] >= 1 for kind in Kind), report.nemesis["by_kind"]
    assert report.txs["lost"] == 0, report.txs
    assert report.txs["duplicated"] == 0, report.txs
    assert report.txs["moved"] == 0, report.txs
    assert report.txs["acknowledged"] >= ACKED_MIN, report.txs
    assert report.passed, report.failures
