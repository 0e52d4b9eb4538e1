"""`millchain sim`: a summary, JSON, growth figures, and a non-zero exit naming the seed."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from click.testing import CliRunner

from cli.sim_cmd import sim
from consensus.sim.faults import FaultConfig


def test_sim_command_prints_a_summary_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "sim.json"
    result = CliRunner().invoke(
        sim, ["--nodes", "4", "--seeds", "2", "--faults", "loss,dup", "--json", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "runs 2 violations 0" in result.output
    document = json.loads(out.read_text())
    assert document["sweep"]["runs"] == 2 and document["sweep"]["commits"] > 0


def test_sim_command_reports_growth_with_n() -> None:
    result = CliRunner().invoke(sim, ["--seeds", "1", "--faults", "none", "--growth", "4,7"])
    assert result.exit_code == 0, result.output
    assert "n=  4" in result.output and "n=  7" in result.output


def test_sim_command_refuses_bad_options() -> None:
    result = CliRunner().invoke(sim, ["--faults", "meteor"])
    assert result.exit_code != 0 and "unknown fault" in result.output
    result = CliRunner().invoke(sim, ["--nodes", "4", "--byzantine", "2"])
    assert result.exit_code != 0 and "at most f = 1" in result.output


def test_a_longer_faulty_phase_is_run_and_named_in_the_command_that_reproduces_a_run(
    tmp_path: Path,
) -> None:
    out = tmp_path / "sim.json"
    args = ["--seeds", "1", "--faults", "crash", "--faulty-ms", "9000", "--json", str(out)]
    result = CliRunner().invoke(sim, args)
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["sweep"]["sim_ms"] >= 9000
    longer = dataclasses.replace(FaultConfig.parse("crash"), faulty_ms=9000)
    assert longer.cli_options() == "--faults crash --byzantine 0 --faulty-ms 9000"
    assert FaultConfig.parse("crash").cli_options() == "--faults crash --byzantine 0"
    result = CliRunner().invoke(sim, ["--faulty-ms", "50"])
    assert result.exit_code != 0 and "--faulty-ms" in result.output
