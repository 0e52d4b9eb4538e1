"""Helpers shared by the CLI's commands: options, output, argument parsing, running coroutines."""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console, ConsoleDimensions
from rich.table import Table

from cli.layout import ClusterDir, LayoutError
from ledger.errors import MillchainError

T = TypeVar("T")

# The width of output that goes to no terminal: no line of a table or of text is that long.
UNCUT_WIDTH = 1_000_000


class WholeLinesConsole(Console):
    """A rich Console that fits its output to the terminal's width only when it writes to a
    terminal. Written to a file or a pipe, a table or a line comes out whole: a plain Console
    cuts and wraps it at 80 columns (or at the width of whatever terminal stdin or stderr is),
    and `> file` would keep the ellipses."""

    @property
    def size(self) -> ConsoleDimensions:
        dimensions = super().size
        if self.is_terminal:
            return dimensions
        return ConsoleDimensions(UNCUT_WIDTH, dimensions.height)

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        self.width, self.height = new_size


console = WholeLinesConsole()
err_console = WholeLinesConsole(stderr=True)

dir_option = click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("cluster"),
    show_default=True,
    help="Cluster directory made by `millchain init`.",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")

INTEGER = re.compile(r"^-?[0-9]+$")  # what `key=value` arguments take as an integer


def run(coroutine: Awaitable[T]) -> T:
    async def wrapper() -> T:
        return await coroutine

    return asyncio.run(wrapper())


def fail(message: str) -> None:
    raise click.ClickException(message)


def guarded(function: Callable[..., T]) -> Callable[..., T]:
    """Turn millchain's own errors into a clean one-line CLI error (exit code 1)."""

    def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            return function(*args, **kwargs)
        except (MillchainError, LayoutError) as exc:
            raise click.ClickException(str(exc)) from exc

    wrapper.__name__ = function.__name__
    wrapper.__doc__ = function.__doc__
    return wrapper


class FiniteFloatRange(click.FloatRange):
    """click.FloatRange that also refuses nan and infinity, which pass its bounds checks."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


class OutputFile(click.Path):
    """A file a command writes: like click.Path(dir_okay=False, writable=True), and refusing,
    when the command line is parsed rather than after the work is done, a path without a file
    name (empty, or ending in "/", "." or "..") and one whose folder does not exist or is not
    writable."""

    def __init__(self) -> None:
        super().__init__(dir_okay=False, writable=True, path_type=Path)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        text = os.fspath(value)
        if os.path.basename(text) in ("", ".", ".."):
            self.fail(f"{text!r} names no file", param, ctx)
        folder = os.path.dirname(text) or "."
        if not os.path.isdir(folder):
            problem = "is not a folder" if os.path.exists(folder) else "does not exist"
            self.fail(f"{text!r}: folder {folder!r} {problem}", param, ctx)
        if not os.access(folder, os.W_OK | os.X_OK):
            self.fail(f"{text!r}: folder {folder!r} is not writable", param, ctx)
        return super().convert(value, param, ctx)


def layout_of(directory: Path) -> ClusterDir:
    layout = ClusterDir(directory)
    layout.node_names()  # raises a LayoutError naming the problem
    return layout


def parse_assignments(pairs: tuple[str, ...]) -> dict[str, Any]:
    """Parse `key=value` arguments: integers, true/false, 0x-hex bytes, else strings;
    `key:=JSON` takes a JSON value (lists, maps, quoted strings)."""
    args: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise click.BadParameter(f"{pair!r}: expected key=value or key:=JSON")
        key, text = pair.split("=", 1)
        if key.endswith(":"):
            key = key[:-1]
            try:
                value: Any = json.loads(text)
            except json.JSONDecodeError as exc:
                raise click.BadParameter(f"{pair!r}: not valid JSON after ':=' ({exc})") from exc
        else:
            value = _scalar(text)
        if not key:
            raise click.BadParameter(f"{pair!r}: the key is empty")
        if key in args:
            raise click.BadParameter(f"argument {key!r} given twice")
        args[key] = value
    return args


def _scalar(text: str) -> Any:
    if INTEGER.match(text):
        return int(text)
    if text in ("true", "false"):
        return text == "true"
    if text.startswith("0x"):
        try:
            return bytes.fromhex(text[2:])
        except ValueError as exc:
            raise click.BadParameter(f"{text!r}: 0x prefix but not hex") from exc
    return text


def print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True))


def table(title: str | None, columns: list[str], rows: list[list[Any]]) -> None:
    view = Table(title=title, show_lines=False)
    for column in columns:
        view.add_column(column)
    for row in rows:
        view.add_row(*("" if cell is None else str(cell) for cell in row))
    console.print(view)


def short(hex_text: str | None, length: int = 12) -> str:
    return "" if not hex_text else hex_text[:length]
