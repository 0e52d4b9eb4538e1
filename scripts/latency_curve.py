"""Commit latency against offered load: how latency grows as a cluster is driven towards (and
past) its maximum throughput.

    python scripts/latency_curve.py [--nodes 4] [--runs 1] [--duration 20]
                                    [--fractions 0.1,0.25,0.5,0.75,0.9,1.0,1.2]
                                    [--max-tx-per-s RATE] [--png latency-curve.png]
                                    [--json latency-curve.json]

First the maximum: the median committed tx/s of --runs unpaced bench runs (or --max-tx-per-s,
measured before, e.g. by scripts/perf_table.py). Then one point per fraction of it: bench runs
offering that many tx/s (open loop), each on a fresh cluster in a child process, the median of
--runs. Prints the points and the latency at half the maximum, against issue 7's target
(p50 <= 50 ms and p99 <= 250 ms there), and where the time went at each point: the nodes' stage
times (node/stages.py) as each bench run reports them; plots committed tx/s and p50/p99 latency
(log scale) against offered load; writes every point and run as JSON.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cli.bench_runs import (
    FIGURES,
    BenchRunError,
    BenchSettings,
    fractions,
    machine,
    machine_line,
    median_of,
    positive_float,
    positive_int,
    run_bench,
    spread,
    summarise,
)
from node.stages import STAGES

FRACTIONS_DEFAULT = (0.1, 0.25, 0.5, 0.75, 0.9, 1.0, 1.2)
HALF = 0.5
P50_TARGET_MS = 50.0
P99_TARGET_MS = 250.0


def at_fraction(points: Sequence[dict[str, Any]], fraction: float) -> dict[str, float] | None:
    """Median offered load, committed tx/s and p50/p99 latency at `fraction` of the maximum:
    the point itself if it was measured, else interpolated linearly between the two points
    around it; None outside the measured fractions (or without latency there)."""
    keys = ("offered_tx_per_s", "committed_tx_per_s", "latency_ms_p50", "latency_ms_p99")
    ordered = sorted(points, key=lambda p: p["fraction"])
    for low, high in list(itertools.pairwise(ordered)) or [(p, p) for p in ordered]:
        if not low["fraction"] <= fraction <= high["fraction"]:
            continue
        span = high["fraction"] - low["fraction"]
        weight = 0.0 if span == 0 else (fraction - low["fraction"]) / span
        values: dict[str, float] = {"fraction": fraction}
        for key in keys:
            a, b = _median(low, key), _median(high, key)
            if a is None or b is None:
                return None
            values[key] = a + weight * (b - a)
        return values
    return None


def _median(point: dict[str, Any], key: str) -> float | None:
    if key == "offered_tx_per_s":
        return float(point["offered_tx_per_s"])
    value = point["median"][key]
    return None if value is None else float(value)


def verdict_at_half(half: dict[str, float] | None) -> str:
    if half is None:
        return (
            f"latency at half the maximum: not measured ({HALF:g} is outside the fractions, "
            "or nothing committed there)"
        )
    met = half["latency_ms_p50"] <= P50_TARGET_MS and half["latency_ms_p99"] <= P99_TARGET_MS
    return (
        f"latency at half the maximum ({half['offered_tx_per_s']:,.0f} tx/s offered, "
        f"{half['committed_tx_per_s']:,.0f} committed): p50 {half['latency_ms_p50']:,.0f} ms "
        f"(target <= {P50_TARGET_MS:g}), p99 {half['latency_ms_p99']:,.0f} ms "
        f"(target <= {P99_TARGET_MS:g}): {'met' if met else 'MISSED'}"
    )


def points_table(points: Sequence[dict[str, Any]]) -> str:
    headings = [
        "fraction",
        "offered tx/s",
        "sent tx/s",
        "committed tx/s",
        "p50 latency ms",
        "p99 latency ms",
    ]
    lines = [
        "| " + " | ".join(headings) + " |",
        "|" + "|".join("---:" for _ in headings) + "|",
    ]
    for point in points:
        cells = [
            f"{point['fraction']:g}",
            f"{point['offered_tx_per_s']:,.0f}",
            spread(point, "sent_tx_per_s"),
            spread(point, "committed_tx_per_s"),
            spread(point, "latency_ms_p50"),
            spread(point, "latency_ms_p99"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def stages_table(points: Sequence[dict[str, Any]]) -> str:
    """Per point, the median over its runs of each stage's time (ms) and of the p50 latency."""
    headings = ["fraction", "offered tx/s", *STAGES, "p50 latency"]
    lines = [
        "| " + " | ".join(headings) + " |",
        "|" + "|".join("---:" for _ in headings) + "|",
    ]
    for point in points:
        stages = point["stages_ms_p50"]
        cells = [
            f"{point['fraction']:g}",
            f"{point['offered_tx_per_s']:,.0f}",
            *("n/a" if stages[stage] is None else f"{stages[stage]:,.1f}" for stage in STAGES),
            spread(point, "latency_ms_p50"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def stage_medians(runs: Sequence[dict[str, Any]]) -> dict[str, float | None]:
    """Each stage's median over the runs that timed it (a bench run's `stages_ms_p50`)."""
    return {
        stage: median_of([(run.get("stages_ms_p50") or {}).get(stage) for run in runs])
        for stage in STAGES
    }


def measure_max(
    settings: BenchSettings, runs: int, workdir: Path, progress: Callable[[str], None]
) -> dict[str, Any]:
    figures = []
    for attempt in range(1, runs + 1):
        progress(f"maximum: unpaced run {attempt}/{runs}...")
        figures.append(run_bench(settings, workdir, label=f"max-run{attempt}"))
        progress(f"  {figures[-1]['committed_tx_per_s']:,.0f} tx/s committed")
    summary = summarise(figures)
    if not summary["median"]["committed_tx_per_s"]:
        raise BenchRunError("the unpaced runs committed nothing: no maximum to take fractions of")
    return {**summary, "runs": figures}


def measure_points(
    base: BenchSettings,
    max_tx_per_s: float,
    fractions_of_max: Sequence[float],
    runs: int,
    workdir: Path,
    progress: Callable[[str], None],
) -> list[dict[str, Any]]:
    points = []
    for fraction in fractions_of_max:
        rate = fraction * max_tx_per_s
        settings = BenchSettings(
            nodes=base.nodes,
            duration_s=base.duration_s,
            rate_per_s=rate,
            batch=base.batch,
            timeout_s=base.timeout_s,
        )
        figures = []
        for attempt in range(1, runs + 1):
            progress(f"{fraction:g} x max = {rate:,.0f} tx/s offered, run {attempt}/{runs}...")
            run = run_bench(settings, workdir, label=f"f{fraction:g}-run{attempt}")
            figures.append(run)
            progress(
                f"  {run['committed_tx_per_s']:,.0f} tx/s committed, p50 "
                f"{run['latency_ms_p50']} ms, p99 {run['latency_ms_p99']} ms"
            )
        points.append(
            {
                "fraction": fraction,
                "offered_tx_per_s": rate,
                **summarise(figures, (*FIGURES, "sent_tx_per_s")),
                "stages_ms_p50": stage_medians(figures),
                "runs": figures,
            }
        )
    return points


def write_curve(
    points: Sequence[dict[str, Any]], max_tx_per_s: float, path: Path, *, title: str
) -> None:
    import matplotlib  # noqa: PLC0415 (heavy; only when the plot is drawn)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    offered = [p["offered_tx_per_s"] for p in points]

    def series(key: str) -> list[float]:
        return [math.nan if p["median"][key] is None else p["median"][key] for p in points]

    figure, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    top.plot(offered, series("committed_tx_per_s"), marker="o", color="tab:blue")
    diagonal = [0.0, max(offered, default=max_tx_per_s)]
    top.plot(diagonal, diagonal, linestyle=":", color="grey", label="committed = offered")
    top.axhline(max_tx_per_s, linestyle="--", color="tab:blue", alpha=0.5, label="unpaced maximum")
    top.set_xlim(left=0)
    top.set_ylim(bottom=0)
    top.set_ylabel("committed tx/s")
    top.set_title(title)
    top.legend()
    top.grid(alpha=0.3)
    bottom.plot(offered, series("latency_ms_p50"), marker="o", label="p50", color="tab:green")
    bottom.plot(offered, series("latency_ms_p99"), marker="o", label="p99", color="tab:red")
    bottom.axvline(
        HALF * max_tx_per_s, linestyle="--", color="grey", alpha=0.5, label="half the maximum"
    )
    bottom.axhline(
        P50_TARGET_MS, linestyle=":", color="tab:green", alpha=0.6, label="p50 target at half"
    )
    bottom.axhline(
        P99_TARGET_MS, linestyle=":", color="tab:red", alpha=0.6, label="p99 target at half"
    )
    bottom.set_yscale("log")
    bottom.set_ylabel("commit latency (ms, log)")
    bottom.set_xlabel("offered load (tx/s)")
    bottom.legend()
    bottom.grid(alpha=0.3, which="both")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--nodes", type=positive_int, default=4)
    parser.add_argument("--runs", type=positive_int, default=1, help="runs per point (median)")
    parser.add_argument("--duration", type=positive_float, default=20.0, help="s of load a run")
    parser.add_argument(
        "--fractions",
        type=fractions,
        default=list(FRACTIONS_DEFAULT),
        help="of the maximum, e.g. 0.25,0.5,1.0",
    )
    parser.add_argument(
        "--max-tx-per-s",
        type=positive_float,
        default=None,
        help="the maximum, if already measured (skips the unpaced runs)",
    )
    parser.add_argument("--batch", type=positive_int, default=64, help="transactions a request")
    parser.add_argument(
        "--timeout", type=positive_float, default=None, help="s a run may take (default: ample)"
    )
    parser.add_argument("--png", type=Path, default=Path("latency-curve.png"))
    parser.add_argument("--json", type=Path, default=Path("latency-curve.json"))
    parser.add_argument(
        "--runs-dir", type=Path, default=None, help="keep every run's JSON and plot here"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    base = BenchSettings(
        nodes=args.nodes, duration_s=args.duration, batch=args.batch, timeout_s=args.timeout
    )
    info = machine()
    print(f"machine: {machine_line(info)}", flush=True)
    workdir = args.runs_dir or Path(tempfile.mkdtemp(prefix="millchain-latency-curve-"))
    workdir.mkdir(parents=True, exist_ok=True)
    maximum: dict[str, Any] | None = None
    try:
        if args.max_tx_per_s is None:
            maximum = measure_max(base, args.runs, workdir, _progress)
            max_tx_per_s = float(maximum["median"]["committed_tx_per_s"])
        else:
            max_tx_per_s = args.max_tx_per_s
        print(f"maximum: {max_tx_per_s:,.0f} tx/s", flush=True)
        points = measure_points(base, max_tx_per_s, args.fractions, args.runs, workdir, _progress)
    except BenchRunError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.runs_dir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    half = at_fraction(points, HALF)
    title = f"millchain, n = {args.nodes}: latency against offered load"
    write_curve(points, max_tx_per_s, args.png, title=title)
    table = points_table(points)
    stages = stages_table(points)
    verdict = verdict_at_half(half)
    print(
        f"\nmedians of {args.runs} run(s) of {args.duration:g} s each per point; min-max in "
        f"parentheses\n\n{table}\n\n{verdict}\n\nwhere the time went (ms, the median over "
        f"the nodes of each stage's p50; propose is the primary's):\n\n{stages}\n"
        f"machine: {machine_line(info)}"
    )
    report = {
        "machine": info,
        "settings": {
            "nodes": args.nodes,
            "runs": args.runs,
            "duration_s": args.duration,
            "batch": args.batch,
            "fractions": args.fractions,
        },
        "max_tx_per_s": max_tx_per_s,
        "max_measured": maximum,
        "points": points,
        "at_half_max": half,
        "targets_at_half_max": {"latency_ms_p50": P50_TARGET_MS, "latency_ms_p99": P99_TARGET_MS},
        "table": table,
        "stages_table": stages,
        "verdict": verdict,
    }
    args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.png} and {args.json}")
    return 0


def _progress(message: str) -> None:
    print(message, flush=True)


if __name__ == "__main__":
    sys.exit(main())
