"""The commands that start or stop a cluster's nodes (`cluster up`, `down`, `restart`, `kill`)
hold an exclusive lock on the cluster directory while they run. A second one fails at once,
naming the command that holds it and its pid, and changes nothing; read-only commands do not
take it; the kernel frees it when its holder exits, even by SIGKILL; and the nodes `up` starts
do not inherit it.

The holder is a real `millchain cluster up` in a subprocess, waiting for nodes that never
answer: a stand-in per node that only sleeps (tests.cli.test_process.stand_ins), so no real
node starts."""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.layout import ClusterDir
from cli.main import main
from cli.process import is_alive, node_pid
from cli.process import start_node as real_start_node
from tests.cli.test_process import stand_ins

LOCK_FILE = "cluster.lock"  # in the cluster directory, as the README says
HOLD_WAIT_S = 30  # for the holder to take the lock: a Python start-up on a loaded machine
BUSY_ANSWER_S_MAX = 10  # a contender must not wait for the holder (which waits 60 s)


@contextlib.contextmanager
def holder_of_the_lock(
    layout: ClusterDir,
) -> Iterator[tuple[subprocess.Popen[str], dict[str, int]]]:
    """A `millchain cluster up` holding the directory's lock, and the stand-in nodes it waits
    for (by name, their pids); the command is SIGKILLed by its pid on the way out."""
    with stand_ins(layout) as pids:
        up = ["cluster", "up", "--dir", str(layout.root), "--timeout", "60"]
        process = subprocess.Popen(
            [sys.executable, "-m", "cli", *up],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            _wait_until_held_by(layout, process)
            yield process, pids
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
            process.communicate(timeout=30)


def _wait_until_held_by(layout: ClusterDir, process: subprocess.Popen[str]) -> None:
    """Until the lock file names `process` (written once it holds the lock). Reading it takes
    no lock, so the wait cannot make the holder fail."""
    path = layout.root / LOCK_FILE
    deadline = time.monotonic() + HOLD_WAIT_S
    while not (path.exists() and str(process.pid) in path.read_text(encoding="utf-8")):
        if process.poll() is not None:
            pytest.fail(f"the holder exited: {process.communicate()[0]}")
        if time.monotonic() > deadline:
            pytest.fail(f"`cluster up` (pid {process.pid}) took no lock in {HOLD_WAIT_S} s")
        time.sleep(0.02)


def _holds_lock_here(layout: ClusterDir, pid: int | str = "self") -> bool:
    """Whether process `pid` has the directory's lock file open."""
    lock = os.path.realpath(layout.root / LOCK_FILE)
    fds = Path(f"/proc/{pid}/fd")
    targets = set()
    for fd in fds.iterdir():
        with contextlib.suppress(OSError):  # the descriptor of the listing itself, closed
            targets.add(os.readlink(fd))
    return lock in targets


def _refuse_to_start(layout: ClusterDir, name: str, **_: object) -> int:
    raise AssertionError(f"{name} was started while another command held the lock")


def _invoke(*args: str) -> tuple[int, str, float]:
    """The exit code and output (with any exception the command raised) of a CLI command run
    in this process, and the seconds it took."""
    started = time.monotonic()
    result = CliRunner().invoke(main, list(args))
    raised = "" if result.exception is None else f"\n{result.exception!r}"
    return result.exit_code, result.output + raised, time.monotonic() - started


# A timeout of 1 s for the commands that wait: without the lock, they would fail after it.
@pytest.mark.parametrize(
    "command",
    [
        ["up", "--timeout", "1"],
        ["down"],
        ["restart", "node1", "--timeout", "1"],
        ["kill", "node1"],
    ],
    ids=["up", "down", "restart", "kill"],
)
def test_a_command_that_starts_or_stops_nodes_fails_at_once_while_another_holds_the_lock(
    cluster: ClusterDir, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    monkeypatch.setattr("cli.cluster_cmd.start_node", _refuse_to_start)
    with holder_of_the_lock(cluster) as (holder, pids):
        code, output, elapsed_s = _invoke("cluster", *command, "--dir", str(cluster.root))
        assert code == 1, output
        assert f"`millchain cluster up` (pid {holder.pid})" in output, output
        assert str(cluster.root / LOCK_FILE) in output, output
        assert elapsed_s < BUSY_ANSWER_S_MAX, f"waited {elapsed_s:.1f} s for the lock"
        # Nothing changed: every stand-in runs on, named by its pid file.
        assert {name: node_pid(cluster, name) for name in pids} == pids
        assert all(is_alive(pid) for pid in pids.values())


def test_status_works_while_the_lock_is_held(cluster: ClusterDir) -> None:
    with holder_of_the_lock(cluster) as (_, pids):
        code, output, _ = _invoke("cluster", "status", "--dir", str(cluster.root), "--json")
        assert code == 0, output
        assert str(pids["node0"]) in output


def test_the_lock_is_free_once_its_holder_is_killed(cluster: ClusterDir) -> None:
    with holder_of_the_lock(cluster) as (holder, pids):
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=30)
        code, output, _ = _invoke("cluster", "down", "--dir", str(cluster.root))
        assert code == 0, output
        assert "stopped 4 node(s)" in output
        assert [node_pid(cluster, name) for name in pids] == [None] * 4


def test_nodes_started_by_up_do_not_inherit_the_lock(
    cluster: ClusterDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each "node" is a process that only sleeps, started by the real start_node; up gives up
    # on them after its one-second timeout and stops them.
    sleeper = functools.partial(
        real_start_node, prefix=(sys.executable, "-c", "import time; time.sleep(60)")
    )
    inherited: dict[str, bool] = {}

    def start_and_look(layout: ClusterDir, name: str) -> int:
        assert _holds_lock_here(layout), "up starts nodes without holding the lock"
        pid = sleeper(layout, name)  # Popen returns once the exec happened
        inherited[name] = _holds_lock_here(layout, pid)
        return pid

    monkeypatch.setattr("cli.cluster_cmd.start_node", start_and_look)
    code, output, _ = _invoke("cluster", "up", "--dir", str(cluster.root), "--timeout", "1")
    assert code == 1 and "not answering after 1 s" in output, output
    assert inherited == dict.fromkeys(cluster.node_names(), False)
    assert not _holds_lock_here(cluster), "up kept the lock after it ended"


def test_up_interrupted_by_ctrl_c_releases_the_lock(
    cluster: ClusterDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(layout: ClusterDir, name: str, **_: object) -> int:
        assert _holds_lock_here(layout), "up starts nodes without holding the lock"
        raise KeyboardInterrupt

    monkeypatch.setattr("cli.cluster_cmd.start_node", interrupted)
    code, output, _ = _invoke("cluster", "up", "--dir", str(cluster.root))
    assert code == 1 and "Aborted" in output, output
    assert not _holds_lock_here(cluster)
    code, output, _ = _invoke("cluster", "down", "--dir", str(cluster.root))
    assert (code, output) == (0, "stopped 0 node(s)\n")
