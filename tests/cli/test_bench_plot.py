"""The bench's timeline buckets commits by second and takes latency percentiles per bucket."""

from __future__ import annotations

import math
from pathlib import Path

from cli.bench_plot import timeline, write_plot


def test_timeline_counts_commits_per_second_with_their_latency() -> None:
    submitted = {"a": 10.0, "b": 10.2, "c": 11.5, "lost": 11.6}
    committed = {"a": 10.5, "b": 10.6, "c": 12.1}
    series = timeline(submitted, committed, started=10.0)
    assert series["second"] == [1.0, 2.0, 3.0]
    assert series["committed_tx_per_s"] == [2.0, 0.0, 1.0]
    assert round(series["latency_ms_p50"][0]) == 400
    assert math.isnan(series["latency_ms_p50"][1])
    assert round(series["latency_ms_p99"][2]) == 600


def test_plot_is_written_as_png(tmp_path: Path) -> None:
    series = timeline({"a": 0.0}, {"a": 0.25}, started=0.0)
    path = tmp_path / "bench.png"
    write_plot(series, path, title="t")
    assert path.read_bytes().startswith(b"\x89PNG")
