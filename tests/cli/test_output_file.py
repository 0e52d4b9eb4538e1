"""Options naming a file a command writes (cli.common.OutputFile)."""

from __future__ import annotations

from pathlib import Path

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
