"""The CLI's tables and lines: whole when stdout is no terminal (a file, a pipe), fitted to the
terminal's width on one."""

from __future__ import annotations

import io

import click
import pytest
from click.testing import CliRunner
from rich.table import Table

from cli.common import WholeLinesConsole, console, table

LONG_CELL = "x" * 150


@click.command()
def _print_table_and_line() -> None:
    table("wide", ["name", "value"], [["first", LONG_CELL], ["second", "short"]])
    console.print("a line of " + "y" * 150 + " ends here")


def test_a_table_and_a_line_come_out_whole_when_stdout_is_no_terminal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # What a plain rich Console takes for the width of output that goes to no terminal.
    monkeypatch.setenv("COLUMNS", "80")
    result = CliRunner().invoke(_print_table_and_line)
    assert result.exit_code == 0, result.output
    assert "…" not in result.output
    row = next(line for line in result.output.splitlines() if "first" in line)
    assert LONG_CELL in row
    assert "a line of " + "y" * 150 + " ends here" in result.output.splitlines()


def test_a_table_and_a_line_still_fit_a_terminal() -> None:
    screen = io.StringIO()
    terminal = WholeLinesConsole(file=screen, force_terminal=True, color_system=None, width=60)
    view = Table()
    view.add_column("name")
    view.add_column("value")
    view.add_row("first", LONG_CELL)
    terminal.print(view)
    terminal.print(LONG_CELL)
    lines = screen.getvalue().splitlines()
    assert len(lines) > 5
    assert max(len(line) for line in lines) == 60
