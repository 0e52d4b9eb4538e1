"""`millchain bench` as a command: a --dir that is no cluster is refused before seconds go into
measuring signature speed, and an unpaced run says so rather than printing None. The load and
the measurements are stubbed out: what is pinned here is the command around them."""

from __future__ import annotations

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

    monkeypatch.setattr("cli.bench.verify_rate", lambda duration_s=1.0: 1e5)
    monkeypatch.setattr("cli.bench._register_senders", register_senders)
    monkeypatch.setattr("cli.bench._measure", measure)
    monkeypatch.setattr("cli.bench.write_plot", lambda *_, **__: None)
    result = CliRunner().invoke(
        main, ["bench", "--dir", str(layout.root), "--plot", str(tmp_path / "bench.png")]
    )
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if "offered_tx_per_s" in line)
    assert "unpaced" in line and "None" not in line
