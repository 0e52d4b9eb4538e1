"""`millchain oracle`: simulate, train, evaluate and compare through the click group."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from cli.oracle_cmd import oracle


def _invoke(*args: str) -> str:
    result = CliRunner().invoke(oracle, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_simulate_train_evaluate(tmp_path: Path) -> None:
    data, model = tmp_path / "t.csv", tmp_path / "m.skops"
    _invoke("simulate", "--machines", "2", "--operations", "800", "--seed", "3", "--out", str(data))
    _invoke("train", "--data", str(data), "--out", str(model), "--model", "hist_gradient_boosting")
    sidecar = json.loads((tmp_path / "m.skops.json").read_text())
    assert sidecar["name"] == "hist_gradient_boosting" and len(sidecar["artifact_sha256"]) == 64
    plot = tmp_path / "pr.png"
    out = _invoke(
        "evaluate", "--model", str(model), "--data", str(data), "--json", "--plot", str(plot)
    )
    report = json.loads(out)
    assert set(report["evaluation"]["confusion"]) == {"tn", "fp", "fn", "tp"}
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluate_refuses_a_tampered_model(tmp_path: Path) -> None:
    data, model = tmp_path / "t.csv", tmp_path / "m.skops"
    _invoke("simulate", "--machines", "2", "--operations", "600", "--seed", "3", "--out", str(data))
    _invoke("train", "--data", str(data), "--out", str(model), "--model", "logistic")
    model.write_bytes(model.read_bytes() + b"\x00")
    result = CliRunner().invoke(oracle, ["evaluate", "--model", str(model), "--data", str(data)])
    assert result.exit_code == 1
    assert "refusing" in result.output


def test_compare_without_a_model_is_refused(tmp_path: Path) -> None:
    fit = tmp_path / "fit.csv"
    _invoke("simulate", "--machines", "1", "--operations", "50", "--seed", "1", "--out", str(fit))
    result = CliRunner().invoke(
        oracle, ["compare", "--train", str(fit), "--test", str(fit), "--models", " , "]
    )
    assert result.exit_code == 2 and "name at least one model" in result.output


def test_compare_prints_every_requested_model(tmp_path: Path) -> None:
    fit, test = tmp_path / "fit.csv", tmp_path / "test.csv"
    _invoke("simulate", "--machines", "2", "--operations", "600", "--seed", "1", "--out", str(fit))
    _invoke("simulate", "--machines", "1", "--operations", "600", "--seed", "2", "--out", str(test))
    out = _invoke(
        "compare", "--train", str(fit), "--test", str(test), "--models", "logistic,svm", "--json"
    )
    rows = json.loads(out)
    assert [row["name"] for row in rows] == ["logistic", "svm"]
    assert all(0.0 <= row["test"]["f1"] <= 1.0 for row in rows)
