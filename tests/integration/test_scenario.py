"""`millchain scenario`: all three strategies on live clusters, a report, and a rerun that
gives the same business figures for the same seed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.clusters import millchain

pytestmark = [pytest.mark.slow, pytest.mark.integration]

SETTINGS = ("--machines", "4", "--hours", "4", "--seed", "3")


def test_compare_writes_a_report_and_a_rerun_reproduces_the_business(tmp_path: Path) -> None:
    out = tmp_path / "report"
    compared = millchain("scenario", "compare", *SETTINGS, "--out", str(out), timeout_s=600)
    assert compared.returncode == 0, compared.stdout + compared.stderr
    for name in ("report.html", "scenario.json", "failures.png", "modes_oee.png", "cost.png"):
        assert (out / name).stat().st_size > 0, name
    result = json.loads((out / "scenario.json").read_text())
    assert sorted(result["runs"]) == ["predictive", "preventive", "reactive"]
    for run in result["runs"].values():
        business = run["business"]
        assert business["orders"]["placed"] > 0
        assert business["operations"] > 0
        assert 0 < business["oee"] <= 1
        assert run["chain"]["blocks"] > 0
    assert result["runs"]["reactive"]["business"]["tool_changes"] == 0
    assert result["model"]["failure_modes"] == ["twf", "osf"]
    page = (out / "report.html").read_text()
    assert "Fewer failures than reactive" in page and "Cost model" in page

    again = tmp_path / "again.json"
    rerun = millchain(
        "scenario",
        "run",
        "--strategy",
        "predictive",
        *SETTINGS,
        "--json",
        str(again),
        timeout_s=600,
    )
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    repeated = json.loads(again.read_text())["runs"]["predictive"]
    assert repeated["business"] == result["runs"]["predictive"]["business"]
    assert repeated["timeline"] == result["runs"]["predictive"]["timeline"]


def test_bad_settings_are_refused_before_anything_starts() -> None:
    for machines in ("1", "65"):
        refused = millchain("scenario", "run", "--strategy", "reactive", "--machines", machines)
        assert refused.returncode == 2
        assert "--machines must be between 2 (one per kind of cell) and 64" in refused.stderr
