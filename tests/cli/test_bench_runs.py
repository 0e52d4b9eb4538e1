"""Bench runs as child processes and their summary: medians and ranges over runs with missing
figures, the machine line, argument checks, and a run that overruns or fails (a stand-in child
rather than a real bench, so no cluster starts)."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path

import pytest

from cli import bench_runs
from cli.bench_runs import (
    FIGURES,
    BenchRunError,
    BenchSettings,
    cpu_model,
    fractions,
    median_of,
    node_counts,
    nonnegative_float,
    positive_int,
    read_figures,
    run_bench,
    spread,
    summarise,
)


def _run(**figures: float | None) -> dict[str, float | None]:
    return {key: 1.0 for key in FIGURES} | figures


def test_median_skips_runs_without_the_figure() -> None:
    assert median_of([3.0, None, 1.0, 2.0]) == 2.0
    assert median_of([None, None]) is None


def test_summary_has_median_and_range_per_figure() -> None:
    runs = [_run(committed_tx_per_s=v) for v in (900.0, 700.0, 800.0)]
    summary = summarise(runs)
    assert summary["median"]["committed_tx_per_s"] == 800.0
    assert summary["min"]["committed_tx_per_s"] == 700.0
    assert summary["max"]["committed_tx_per_s"] == 900.0


def test_spread_shows_the_range_only_when_runs_differ() -> None:
    latencies = summarise([_run(latency_ms_p50=v) for v in (10.0, 12.5, 11.0)])
    assert spread(latencies, "latency_ms_p50", 1) == "11.0 (10.0-12.5)"
    assert spread(summarise([_run(committed_tx_per_s=1234.4)]), "committed_tx_per_s") == "1,234"
    assert spread(summarise([_run(latency_ms_p99=None)]), "latency_ms_p99") == "n/a"


def test_cpu_model_is_read_from_cpuinfo(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Example CPU @ 2.50GHz\nflags\t: x\n")
    assert cpu_model(cpuinfo) == "Example CPU @ 2.50GHz"


@pytest.mark.parametrize("text", ["4,x", "", "0,4", "4,4", "-1"])
def test_bad_node_counts_are_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        node_counts(text)


def test_node_counts_and_fractions_parse() -> None:
    assert node_counts("4, 7,10") == [4, 7, 10]
    assert fractions("1.0,0.25,0.5") == [0.25, 0.5, 1.0]


@pytest.mark.parametrize("text", ["a", "0", "-0.5", "0.5,0.5", "nan", "inf"])
def test_bad_fractions_are_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        fractions(text)


def test_numbers_out_of_range_are_refused() -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        positive_int("0")
    with pytest.raises(argparse.ArgumentTypeError):
        nonnegative_float("-1")
    assert nonnegative_float("0") == 0.0


def test_settings_refuse_a_non_positive_duration() -> None:
    with pytest.raises(BenchRunError, match="duration"):
        BenchSettings(nodes=4, duration_s=0)


def test_figures_without_the_expected_keys_are_an_error(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"committed_tx_per_s": 1}))
    with pytest.raises(BenchRunError, match="lacks"):
        read_figures(path)
    with pytest.raises(BenchRunError, match="no readable figures"):
        read_figures(tmp_path / "missing.json")


def _stand_in(monkeypatch: pytest.MonkeyPatch, code: str) -> None:
    monkeypatch.setattr(
        bench_runs, "bench_command", lambda *_: [sys.executable, "-c", code], raising=True
    )


def test_a_run_that_overruns_is_interrupted_and_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _stand_in(monkeypatch, "import time\nprint('working', flush=True)\ntime.sleep(60)")
    started = time.monotonic()
    with pytest.raises(BenchRunError, match="did not finish in 1 s") as caught:
        run_bench(BenchSettings(nodes=4, duration_s=1, timeout_s=1), tmp_path, "slow")
    assert "working" in str(caught.value)
    assert time.monotonic() - started < 30  # SIGINT ended it, not the grace period


def test_a_run_is_interrupted_even_where_this_process_ignores_sigint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As in a job a script started with `&` or nohup: children inherit the ignored SIGINT.
    _stand_in(monkeypatch, "import time\nprint('working', flush=True)\ntime.sleep(60)")
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        started = time.monotonic()
        with pytest.raises(BenchRunError, match="did not finish in 1 s"):
            run_bench(BenchSettings(nodes=4, duration_s=1, timeout_s=1), tmp_path, "slow")
        assert time.monotonic() - started < 30  # SIGINT ended it, not the grace period
    finally:
        signal.signal(signal.SIGINT, previous)


def test_a_failing_run_reports_its_status_and_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _stand_in(monkeypatch, "import sys\nprint('no cluster for you')\nsys.exit(3)")
    with pytest.raises(BenchRunError, match="status 3") as caught:
        run_bench(BenchSettings(nodes=4, duration_s=1, timeout_s=30), tmp_path, "bad")
    assert "no cluster for you" in str(caught.value)


def test_a_run_returns_its_figures_without_the_timeline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    figures = {**{key: 2.0 for key in FIGURES}, "timeline": {"second": [1.0]}}
    (tmp_path / "figures.json").write_text(json.dumps(figures))
    # The stand-in writes what a bench would, where the run expects it.
    source, target = str(tmp_path / "figures.json"), str(tmp_path / "ok.json")
    code = f"import shutil; shutil.copy({source!r}, {target!r})"
    _stand_in(monkeypatch, code)
    result = run_bench(BenchSettings(nodes=4, duration_s=1, timeout_s=30), tmp_path, "ok")
    assert "timeline" not in result
    assert result["committed_tx_per_s"] == 2.0
