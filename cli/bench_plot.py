"""The bench's picture: committed throughput and commit latency over the run, one point a second."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path


def timeline(
    submitted_at: Mapping[str, float], committed_at: Mapping[str, float], started: float
) -> dict[str, list[float]]:
    """Per second since `started`: transactions committed, and their p50 and p99 latency."""
    seconds = (
        int(max((committed_at.get(h, started) for h in submitted_at), default=started) - started)
        + 1
    )
    counts = [0] * max(seconds, 1)
    latencies: list[list[float]] = [[] for _ in counts]
    for tx_hash, sent in submitted_at.items():
        done = committed_at.get(tx_hash)
        if done is None:
            continue
        bucket = min(int(done - started), len(counts) - 1)
        counts[bucket] += 1
        latencies[bucket].append((done - sent) * 1000)
    return {
        "second": [float(i + 1) for i in range(len(counts))],
        "committed_tx_per_s": [float(c) for c in counts],
        "latency_ms_p50": [_pct(values, 50) for values in latencies],
        "latency_ms_p99": [_pct(values, 99) for values in latencies],
    }


def _pct(values: list[float], pct: int) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def write_plot(series: dict[str, list[float]], path: Path, *, title: str) -> None:
    import matplotlib  # noqa: PLC0415 (heavy; only when a plot is asked for)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    figure, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    top.plot(series["second"], series["committed_tx_per_s"], color="tab:blue")
    top.set_ylabel("committed tx/s")
    top.set_title(title)
    top.grid(alpha=0.3)
    bottom.plot(series["second"], series["latency_ms_p50"], label="p50", color="tab:green")
    bottom.plot(series["second"], series["latency_ms_p99"], label="p99", color="tab:red")
    bottom.set_ylabel("commit latency (ms)")
    bottom.set_xlabel("seconds since the load started")
    bottom.legend()
    bottom.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
