"""scripts/oracle_cost.py end to end on one short pair: every phase commits the bench's load, and
on the cluster with the model registered every validator reports predictions on the readings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scripts.oracle_cost import main

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def test_one_short_pair_measures_both_phases(tmp_path: Path) -> None:
    out = tmp_path / "oracle-cost.json"
    argv = ["--pairs", "1", "--duration", "3", "--machines", "2", "--rate", "300"]
    argv += ["--warm-up", "1", "--training-operations", "300"]
    assert main([*argv, "--json", str(out)]) == 0
    summary = json.loads(out.read_text())
    pair = summary["pairs"][0]
    for side in ("without", "with"):
        assert len(pair[side]) == 2  # in the order without, with, with, without
        for phase in pair[side]:
            assert phase["committed"] > 0
            assert phase["readings_submitted"] > 0
            assert phase["node_cpu_us_per_bench_tx"] > 0
            assert phase["node_cpu_us_per_tx"] > 0  # the bench's, over every committed tx
    assert all(phase["oracle"]["reports_submitted"] == 0 for phase in pair["without"])
    assert all(phase["oracle"]["model"] is not None for phase in pair["with"])
    first, second = (phase["oracle"]["reports_submitted"] for phase in pair["with"])
    assert 0 < first < second  # reports in each measured phase
    assert summary["cost_median"] == pytest.approx(1 - pair["ratio"], abs=1e-3)
    assert pair["cpu_ratio"] == pytest.approx(
        pair["node_cpu_us_per_bench_tx_with"] / pair["node_cpu_us_per_bench_tx_without"], abs=1e-3
    )
    assert summary["cpu_cost_median"] == pytest.approx(pair["cpu_ratio"] - 1, abs=1e-3)


def test_bad_arguments_are_refused_with_a_message(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--pairs", "0"])
    assert "--pairs" in capsys.readouterr().err
