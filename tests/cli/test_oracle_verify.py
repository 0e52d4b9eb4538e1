"""`millchain oracle verify`: with no model registered there is nothing to verify, which is an
error, as is a range in which no reading has a final prediction (nothing was verified); a
--from above the head is refused as --to below --from is."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cli.layout import ClusterDir, init_cluster
from cli.main import main
from oracle.model.artifact import save_model
from oracle.model.training import train
from oracle.telemetry.simulator import simulate_fleet
from tests.clusters import millchain, running_cluster


@pytest.mark.slow
def test_verify_refuses_a_chain_without_a_model_and_a_start_above_the_head(
    tmp_path: Path,
) -> None:
    root = tmp_path / "cluster"
    with running_cluster(root):
        result = millchain("oracle", "verify", "--dir", str(root))
        assert result.returncode == 1, result.stdout + result.stderr
        assert "no fault model is registered on the chain: nothing to verify" in result.stderr
        assert "final predictions reproduced" not in result.stdout

        result = millchain("oracle", "verify", "--from", "9999", "--dir", str(root))
        assert result.returncode == 2, result.stdout + result.stderr
        assert "--from 9999 is above the head" in result.stderr
        assert "heights 9999" not in result.stdout


@pytest.mark.slow
def test_verify_on_a_chain_with_a_model_but_no_readings_verified_nothing(tmp_path: Path) -> None:
    model_file = tmp_path / "model.skops"
    save_model(train(simulate_fleet(machines=3, operations=1000, seed=11), seed=5), model_file)
    root = tmp_path / "cluster"
    with running_cluster(root):
        registered = millchain("oracle", "register", str(model_file), "--dir", str(root))
        assert registered.returncode == 0, registered.stdout + registered.stderr
        for extra in ((), ("--json",)):
            result = millchain("oracle", "verify", "--dir", str(root), *extra)
            assert result.returncode == 1, result.stdout + result.stderr
            assert "no machine reading is committed in heights 1.." in result.stderr
            assert ": nothing to verify" in result.stderr
            assert result.stdout == ""


def _report(*, checked: int, not_final: int) -> dict[str, Any]:
    return {
        "from": 1,
        "to": 9,
        "final_checked": checked,
        "reproduced": checked,
        "not_final": not_final,
        "final_lag_blocks_max": 2 if checked else 0,
        "mismatches": [],
    }


def _verify_with(
    monkeypatch: pytest.MonkeyPatch, layout: ClusterDir, report: dict[str, Any], *extra: str
) -> Any:
    async def verify_range(*_: Any) -> dict[str, Any]:
        return report

    monkeypatch.setattr("cli.oracle_chain_cmd.verify_range", verify_range)
    return CliRunner().invoke(main, ["oracle", "verify", "--dir", str(layout.root), *extra])


@pytest.mark.parametrize("extra", [(), ("--json",)])
def test_readings_without_a_final_prediction_verified_nothing_and_exit_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra: tuple[str, ...]
) -> None:
    layout = init_cluster(tmp_path / "cluster", nodes=4)
    result = _verify_with(monkeypatch, layout, _report(checked=0, not_final=7), *extra)
    assert result.exit_code == 1, result.output
    assert (
        "none of the 7 machine readings committed in heights 1..9 has a final prediction yet: "
        "nothing verified" in result.output
    )
    assert "reproduced" not in result.stdout


def test_final_predictions_all_reproduced_exit_0(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    layout = init_cluster(tmp_path / "cluster", nodes=4)
    result = _verify_with(monkeypatch, layout, _report(checked=3, not_final=1), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["reproduced"] == 3
