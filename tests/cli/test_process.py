"""Reading a node process's state and CPU time from /proc."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli.layout import ClusterDir, LayoutError, init_cluster
from cli.process import (
    cpu_seconds,
    cpu_spent,
    is_alive,
    kill_node,
    node_cpu_seconds,
    node_pid,
    running_node_pids,
    stop_node,
    stop_nodes,
)


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


@contextlib.contextmanager
def stand_ins(
    layout: ClusterDir, *args: str, script: str = "import time; time.sleep(600)"
) -> Iterator[dict[str, int]]:
    """A process per node running `script` (by default it sleeps), started with `args` (by
    default as start_node starts the node: `--config` naming its config file, from the node's
    directory), in the pid files."""
    children: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name in layout.node_names():
            children[name] = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    script,
                    *(args or ("node", "run", "--config", "node.json")),
                ],
                cwd=layout.node_dir(name),
            )
            layout.pid_file(name).write_text(f"{children[name].pid}\n", encoding="utf-8")
        yield {name: child.pid for name, child in children.items()}
    finally:
        for child in children.values():
            child.kill()
            child.wait(timeout=10)


def test_running_node_pids_names_a_node_that_is_not_running(tmp_path: Path) -> None:
    layout = init_cluster(tmp_path / "cluster", nodes=4)
    with pytest.raises(LayoutError, match="node0 has no running process"):
        running_node_pids(layout)
    with stand_ins(layout) as pids:
        assert running_node_pids(layout) == pids
        layout.pid_file("node1").unlink()
        with pytest.raises(LayoutError, match="node1 has no running process"):
            running_node_pids(layout)


@pytest.mark.parametrize(
    "args",
    [("some", "other", "program"), ("node", "run", "--config", "../node0/node.json")],
    ids=["another-program", "another-node"],
)
def test_a_pid_file_naming_a_process_that_is_not_the_node_is_stale(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    # Pids are reused: the process a leftover pid file names may be anything by now. Stopping
    # or killing "the node" must not signal it.
    layout = init_cluster(tmp_path / "cluster", nodes=4)
    with stand_ins(layout, *args) as pids:
        assert node_pid(layout, "node2") is None
        assert not layout.pid_file("node2").exists()
        assert not stop_node(layout, "node2") and not kill_node(layout, "node2")
        assert is_alive(pids["node2"])
        if args[-1].startswith("../node0"):
            assert node_pid(layout, "node0") == pids["node0"]  # that one is node0 indeed


# A node that takes SIGTERM without stopping: it writes down when SIGTERM reached it (the
# monotonic clock is the machine's, so times from processes compare) and sleeps on.
DEAF_TO_SIGTERM = """
import pathlib, signal, time
def heard(signum, frame):
    pathlib.Path("sigterm-at").write_text(repr(time.monotonic()))
signal.signal(signal.SIGTERM, heard)
pathlib.Path("ready").write_text("")
while True:
    time.sleep(1)
"""


def test_stop_nodes_signals_every_node_at_once_and_kills_those_that_stay(tmp_path: Path) -> None:
    layout = init_cluster(tmp_path / "cluster", nodes=4)
    timeout_s = 5.0
    with stand_ins(layout, script=DEAF_TO_SIGTERM) as pids:
        deadline = time.monotonic() + 60
        names = layout.node_names()
        while not all((layout.node_dir(name) / "ready").exists() for name in names):
            assert time.monotonic() < deadline, "the stand-ins did not start in 60 s"
            time.sleep(0.05)
        layout.pid_file("node3").unlink()  # not running, as far as the cluster knows
        assert stop_nodes(layout, names, timeout_s=timeout_s) == ["node0", "node1", "node2"]
        heard = [float((layout.node_dir(name) / "sigterm-at").read_text()) for name in names[:3]]
        # One after the other, each would have been told timeout_s after the one before.
        assert max(heard) - min(heard) < timeout_s / 2, heard
        assert not any(is_alive(pids[name]) for name in names[:3])
        assert not any(layout.pid_file(name).exists() for name in names)
        assert is_alive(pids["node3"])  # no pid file: not signalled
        assert not (layout.node_dir("node3") / "sigterm-at").exists()


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

    with stand_ins(layout) as pids:
        seconds = node_cpu_seconds(layout)
        assert isinstance(seconds, dict)
        assert set(seconds) == set(layout.node_names())
        assert all(pid == pids[name] and spent >= 0 for name, (pid, spent) in seconds.items())

        gone = subprocess.Popen([sys.executable, "-c", "pass"])
        gone.wait(timeout=30)
        layout.pid_file("node2").write_text(f"{gone.pid}\n", encoding="utf-8")
        reason = node_cpu_seconds(layout)
        assert isinstance(reason, str) and "node2" in reason


def test_a_process_that_shows_no_command_line_yet_is_read_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Just started, a process shows an empty command line until the kernel has set up its
    # arguments, while its parent may already be past Popen: read too soon, the node would be
    # taken for another process and its pid file removed.
    layout = init_cluster(tmp_path / "cluster", nodes=4)
    with stand_ins(layout) as pids:
        read_bytes = Path.read_bytes
        empty = {"left": 3}

        def still_starting(path: Path) -> bytes:
            if path.name == "cmdline" and empty["left"]:
                empty["left"] -= 1
                return b""
            return read_bytes(path)

        monkeypatch.setattr(Path, "read_bytes", still_starting)
        assert node_pid(layout, "node0") == pids["node0"]
        assert empty["left"] == 0
