"""Nothing under consensus/ does IO, reads a clock or draws its own randomness."""

from __future__ import annotations

import ast
from pathlib import Path

import consensus

FORBIDDEN = {"asyncio", "time", "random", "socket", "aiohttp", "os", "threading", "subprocess"}
# The harness and the simulator create the seeded random.Random everything else draws from.
ALLOWED = {
    ("sim/harness.py", "random"),
    ("sim/simulator.py", "random"),
    ("sim/schedule.py", "random"),
    ("sim/faults.py", "random"),
}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_consensus_imports_no_io_clock_or_randomness() -> None:
    root = Path(consensus.__file__).parent
    offenders = []
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root).as_posix()
        for name in imported_modules(path) & FORBIDDEN:
            if (relative, name) not in ALLOWED:
                offenders.append(f"{relative} imports {name}")
    assert offenders == []


def test_consensus_depends_only_on_ledger() -> None:
    root = Path(consensus.__file__).parent
    ours = {"cli", "node", "contracts", "oracle"}
    for path in root.rglob("*.py"):
        assert not imported_modules(path) & ours, path
