"""`millchain bench` as a command: a --dir that is no cluster, or whose nodes do not all answer,
is refused before seconds go into measuring signature speed and before anything is written, and
an unpaced run says so rather than printing None. The load and the measurements are stubbed
out: what is pinned here is the command around them."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cli.layout import init_cluster
from cli.main import main


def test_a_dir_that_is_no_cluster_is_refused_before_measuring(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    measured: list[float] = []

    def verify_rate(duration_s: float = 1.0) -> float:
        measured.append(duration_s)
        return 1e5

    monkeypatch.setattr("cli.bench.verify_rate", verify_rate)
    result = CliRunner().invoke(main, ["bench", "--dir", str(tmp_path / "missing")])
    assert result.exit_code == 1, result.output
    assert "is not a cluster directory" in result.output
    assert measured == []
    assert "verify rate" not in result.output


def test_a_cluster_whose_nodes_do_not_answer_is_refused_at_once_and_left_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    layout = init_cluster(tmp_path / "cluster", nodes=4)
    before = sorted(p.relative_to(layout.root) for p in layout.root.rglob("*"))
    measured: list[float] = []

    def verify_rate(duration_s: float = 1.0) -> float:
        measured.append(duration_s)
        return 1e5

    monkeypatch.setattr("cli.bench.verify_rate", verify_rate)
    monkeypatch.setattr("cli.bench.ANSWER_TIMEOUT_S", 0.5)
    # node1's port takes connections and never answers (a hung node); the others are down.
    config = layout.config("node1")
    with socket.create_server((config.host, config.port)):
        started = time.monotonic()
        result = CliRunner().invoke(
            main,
            [
                "bench",
                "--dir",
                str(layout.root),
                "--json",
                str(tmp_path / "bench.json"),
                "--plot",
                str(tmp_path / "bench.png"),
            ],
        )
        waited_s = time.monotonic() - started
    assert result.exit_code == 1, result.output
    assert "4 of the 4 nodes in" in result.output and "do not answer" in result.output
    assert all(f"node{i} (cannot reach" in result.output for i in range(4))
    assert waited_s < 5  # the hung node is given ANSWER_TIMEOUT_S, not the load's seconds
    assert measured == []
    assert sorted(p.relative_to(layout.root) for p in layout.root.rglob("*")) == before
    assert not (tmp_path / "bench.json").exists() and not (tmp_path / "bench.png").exists()


def test_an_unpaced_run_says_unpaced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    layout = init_cluster(tmp_path / "cluster", nodes=4)

    async def register_senders(*_: Any, **__: Any) -> None:
        return None

    def measure(*_: Any) -> dict[str, Any]:
        return {
            "offered_tx_per_s": None,
            "committed_tx_per_s": 100.0,
            "timeline": [],
            "stages_ms_p50": {},
        }

    async def not_answering(*_: Any) -> list[str]:
        return []

    monkeypatch.setattr("cli.bench.verify_rate", lambda duration_s=1.0: 1e5)
    monkeypatch.setattr("cli.bench._not_answering", not_answering)
    monkeypatch.setattr("cli.bench._register_senders", register_senders)
    monkeypatch.setattr("cli.bench._measure", measure)
    monkeypatch.setattr("cli.bench.write_plot", lambda *_, **__: None)
    result = CliRunner().invoke(
        main, ["bench", "--dir", str(layout.root), "--plot", str(tmp_path / "bench.png")]
    )
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if "offered_tx_per_s" in line)
    assert "unpaced" in line and "None" not in line
