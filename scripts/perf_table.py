"""The performance table: committed throughput, commit latency and the fraction of the signature
bound for clusters of several sizes, medians of repeated `millchain bench` runs.

    python scripts/perf_table.py [--nodes 4,7,10] [--runs 3] [--duration 30]
                                 [--json perf-table.json] [--runs-dir DIR]

Every run is `millchain bench` in a child process on a fresh cluster (cli/bench_runs.py), with
unpaced load unless --rate says otherwise. Runs go round the sizes in turn (4, 7, 10, 4, 7, 10,
...) so a change in the machine's load during the table touches every size alike. Prints a
markdown table of medians with the range over the runs, and the machine it ran on; writes the
same, with every run's figures, as JSON.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cli.bench_runs import (
    BenchRunError,
    BenchSettings,
    machine,
    machine_line,
    node_counts,
    nonnegative_float,
    positive_float,
    positive_int,
    run_bench,
    spread,
    summarise,
)

# Columns of the table: heading, figure, decimals.
COLUMNS = (
    ("committed tx/s", "committed_tx_per_s", 0),
    ("p50 latency ms", "latency_ms_p50", 0),
    ("p99 latency ms", "latency_ms_p99", 0),
    ("fraction of bound", "fraction_of_bound", 3),
    ("verify/s (1 core)", "verify_per_s", 0),
    ("signature bound tx/s", "signature_bound_tx_per_s", 0),
)


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    """One line per cluster size: each figure's median with its range over the runs."""
    headings = ["n", "runs", *(heading for heading, _, _ in COLUMNS)]
    lines = [
        "| " + " | ".join(headings) + " |",
        "|" + "|".join("---:" for _ in headings) + "|",
    ]
    for row in rows:
        cells = [str(row["nodes"]), str(len(row["runs"]))]
        cells += [spread(row, key, digits) for _, key, digits in COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def measure(
    nodes: Sequence[int],
    runs: int,
    settings_for: Callable[[int], BenchSettings],
    workdir: Path,
    progress: Callable[[str], None],
) -> list[dict[str, Any]]:
    """Every size `runs` times, round the sizes in turn; one row per size."""
    figures: dict[int, list[dict[str, Any]]] = {n: [] for n in nodes}
    for attempt in range(1, runs + 1):
        for n in nodes:
            progress(f"n = {n}, run {attempt}/{runs}...")
            run = run_bench(settings_for(n), workdir, label=f"n{n}-run{attempt}")
            figures[n].append(run)
            progress(
                f"  {run['committed_tx_per_s']:,.0f} tx/s, p50 {run['latency_ms_p50']} ms, "
                f"p99 {run['latency_ms_p99']} ms, {run['fraction_of_bound']:.3f} of the bound"
            )
    return [{"nodes": n, **summarise(figures[n]), "runs": figures[n]} for n in nodes]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--nodes", type=node_counts, default=[4, 7, 10], help="e.g. 4,7,10")
    parser.add_argument("--runs", type=positive_int, default=3, help="runs per cluster size")
    parser.add_argument("--duration", type=positive_float, default=30.0, help="s of load a run")
    parser.add_argument(
        "--rate",
        type=nonnegative_float,
        default=0.0,
        help="offered tx/s; 0 offers as fast as accepted",
    )
    parser.add_argument("--batch", type=positive_int, default=64, help="transactions a request")
    parser.add_argument(
        "--timeout", type=positive_float, default=None, help="s a run may take (default: ample)"
    )
    parser.add_argument("--json", type=Path, default=Path("perf-table.json"))
    parser.add_argument(
        "--runs-dir", type=Path, default=None, help="keep every run's JSON and plot here"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)

    def settings_for(n: int) -> BenchSettings:
        return BenchSettings(
            nodes=n,
            duration_s=args.duration,
            rate_per_s=args.rate,
            batch=args.batch,
            timeout_s=args.timeout,
        )

    info = machine()
    print(f"machine: {machine_line(info)}", flush=True)
    workdir = args.runs_dir or Path(tempfile.mkdtemp(prefix="millchain-perf-table-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        rows = measure(args.nodes, args.runs, settings_for, workdir, _progress)
    except BenchRunError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.runs_dir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    load = "unpaced" if args.rate == 0 else f"{args.rate:g} tx/s offered"
    caption = (
        f"medians of {args.runs} run(s) of {args.duration:g} s each ({load}, batch "
        f"{args.batch}); min-max over the runs in parentheses"
    )
    table = markdown_table(rows)
    print(f"\n{caption}\n\n{table}\n\nmachine: {machine_line(info)}")
    report = {
        "machine": info,
        "settings": {
            "nodes": args.nodes,
            "runs": args.runs,
            "duration_s": args.duration,
            "rate_per_s": args.rate,
            "batch": args.batch,
        },
        "rows": rows,
        "caption": caption,
        "table": table,
    }
    args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.json}")
    return 0


def _progress(message: str) -> None:
    print(message, flush=True)


if __name__ == "__main__":
    sys.exit(main())
