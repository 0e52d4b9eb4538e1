"""`millchain bench` as a child process, run again and again, and the summary of its runs: what
scripts/perf_table.py and scripts/latency_curve.py share.

Each run is a fresh cluster in its own bench process, so no run inherits another's chain,
mempool or warm caches. A run that does not finish in time is interrupted (SIGINT, so the bench
stops its cluster in its `finally`), then killed past a grace period.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import signal
import statistics
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cli.bench import BATCH_DEFAULT
from ledger.errors import MillchainError

# The figures a run is summarised by, as `millchain bench --json` names them.
FIGURES = (
    "committed_tx_per_s",
    "latency_ms_p50",
    "latency_ms_p99",
    "fraction_of_bound",
    "verify_per_s",
    "signature_bound_tx_per_s",
)
INTERRUPT_GRACE_S = 60.0  # for the bench to stop its nodes after a SIGINT
OUTPUT_TAIL_LINES = 15


class BenchRunError(MillchainError):
    """A bench run failed, timed out or wrote no figures."""


@dataclass(frozen=True, slots=True, kw_only=True)
class BenchSettings:
    nodes: int
    duration_s: float
    rate_per_s: float = 0.0  # 0: as fast as the cluster accepts
    batch: int = BATCH_DEFAULT
    timeout_s: float | None = None  # None: default_timeout_s

    def __post_init__(self) -> None:
        if self.nodes < 1:
            raise BenchRunError(f"nodes must be at least 1, got {self.nodes}")
        if self.duration_s <= 0:
            raise BenchRunError(f"duration must be positive, got {self.duration_s} s")
        if self.rate_per_s < 0:
            raise BenchRunError(f"rate must be 0 (unpaced) or positive, got {self.rate_per_s}")
        if self.timeout_s is not None and self.timeout_s <= 0:
            raise BenchRunError(f"timeout must be positive, got {self.timeout_s} s")

    @property
    def run_timeout_s(self) -> float:
        if self.timeout_s is not None:
            return self.timeout_s
        return default_timeout_s(self.duration_s, self.nodes)


def default_timeout_s(duration_s: float, nodes: int) -> float:
    """Generous: besides the load, a run starts and stops its cluster, pre-signs up to 8,800
    transactions per second of load and 5,000 a node for the mempools (at roughly 7,000
    signatures a second on a slow core), and waits up to 15 s for what was admitted to
    commit."""
    return 120.0 + 4.0 * duration_s + 6.0 * nodes


def bench_command(settings: BenchSettings, json_file: Path, plot_file: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "cli",
        "bench",
        "--nodes",
        str(settings.nodes),
        "--duration",
        f"{settings.duration_s:g}",
        "--rate",
        f"{settings.rate_per_s:g}",
        "--batch",
        str(settings.batch),
        "--json",
        str(json_file),
        "--plot",
        str(plot_file),
    ]


def run_bench(settings: BenchSettings, workdir: Path, label: str) -> dict[str, Any]:
    """One bench run in a child process; its figures, without the per-second timeline. Its JSON
    and plot stay in `workdir` as `label`.json and `label`.png."""
    json_file, plot_file = workdir / f"{label}.json", workdir / f"{label}.png"
    json_file.unlink(missing_ok=True)
    command = bench_command(settings, json_file, plot_file)
    timeout_s = settings.run_timeout_s
    # The child shares our process group, so a ^C reaches it too and it stops its cluster.
    process = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=_default_sigint,  # noqa: PLW1509  (no threads here)
    )
    try:
        output, _ = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        output = _interrupt(process)
        raise BenchRunError(
            f"bench run {label} did not finish in {timeout_s:.0f} s (raise --timeout?); "
            f"its last output:\n{_tail(output)}"
        ) from None
    except KeyboardInterrupt:
        _wait_or_kill(process, INTERRUPT_GRACE_S)  # it got the ^C as well and is stopping
        raise
    finally:
        if process.poll() is None:
            _interrupt(process)
    if process.returncode != 0:
        raise BenchRunError(
            f"bench run {label} exited with status {process.returncode}: {' '.join(command)}\n"
            f"{_tail(output)}"
        )
    return read_figures(json_file)


def read_figures(json_file: Path) -> dict[str, Any]:
    try:
        figures = json.loads(json_file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise BenchRunError(f"bench wrote no readable figures to {json_file}: {exc}") from exc
    if not isinstance(figures, dict) or any(key not in figures for key in FIGURES):
        raise BenchRunError(f"{json_file} lacks some of the expected figures {FIGURES}")
    figures.pop("timeline", None)
    return figures


def _default_sigint() -> None:
    """In the child before it runs the bench: SIGINT back to its default, whatever this process
    inherited. A job started in the background by a non-interactive shell (`cmd &` in a script,
    `nohup`) ignores SIGINT, and its children would too: an overrunning bench could then not be
    interrupted, and the kill after the grace period would leave its cluster's nodes running."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _interrupt(process: subprocess.Popen[str]) -> str:
    """SIGINT (the bench stops its nodes in its `finally`), then SIGKILL past the grace period;
    whatever it printed."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
    return _wait_or_kill(process, INTERRUPT_GRACE_S)


def _wait_or_kill(process: subprocess.Popen[str], grace_s: float) -> str:
    try:
        output, _ = process.communicate(timeout=grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
    return output or ""


def _tail(output: str | None) -> str:
    lines = (output or "").rstrip().splitlines()
    return "\n".join(lines[-OUTPUT_TAIL_LINES:])


def median_of(values: Sequence[float | None]) -> float | None:
    """The median of the values a run produced (a run without commits has no latency)."""
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def summarise(runs: Sequence[dict[str, Any]], keys: Sequence[str] = FIGURES) -> dict[str, Any]:
    """Per figure: the median over the runs, and the lowest and highest value."""
    summary: dict[str, Any] = {"median": {}, "min": {}, "max": {}}
    for key in keys:
        values = [run[key] for run in runs if run.get(key) is not None]
        summary["median"][key] = median_of(values)
        summary["min"][key] = min(values) if values else None
        summary["max"][key] = max(values) if values else None
    return summary


def spread(summary: dict[str, Any], key: str, digits: int = 0) -> str:
    """'median (min-max)' of one figure, e.g. '812 (790-830)'; one run shows the median alone."""
    median, low, high = (summary[part][key] for part in ("median", "min", "max"))
    if median is None:
        return "n/a"
    text = _number(median, digits)
    if low != high:
        text += f" ({_number(low, digits)}-{_number(high, digits)})"
    return text


def _number(value: float, digits: int) -> str:
    return f"{value:,.{digits}f}"


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
    }


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    try:
        text = cpuinfo.read_text(encoding="utf-8")
    except OSError:
        return platform.processor() or "unknown"
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            return value.strip()
    return platform.processor() or "unknown"


def machine_line(info: dict[str, Any]) -> str:
    return f"{info['cpu_count']} cores, {info['cpu_model']}, {info['python']}, {info['platform']}"


# argparse types for the scripts: a bad value is refused with what was expected.


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected at least 1")
    return value


def positive_float(text: str) -> float:
    value = _float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a positive number")
    return value


def nonnegative_float(text: str) -> float:
    value = _float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected 0 or a positive number")
    return value


def node_counts(text: str) -> list[int]:
    """'4,7,10' -> [4, 7, 10]."""
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected node counts separated by commas, e.g. 4,7,10"
        ) from None
    if not counts or any(n < 1 for n in counts):
        raise argparse.ArgumentTypeError(f"{text!r}: expected one or more node counts >= 1")
    if len(set(counts)) != len(counts):
        raise argparse.ArgumentTypeError(f"{text!r}: a node count is given twice")
    return counts


def fractions(text: str) -> list[float]:
    """'0.1,0.5,1' -> [0.1, 0.5, 1.0], each positive, none twice, in ascending order."""
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected fractions separated by commas, e.g. 0.25,0.5,1.0"
        ) from None
    if not values or any(not (v > 0 and math.isfinite(v)) for v in values):
        raise argparse.ArgumentTypeError(f"{text!r}: expected one or more positive fractions")
    if len(set(values)) != len(values):
        raise argparse.ArgumentTypeError(f"{text!r}: a fraction is given twice")
    return sorted(values)


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r}: expected a finite number")
    return value
