"""Reading a node process's state and CPU time from /proc."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli.layout import LayoutError, init_cluster
from cli.process import cpu_seconds, is_alive, running_node_pids


def test_cpu_seconds_grows_with_work_and_is_none_once_the_process_is_gone() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys\nwhile sum(range(10_000)): sys.stdin.readline()"],
        stdin=subprocess.PIPE,
        text=True,
    )
    try:
        first = cpu_seconds(child.pid)
        assert first is not None and first >= 0
        assert child.stdin is not None
        deadline = time.monotonic() + 30
        # The child spends CPU on each line; one clock tick (10 ms) of it shows up in /proc.
        while (cpu_seconds(child.pid) or 0) <= first:
            assert time.monotonic() < deadline, "no CPU time counted in 30 s"
            child.stdin.write("\n" * 200)
            child.stdin.flush()
        assert is_alive(child.pid)
    finally:
        child.kill()
        child.wait(timeout=10)
    assert cpu_seconds(child.pid) is None
    assert cpu_seconds(os.getpid()) is not None


def test_running_node_pids_names_a_node_that_is_not_running(tmp_path: Path) -> None:
    layout = init_cluster(tmp_path / "cluster", nodes=4)
    with pytest.raises(LayoutError, match="node0 has no running process"):
        running_node_pids(layout)
    layout.pid_file("node0").write_text(f"{os.getpid()}\n", encoding="utf-8")
    with pytest.raises(LayoutError, match="node1 has no running process"):
        running_node_pids(layout)
    for name in layout.node_names():
        layout.pid_file(name).write_text(f"{os.getpid()}\n", encoding="utf-8")
    assert running_node_pids(layout) == dict.fromkeys(layout.node_names(), os.getpid())
