"""scripts/oracle_cost.py end to end on one short pair: both phases commit the bench's load, the
second with the model registered and every validator reporting predictions on the readings."""

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
    for phase in ("without", "with"):
        assert pair[phase]["committed"] > 0
        assert pair[phase]["readings_submitted"] > 0
    assert pair["without"]["oracle"]["reports_submitted"] == 0
    assert pair["with"]["oracle"]["model"] is not None
    assert pair["with"]["oracle"]["reports_submitted"] > 0
    assert summary["cost_median"] == pytest.approx(1 - pair["ratio"], abs=1e-3)


def test_bad_arguments_are_refused_with_a_message(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--pairs", "0"])
    assert "--pairs" in capsys.readouterr().err
