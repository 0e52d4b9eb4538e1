"""contracts/ stays deterministic by construction: no IO, clock, randomness or floats imported."""

from __future__ import annotations

import ast
from pathlib import Path

import contracts

FORBIDDEN = {
    "asyncio",
    "datetime",
    "os",
    "pathlib",
    "random",
    "secrets",
    "socket",
    "subprocess",
    "threading",
    "time",
    "uuid",
    "aiohttp",
    "sqlite3",
    "decimal",
    "fractions",
    "math",
    "node",
    "consensus",
    "cli",
    "oracle",
}


def imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_no_contracts_module_imports_io_clock_randomness_or_upper_layers() -> None:
    package = Path(contracts.__file__).parent
    sources = sorted(package.glob("*.py"))
    assert sources
    offenders = {
        path.name: sorted(imported_roots(path) & FORBIDDEN)
        for path in sources
        if imported_roots(path) & FORBIDDEN
    }
    assert offenders == {}


def test_no_float_literals_in_contracts() -> None:
    package = Path(contracts.__file__).parent
    floats = [
        f"{path.name}:{node.lineno}"
        for path in sorted(package.glob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Constant) and isinstance(node.value, float)
    ]
    assert floats == []
