"""`millchain oracle`: simulate telemetry, train, evaluate and compare fault models.

Files: telemetry is CSV in the AI4I 2020 layout; a model is a skops artifact MODEL with a sidecar
MODEL.json holding its metadata and sha256. `evaluate` loads MODEL only if its sha256 is the one
given by --sha256, or else the one in MODEL.json.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from cli.common import OutputFile, console, guarded, json_option, print_json, table
from oracle.errors import ArtifactError
from oracle.model import (
    DEFAULT_MODEL,
    MODEL_NAMES,
    Comparison,
    Evaluation,
    FaultModel,
    compare,
    evaluate,
    load_model,
    save_model,
    train,
)
from oracle.model.evaluation import score
from oracle.model.plot import plot_pr_curve
from oracle.telemetry import read_csv, simulate_fleet, summary, write_csv
from oracle.telemetry.ai4i_csv import file_sha256

_FILE = OutputFile()
_EXISTING = click.Path(dir_okay=False, exists=True, path_type=Path)


@click.group("oracle")
def oracle() -> None:
    """The fault-model oracle: telemetry, training and evaluation."""


def sidecar_path(model_path: Path) -> Path:
    return model_path.with_name(model_path.name + ".json")


@oracle.command("simulate")
@click.option("--machines", type=click.IntRange(1, 1000), default=10, show_default=True)
@click.option(
    "--operations",
    type=click.IntRange(1, 10**6),
    default=1000,
    show_default=True,
    help="Operations per machine.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", "out_path", type=_FILE, required=True, help="CSV file to write.")
@guarded
def simulate_command(machines: int, operations: int, seed: int, out_path: Path) -> None:
    """Simulate machines and write their readings as AI4I 2020 CSV."""
    with console.status(f"simulating {machines} x {operations} operations..."):
        readings = simulate_fleet(machines, operations, seed)
    digest = write_csv(readings, out_path)
    figures = summary(readings)
    console.print(f"wrote {len(readings)} readings to {out_path} (sha256 {digest})", soft_wrap=True)
    counts = ("failures", "twf", "hdf", "pwf", "osf", "rnf")
    table("failures", list(counts), [[int(figures[name]) for name in counts]])


@oracle.command("train")
@click.option("--data", "data_path", type=_EXISTING, required=True, help="AI4I-layout CSV.")
@click.option("--out", "out_path", type=_FILE, required=True, help="Model artifact to write.")
@click.option(
    "--model",
    "model_name",
    type=click.Choice(MODEL_NAMES),
    default=DEFAULT_MODEL,
    show_default=True,
)
@click.option(
    "--horizon",
    type=click.IntRange(0, 10_000),
    default=0,
    show_default=True,
    help="Predict a failure within this many further operations (0: this one).",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--failure-modes",
    default="",
    metavar="MODES",
    help="Predict only these failure modes, comma-separated (twf, hdf, pwf, osf, rnf); "
    "default: any machine failure.",
)
@guarded
def train_command(
    data_path: Path, out_path: Path, model_name: str, horizon: int, seed: int, failure_modes: str
) -> None:
    """Train a calibrated fault model and choose its threshold on validation data."""
    readings = read_csv(data_path)
    modes = tuple(m.strip().lower() for m in failure_modes.split(",") if m.strip())
    with console.status(f"training {model_name} on {len(readings)} readings..."):
        model = train(
            readings,
            model_name=model_name,
            horizon=horizon,
            seed=seed,
            data_sha256=file_sha256(data_path),
            failure_modes=modes,
        )
    digest = save_model(model, out_path)
    metadata = model.with_artifact_sha256(digest).metadata.to_map()
    sidecar_path(out_path).write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n")
    console.print(
        f"wrote {out_path} (sha256 {digest}) and {sidecar_path(out_path)}", soft_wrap=True
    )
    validation = model.metadata.validation
    names = ["precision", "recall", "f1", "pr_auc"]
    table(
        f"{model_name}, horizon {horizon}: threshold {model.threshold_bp} bp, validation",
        ["records", "positives", *names],
        [
            [
                int(validation["records"]),
                int(validation["positives"]),
                *(f"{validation[name]:.3f}" for name in names),
            ]
        ],
    )


def _expected_sha256(model_path: Path, given: str | None) -> str:
    if given:
        return given
    try:
        return str(json.loads(sidecar_path(model_path).read_text())["artifact_sha256"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ArtifactError(
            f"no expected sha256: pass --sha256 or keep {sidecar_path(model_path)} ({exc})"
        ) from exc


@oracle.command("evaluate")
@click.option("--model", "model_path", type=_EXISTING, required=True)
@click.option("--data", "data_path", type=_EXISTING, required=True, help="AI4I-layout CSV.")
@click.option(
    "--sha256",
    "sha256_hex",
    default=None,
    help="Expected artifact sha256 (default: the one in MODEL.json).",
)
@click.option("--plot", "plot_path", type=_FILE, default=None, help="Write the PR curve (PNG).")
@json_option
@guarded
def evaluate_command(
    model_path: Path, data_path: Path, sha256_hex: str | None, plot_path: Path | None, as_json: bool
) -> None:
    """Evaluate a saved model on a telemetry file."""
    model = load_model(model_path, _expected_sha256(model_path, sha256_hex))
    readings = read_csv(data_path)
    scored = score(model, readings)
    result = evaluate(model, readings, scored)
    if plot_path is not None:
        title = f"{model.metadata.name} (horizon {model.metadata.horizon}) on {data_path.name}"
        plot_pr_curve(*scored, result, plot_path, title)
    if as_json:
        print_json(
            {
                "model": model.metadata.to_map(),
                "data_sha256": file_sha256(data_path),
                "evaluation": result.to_map(),
            }
        )
        return
    _print_evaluation(model, result)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _print_evaluation(model: FaultModel, result: Evaluation) -> None:
    meta = model.metadata
    table(
        f"{meta.name}, horizon {meta.horizon}, threshold {meta.threshold_bp} bp",
        ["records", "positives", "precision", "recall", "f1", "pr_auc", "roc_auc", "brier"],
        [
            [
                result.records,
                result.positives,
                _fmt(result.precision),
                _fmt(result.recall),
                _fmt(result.f1),
                _fmt(result.pr_auc),
                _fmt(result.roc_auc),
                f"{result.brier:.4f}",
            ]
        ],
    )
    c = result.confusion
    table(
        "confusion",
        ["", "predicted ok", "predicted failure"],
        [["actual ok", c["tn"], c["fp"]], ["actual failure", c["fn"], c["tp"]]],
    )
    modes = list(result.mode_recall)
    table(
        "recall per failure mode",
        ["mode", "records", "recall"],
        [[m.upper(), result.mode_positives[m], _fmt(result.mode_recall[m])] for m in modes],
    )


@oracle.command("compare")
@click.option("--train", "train_path", type=_EXISTING, required=True, help="AI4I-layout CSV.")
@click.option("--test", "test_path", type=_EXISTING, required=True, help="AI4I-layout CSV.")
@click.option("--horizon", type=click.IntRange(0, 10_000), default=0, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--models",
    default=",".join(MODEL_NAMES),
    show_default=True,
    help="Comma-separated model names.",
)
@json_option
@guarded
def compare_command(
    train_path: Path, test_path: Path, horizon: int, seed: int, models: str, as_json: bool
) -> None:
    """Train every model on one file and evaluate each on another, side by side."""
    names = [name.strip() for name in models.split(",") if name.strip()]
    if not names:
        raise click.BadParameter(f"name at least one model of {MODEL_NAMES}", param_hint="--models")
    unknown = sorted(set(names) - set(MODEL_NAMES))
    if unknown:
        raise click.BadParameter(f"unknown models {unknown}; expected some of {MODEL_NAMES}")
    fit_readings, test_readings = read_csv(train_path), read_csv(test_path)
    rows = _compare_with_progress(fit_readings, test_readings, horizon, seed, names, as_json)
    if as_json:
        print_json([row.to_map() for row in rows])
        return
    _print_comparison(rows, horizon)


def _compare_with_progress(
    fit: Any, test: Any, horizon: int, seed: int, names: list[str], quiet: bool
) -> list[Comparison]:
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=True, disable=quiet) as progress:
        task = progress.add_task("training models", total=len(names))
        return compare(
            fit,
            test,
            horizon=horizon,
            seed=seed,
            names=names,
            on_done=lambda _name: progress.advance(task),
        )


def _print_comparison(rows: list[Comparison], horizon: int) -> None:
    header = [
        "model",
        "fit s",
        "thr bp",
        "val F1",
        "precision",
        "recall",
        "F1",
        "PR-AUC",
        "ROC-AUC",
        "brier",
        "TWF",
        "HDF",
        "PWF",
        "OSF",
        "RNF",
    ]
    body = []
    for row in rows:
        t = row.test
        body.append(
            [
                row.name,
                f"{row.fit_s:.1f}",
                row.threshold_bp,
                _fmt(row.validation_f1),
                _fmt(t.precision),
                _fmt(t.recall),
                _fmt(t.f1),
                _fmt(t.pr_auc),
                _fmt(t.roc_auc),
                f"{t.brier:.4f}",
                *(_fmt(t.mode_recall[m]) for m in ("twf", "hdf", "pwf", "osf", "rnf")),
            ]
        )
    table(f"models at horizon {horizon} (test metrics; mode columns are recall)", header, body)
