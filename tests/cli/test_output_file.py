"""Options naming a file a command writes (cli.common.OutputFile)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from cli.common import OutputFile
from cli.main import main


@click.command()
@click.option("--out", type=OutputFile(), required=True)
def _write(out: Path) -> None:
    out.write_text("written")


@pytest.mark.parametrize("value", ["", ".", "..", "reports/", "reports/.", "reports/.."])
def test_a_path_without_a_file_name_is_refused_and_nothing_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "reports").mkdir()
    result = CliRunner().invoke(_write, ["--out", value])
    assert result.exit_code == 2
    assert "names no file" in result.output
    assert [p.name for p in tmp_path.rglob("*")] == ["reports"]


def test_a_file_name_is_taken(tmp_path: Path) -> None:
    result = CliRunner().invoke(_write, ["--out", str(tmp_path / "a.json")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "a.json").read_text() == "written"


def test_an_existing_directory_is_refused(tmp_path: Path) -> None:
    result = CliRunner().invoke(_write, ["--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "is a directory" in result.output


def test_bench_refuses_an_empty_plot_path_before_starting_anything(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["bench", "--plot", "", "--dir", str(tmp_path / "none")])
    assert result.exit_code == 2
    assert "'--plot'" in result.output and "names no file" in result.output


def test_a_path_in_a_missing_folder_is_refused(tmp_path: Path) -> None:
    result = CliRunner().invoke(_write, ["--out", str(tmp_path / "missing" / "a.json")])
    assert result.exit_code == 2
    assert "does not exist" in result.output
    assert list(tmp_path.iterdir()) == []


def test_a_path_under_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("")
    result = CliRunner().invoke(_write, ["--out", str(tmp_path / "plain" / "a.json")])
    assert result.exit_code == 2
    assert "is not a folder" in result.output


def test_a_path_in_a_folder_that_cannot_be_written_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # chmod does not stop root, who runs these tests in some containers: the check asks os.access.
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access

    def access(path: Any, mode: int, **kwargs: Any) -> bool:
        if os.fspath(path) == str(locked) and mode & os.W_OK:
            return False
        return real_access(path, mode, **kwargs)

    monkeypatch.setattr(os, "access", access)
    result = CliRunner().invoke(_write, ["--out", str(locked / "a.json")])
    assert result.exit_code == 2
    assert "is not writable" in result.output
    assert list(locked.iterdir()) == []


def test_sim_refuses_a_json_path_in_a_missing_folder_before_running(tmp_path: Path) -> None:
    missing = tmp_path / "missing" / "s.json"
    result = CliRunner().invoke(main, ["sim", "--seeds", "1", "--json", str(missing)])
    assert result.exit_code == 2
    assert "'--json'" in result.output and "does not exist" in result.output
    assert "runs" not in result.output  # no sweep ran


def test_bench_refuses_a_plot_path_in_a_missing_folder_before_starting_anything(
    tmp_path: Path,
) -> None:
    plot = tmp_path / "missing" / "b.png"
    result = CliRunner().invoke(main, ["bench", "--plot", str(plot), "--dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "'--plot'" in result.output and "does not exist" in result.output
    assert "verify rate" not in result.output


@pytest.mark.parametrize(
    "args",
    [
        ["oracle", "simulate", "--out"],
        ["oracle", "train", "--data", "{data}", "--out"],
        ["scenario", "run", "--strategy", "reactive", "--json"],
    ],
)
def test_other_output_options_refuse_a_missing_folder(tmp_path: Path, args: list[str]) -> None:
    data = tmp_path / "data.csv"
    data.write_text("")
    args = [str(data) if arg == "{data}" else arg for arg in args]
    result = CliRunner().invoke(main, [*args, str(tmp_path / "missing" / "out")])
    assert result.exit_code == 2
    assert "/missing' does not exist" in result.output
