"""`millchain sim`: sweep seeds through the fault-injecting PBFT simulator (`consensus.sim`).

Each seed is one deterministic run (`run_sim`): a faulty phase, healing, then a liveness check.
The command prints what the runs did (commits, view changes, messages and bytes per committed
block, runs per second) and exits non-zero on the first safety or liveness violation, printing
the command that reproduces it. `--growth` runs the fault-free case at several cluster sizes to
show how messages per block grow with n.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import click

from cli.common import OutputFile
from consensus.errors import LivenessViolation, SafetyViolation
from consensus.sim.faults import FAULTY_MS_DEFAULT, FaultConfig
from consensus.sim.simulator import SimReport, run_sim
from ledger.certificate import max_faulty

GROWTH_LOAD_MS = 600


def _faults(spec: str, byzantine: int | None, nodes: int, faulty_ms: int) -> FaultConfig:
    try:
        faults = FaultConfig.parse(spec, byzantine=byzantine)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--faults") from exc
    faults = dataclasses.replace(faults, faulty_ms=faulty_ms)
    if faults.byzantine > max_faulty(nodes):
        raise click.BadParameter(
            f"at most f = {max_faulty(nodes)} byzantine replicas for {nodes} nodes",
            param_hint="--byzantine",
        )
    return faults


def _sizes(growth: str) -> list[int]:
    try:
        sizes = [int(part) for part in growth.split(",") if part.strip()]
    except ValueError as exc:
        raise click.BadParameter("a comma list of cluster sizes", param_hint="--growth") from exc
    if not sizes or min(sizes) < 4:
        raise click.BadParameter("cluster sizes of at least 4", param_hint="--growth")
    return sizes


def _summary(total: SimReport, violations: int, elapsed_s: float) -> dict[str, Any]:
    return {
        **total.to_json(),
        "violations": violations,
        "runs_per_s": round(total.runs / elapsed_s, 2) if elapsed_s else None,
        "elapsed_s": round(elapsed_s, 2),
    }


def _sweep(nodes: int, seeds: int, first_seed: int, faults: FaultConfig) -> dict[str, Any]:
    total: SimReport | None = None
    started = time.perf_counter()
    for seed in range(first_seed, first_seed + seeds):
        try:
            report = run_sim(nodes, seed, faults)
        except (SafetyViolation, LivenessViolation) as exc:
            click.echo(f"VIOLATION: {exc}", err=True)
            click.echo(
                f"reproduce: millchain sim --nodes {nodes} --seeds 1 --first-seed {seed} "
                f"{faults.cli_options()}",
                err=True,
            )
            summary = _summary(total or SimReport(n=nodes, seed=seed, faults="", runs=0), 1, 0)
            summary["failed_seed"] = seed
            summary["error"] = str(exc)
            return summary
        if total is None:
            total = report
        else:
            total.add(report)
    assert total is not None
    return _summary(total, 0, time.perf_counter() - started)


def _growth(sizes: list[int], first_seed: int) -> list[dict[str, Any]]:
    faults = FaultConfig(faulty_ms=GROWTH_LOAD_MS)
    rows = []
    for n in sizes:
        started = time.perf_counter()
        report = run_sim(n, first_seed, faults)
        rows.append(
            {
                "n": n,
                "commits": report.commits,
                "messages_per_block": round(report.messages_per_block, 1),
                "bytes_per_block": round(report.bytes_per_block),
                "elapsed_s": round(time.perf_counter() - started, 2),
            }
        )
        click.echo(
            f"n={n:>3}  blocks {report.commits:>4}  messages/block "
            f"{report.messages_per_block:>9.1f}  bytes/block {report.bytes_per_block:>11.0f}  "
            f"({rows[-1]['elapsed_s']} s)"
        )
    return rows


@click.command("sim")
@click.option(
    "--nodes",
    "-n",
    type=click.IntRange(min=4),
    default=4,
    show_default=True,
    help="Replicas in each simulated cluster (n = 3f+1).",
)
@click.option(
    "--seeds",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="How many seeds to run, one deterministic run each.",
)
@click.option(
    "--first-seed",
    type=int,
    default=0,
    show_default=True,
    help="The first seed; the runs take --first-seed, --first-seed + 1, ...",
)
@click.option(
    "--faults",
    "fault_spec",
    default="all",
    show_default=True,
    help="all, none, or a comma list of crash,partition,loss,dup,reorder,delay,byzantine.",
)
@click.option(
    "--byzantine",
    type=click.IntRange(min=0),
    default=None,
    help="Byzantine replicas (at most f). Default: 1 if --faults is all or lists byzantine, "
    "else 0. A number given here wins over --faults: --faults byzantine --byzantine 0 has "
    "none, --faults crash --byzantine 1 adds one.",
)
@click.option(
    "--faulty-ms",
    type=click.IntRange(min=100, max=600_000),
    default=FAULTY_MS_DEFAULT,
    show_default=True,
    help="Length of the faulty phase, in simulated ms; longer ones reach deeper interleavings "
    "(more crashes, transfers and view changes in one run).",
)
@click.option(
    "--json",
    "json_path",
    type=OutputFile(),
    help="Also write the figures (the sweep and any --growth rows) to this JSON file.",
)
@click.option("--growth", default=None, help="Also show messages per block for these n (4,7,10).")
def sim(
    nodes: int,
    seeds: int,
    first_seed: int,
    fault_spec: str,
    byzantine: int | None,
    faulty_ms: int,
    json_path: Path | None,
    growth: str | None,
) -> None:
    """Run the seeded fault-injecting PBFT simulator over many seeds."""
    faults = _faults(fault_spec, byzantine, nodes, faulty_ms)
    sizes = _sizes(growth) if growth else []
    summary = _sweep(nodes, seeds, first_seed, faults)
    click.echo(
        f"n={nodes} faults={faults.describe()} runs {summary['runs']} violations "
        f"{summary['violations']} commits {summary['commits']} view changes "
        f"{summary['view_changes']} messages/block {summary['messages_per_block']} bytes/block "
        f"{summary['bytes_per_block']} runs/s {summary['runs_per_s']}"
    )
    document: dict[str, Any] = {"sweep": summary}
    if sizes:
        document["growth"] = _growth(sizes, first_seed)
    if json_path is not None:
        json_path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    if summary["violations"]:
        raise SystemExit(1)
