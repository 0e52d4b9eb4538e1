"""The performance scripts (scripts/perf_table.py, latency_curve.py, memory_run.py): their pure
parts on hand-made figures, then each run end to end, tiny, as a user would run it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cli.bench_runs import FIGURES, BenchRunError, BenchSettings, summarise
from scripts import latency_curve
from scripts.latency_curve import at_fraction, verdict_at_half
from scripts.memory_run import (
    NodeSample,
    Sample,
    committed_at_end,
    judge,
    mempool_line,
    read_rss_mib,
    sample_times,
    verdict_table,
)
from scripts.perf_table import markdown_table

REPO = Path(__file__).resolve().parents[2]


def _figures(**values: float) -> dict[str, float]:
    return {key: 1.0 for key in FIGURES} | values


def _point(fraction: float, offered: float, p50: float, p99: float) -> dict[str, Any]:
    runs = [_figures(latency_ms_p50=p50, latency_ms_p99=p99, committed_tx_per_s=offered)]
    return {"fraction": fraction, "offered_tx_per_s": offered, **summarise(runs), "runs": runs}


# perf_table


def test_table_has_a_row_per_size_with_medians_and_ranges() -> None:
    runs = [_figures(committed_tx_per_s=v, fraction_of_bound=v / 6000) for v in (800, 900, 700)]
    table = markdown_table([{"nodes": 4, **summarise(runs), "runs": runs}])
    header, rule, row = table.splitlines()
    assert header.startswith("| n | runs | committed tx/s |")
    assert rule.count("---:") == header.count("|") - 1
    assert row.startswith("| 4 | 3 | 800 (700-900) |")
    assert "0.133 (0.117-0.150)" in row


# latency_curve


def test_latency_at_half_is_the_measured_point_when_there_is_one() -> None:
    points = [_point(0.25, 250, 20, 80), _point(0.5, 500, 40, 200), _point(1.0, 1000, 900, 2000)]
    half = at_fraction(points, 0.5)
    assert half is not None
    assert (half["offered_tx_per_s"], half["latency_ms_p50"]) == (500, 40)
    assert verdict_at_half(half).endswith(": met")


def test_latency_at_half_is_interpolated_between_its_neighbours() -> None:
    half = at_fraction([_point(0.25, 250, 20, 100), _point(0.75, 750, 60, 300)], 0.5)
    assert half is not None
    assert (half["offered_tx_per_s"], half["latency_ms_p50"], half["latency_ms_p99"]) == (
        500,
        40,
        200,
    )


def test_latency_at_half_outside_the_fractions_is_not_measured() -> None:
    assert at_fraction([_point(0.75, 750, 60, 300), _point(1.0, 1000, 90, 400)], 0.5) is None
    assert "not measured" in verdict_at_half(None)


def test_a_p99_over_the_target_at_half_misses_it() -> None:
    half = at_fraction([_point(0.5, 500, 40, 260)], 0.5)
    assert verdict_at_half(half).endswith("MISSED")


def _fake_runs(monkeypatch: pytest.MonkeyPatch, committed: dict[str, float]) -> list[float]:
    """run_bench stand-in: figures by label; returns the offered rates it was asked for."""
    rates: list[float] = []

    def run_bench(settings: BenchSettings, workdir: Path, label: str) -> dict[str, Any]:
        rates.append(settings.rate_per_s)
        return _figures(committed_tx_per_s=committed.get(label, settings.rate_per_s))

    monkeypatch.setattr(latency_curve, "run_bench", run_bench)
    return rates


def test_the_maximum_is_the_median_of_unpaced_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rates = _fake_runs(monkeypatch, {"max-run1": 900, "max-run2": 1100, "max-run3": 1000})
    base = BenchSettings(nodes=4, duration_s=2)
    maximum = latency_curve.measure_max(base, 3, tmp_path, lambda _: None)
    assert maximum["median"]["committed_tx_per_s"] == 1000
    assert rates == [0, 0, 0]


def test_points_offer_their_fraction_of_the_maximum(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rates = _fake_runs(monkeypatch, {})
    base = BenchSettings(nodes=4, duration_s=2)
    points = latency_curve.measure_points(base, 1000, [0.25, 1.2], 2, tmp_path, lambda _: None)
    assert rates == [250, 250, 1200, 1200]
    assert [p["offered_tx_per_s"] for p in points] == [250, 1200]
    assert len(points[0]["runs"]) == 2


def test_unpaced_runs_that_commit_nothing_give_no_maximum(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_runs(monkeypatch, {"max-run1": 0})
    with pytest.raises(BenchRunError, match="committed nothing"):
        latency_curve.measure_max(BenchSettings(nodes=4, duration_s=2), 1, tmp_path, print)


def test_stages_are_the_medians_over_runs_of_what_each_timed() -> None:
    runs: list[dict[str, Any]] = [
        {"stages_ms_p50": {"admission": 10.0, "propose": 20.0, "execute": 5.0}},
        {"stages_ms_p50": {"admission": 30.0, "propose": None, "execute": 7.0}},
        {"stages_ms_p50": {"admission": 20.0, "propose": 40.0, "execute": 6.0}},
        {},  # a run from before the nodes timed stages
    ]
    stages = latency_curve.stage_medians(runs)
    assert stages["admission"] == 20.0
    assert stages["propose"] == 30.0
    assert stages["execute"] == 6.0
    assert stages["commit"] is None
    point = {
        "fraction": 0.5,
        "offered_tx_per_s": 500.0,
        "stages_ms_p50": stages,
        "median": {"latency_ms_p50": 90.0},
        "min": {"latency_ms_p50": 80.0},
        "max": {"latency_ms_p50": 95.0},
    }
    table = latency_curve.stages_table([point]).splitlines()
    assert table[0].startswith("| fraction | offered tx/s | admission | propose |")
    assert table[2] == "| 0.5 | 500 | 20.0 | 30.0 | n/a | n/a | n/a | 6.0 | 90 (80-95) |"


# memory_run


def test_rss_is_read_from_proc_status(tmp_path: Path) -> None:
    (tmp_path / "42").mkdir()
    (tmp_path / "42" / "status").write_text("Name:\tpython\nVmRSS:\t  102400 kB\nThreads:\t3\n")
    assert read_rss_mib(42, proc=tmp_path) == 100.0
    assert read_rss_mib(43, proc=tmp_path) is None


def test_rss_of_this_process_is_positive() -> None:
    import os  # noqa: PLC0415

    rss = read_rss_mib(os.getpid())
    assert rss is not None
    assert rss > 1


def test_samples_are_taken_on_the_schedule_and_at_the_end() -> None:
    assert sample_times(30, 10) == [0, 10, 20, 30]
    assert sample_times(25, 10) == [0, 10, 20, 25]
    assert sample_times(5, 10) == [0, 5]


def test_growth_over_the_second_half_under_the_threshold_is_flat() -> None:
    series = [(0.0, 50.0), (60.0, 100.0), (120.0, 104.0), (180.0, 106.0), (240.0, 108.0)]
    verdict = judge("node0", series, duration_s=240, threshold_pct=10)
    assert verdict.verdict == "flat"
    assert verdict.second_half_growth_mib == 4.0  # from 120 s (half time) to the end
    assert verdict.rss_mib_minute_1 == 100.0
    assert verdict.rss_mib_max == 108.0


def test_growth_over_the_threshold_is_growing() -> None:
    series = [(0.0, 50.0), (60.0, 100.0), (120.0, 120.0)]
    verdict = judge("node0", series, duration_s=120, threshold_pct=10)
    assert verdict.verdict == "growing"
    assert verdict.second_half_growth_pct == 20.0


def test_a_node_whose_process_vanished_died() -> None:
    verdict = judge("node0", [(0.0, 50.0), (10.0, None), (20.0, None)], 20, 10)
    assert verdict.verdict == "died"
    assert verdict.rss_mib_end is None


def test_one_sample_in_the_second_half_is_too_few() -> None:
    assert judge("node0", [(0.0, 50.0), (10.0, 51.0)], 10, 10).verdict == "too few samples"


def test_verdict_table_has_a_line_per_node() -> None:
    verdicts = [judge(f"node{i}", [(0.0, 50.0), (5.0, 60.0), (10.0, 61.0)], 10, 10) for i in (0, 1)]
    lines = verdict_table(verdicts).splitlines()
    assert len(lines) == 3
    assert lines[1].startswith("node0") and lines[1].endswith("flat")
    assert "+1.0 MiB (+1.7 %)" in lines[1]


def _sample(at_s: float, committed: dict[str, int | None], mempool: int = 0) -> Sample:
    nodes = {
        name: NodeSample(rss_mib=1.0, height=1, mempool=mempool, txs_committed=count, view=0)
        for name, count in committed.items()
    }
    return Sample(at_s=at_s, admitted=0, loadgen_rss_mib=1.0, nodes=nodes)


def test_committed_is_what_the_most_advanced_node_gained() -> None:
    samples = [_sample(0, {"a": 10, "b": 10}), _sample(5, {"a": 110, "b": None})]
    assert committed_at_end(samples) == 100


def test_the_mempool_at_half_time_and_at_the_end_is_reported() -> None:
    samples = [_sample(t, {"a": 0}, mempool=m) for t, m in ((0, 0), (10, 5000), (20, 32000))]
    assert mempool_line(samples, 20) == (
        "mempool (fullest node): 5,000 transactions at half time, 32,000 at the end"
    )


# The scripts end to end, tiny: each starts real clusters.


def _script(name: str, *args: str, timeout_s: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO / "scripts" / name), *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
        cwd=REPO,
    )


@pytest.mark.slow
@pytest.mark.integration
def test_a_tiny_perf_table_prints_and_writes_the_medians(tmp_path: Path) -> None:
    out = tmp_path / "table.json"
    result = _script(
        "perf_table.py",
        "--nodes",
        "4",
        "--runs",
        "1",
        "--duration",
        "2",
        "--json",
        str(out),
        timeout_s=240,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(out.read_text())
    assert report["settings"]["nodes"] == [4]
    assert report["machine"]["cpu_count"] >= 1
    (row,) = report["rows"]
    assert row["nodes"] == 4
    assert len(row["runs"]) == 1
    assert set(FIGURES) <= set(row["median"])
    assert row["median"]["committed_tx_per_s"] > 0
    assert 0 < row["median"]["fraction_of_bound"] < 1
    assert report["table"] in result.stdout
    assert "| 4 | 1 |" in result.stdout


@pytest.mark.slow
@pytest.mark.integration
def test_a_tiny_latency_curve_draws_its_points(tmp_path: Path) -> None:
    # The maximum is given: an unpaced run costs about 25 s of CI (its mempools fill, then
    # drain), and the perf table's test runs one already; measure_max is tested above.
    png, out = tmp_path / "curve.png", tmp_path / "curve.json"
    result = _script(
        "latency_curve.py",
        "--fractions",
        "0.5,1.0",
        "--duration",
        "2",
        "--runs",
        "1",
        "--max-tx-per-s",
        "400",
        "--png",
        str(png),
        "--json",
        str(out),
        timeout_s=240,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert png.read_bytes().startswith(b"\x89PNG")
    report = json.loads(out.read_text())
    assert report["max_tx_per_s"] == 400
    assert [p["fraction"] for p in report["points"]] == [0.5, 1.0]
    for point in report["points"]:
        assert point["offered_tx_per_s"] == pytest.approx(point["fraction"] * 400)
        median = point["median"]
        assert median["committed_tx_per_s"] > 0
        assert 0 < median["latency_ms_p50"] <= median["latency_ms_p99"]
    assert report["at_half_max"]["fraction"] == 0.5
    assert "latency at half the maximum (200 tx/s offered" in result.stdout
    for point in report["points"]:
        assert point["stages_ms_p50"]["execute"] > 0
    assert "| 0.5 | 200 |" in report["stages_table"]
    assert "where the time went" in result.stdout


@pytest.mark.slow
@pytest.mark.integration
def test_a_short_memory_run_samples_every_node(tmp_path: Path) -> None:
    out, png = tmp_path / "memory.json", tmp_path / "memory.png"
    result = _script(
        "memory_run.py",
        "--minutes",
        "0.15",
        "--rate",
        "300",
        "--sample-every",
        "1.5",
        "--json",
        str(out),
        "--png",
        str(png),
        timeout_s=180,
    )
    # Paced, so the cluster commits at once; exit status 1 means "not flat", which a 9 s run
    # may well be.
    assert result.returncode in (0, 1), result.stdout + result.stderr
    report = json.loads(out.read_text())
    assert report["flat"] == (result.returncode == 0)
    names = [node["name"] for node in report["nodes"]]
    assert names == ["node0", "node1", "node2", "node3"]
    samples = report["samples"]
    assert len(samples) == 7  # 0, 1.5, ..., 9 s
    assert [s["at_s"] for s in samples] == sorted(s["at_s"] for s in samples)
    for sample in samples:
        assert set(sample["nodes"]) == set(names)
        assert all(node["rss_mib"] > 10 for node in sample["nodes"].values())
    assert samples[-1]["admitted"] > 0
    assert report["committed"] > 0
    assert all(node["verdict"] in ("flat", "growing") for node in report["nodes"])
    assert png.read_bytes().startswith(b"\x89PNG")
