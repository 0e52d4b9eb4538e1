"""Reading a node process's state and CPU time from /proc."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli.layout import LayoutError, init_cluster
from cli.process import cpu_seconds, cpu_spent, is_alive, node_cpu_seconds, running_node_pids


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


def test_a_node_restarted_between_the_readings_has_no_cpu_figure() -> None:
    spent = cpu_spent(
        {"node0": (7, 1.0), "node1": (8, 1.0)}, {"node0": (7, 2.0), "node1": (9, 0.1)}
    )

    assert spent == "node1 was restarted during the run (pid 8 at its start)"
    assert cpu_spent({"node0": (7, 1.0)}, {"node0": (7, 2.5)}) == {"node0": 1.5}


def test_node_cpu_seconds_reads_running_nodes_and_names_the_missing_one(tmp_path: Path) -> None:
    layout = init_cluster(tmp_path / "cluster", nodes=4)
    missing = node_cpu_seconds(layout)
    assert isinstance(missing, str) and missing.startswith("node0 has no running process")

    for name in layout.node_names():
        layout.pid_file(name).write_text(f"{os.getpid()}\n", encoding="utf-8")
    seconds = node_cpu_seconds(layout)
    assert isinstance(seconds, dict)
    assert set(seconds) == set(layout.node_names())
    assert all(pid == os.getpid() and spent > 0 for pid, spent in seconds.values())

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait(timeout=30)
    layout.pid_file("node2").write_text(f"{gone.pid}\n", encoding="utf-8")
    reason = node_cpu_seconds(layout)
    assert isinstance(reason, str) and "node2" in reason
