"""`millchain cluster up` and `cluster restart` on real node processes: a cluster directory
given relative to the working directory, a node that cannot start, a name that is no node."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli.layout import ClusterDir, init_cluster
from cli.process import is_alive, node_pid, read_pid
from tests.clusters import kill_all, millchain


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[ClusterDir]:
    layout = init_cluster(tmp_path / "cluster", nodes=4)
    try:
        yield layout
    finally:
        millchain("cluster", "down", "--dir", "cluster", timeout_s=60, cwd=tmp_path)
        kill_all(layout)


def test_a_cluster_dir_relative_to_the_working_directory_starts_and_restarts(
    tmp_path: Path, cluster: ClusterDir
) -> None:
    # As the README has it: `millchain cluster up --dir cluster`.
    up = millchain("cluster", "up", "--dir", "cluster", "--timeout", "60", cwd=tmp_path)
    assert up.returncode == 0, up.stdout + up.stderr
    status = millchain("cluster", "status", "--dir", "cluster", "--json", cwd=tmp_path)
    assert [row["alive"] for row in json.loads(status.stdout)] == [True] * 4

    pid = node_pid(cluster, "node1")
    wrong = millchain("cluster", "restart", "../nodes/node1", "--dir", "cluster", cwd=tmp_path)
    assert wrong.returncode == 1 and "no node named '../nodes/node1'" in wrong.stderr
    assert node_pid(cluster, "node1") == pid  # an unknown name stops nothing

    restart = millchain("cluster", "restart", "node1", "--dir", "cluster", cwd=tmp_path)
    assert restart.returncode == 0, restart.stdout + restart.stderr
    assert node_pid(cluster, "node1") not in (None, pid)


def test_a_node_that_cannot_start_fails_up_at_once_and_up_stops_what_it_started(
    tmp_path: Path, cluster: ClusterDir
) -> None:
    config = cluster.config("node3")
    with socket.socket() as holder:
        holder.bind((config.host, config.port))
        holder.listen()
        up = millchain("cluster", "up", "--dir", "cluster", "--timeout", "60", cwd=tmp_path)
    assert up.returncode == 1
    assert "node3 exited before answering" in up.stderr
    assert f"cannot listen on {config.host}:{config.port}" in up.stderr
    assert [node_pid(cluster, name) for name in cluster.node_names()] == [None] * 4


@pytest.mark.slow
def test_sigterm_to_a_command_on_a_temporary_cluster_stops_its_nodes(tmp_path: Path) -> None:
    # bench runs its own cluster in a temporary folder; nodes run in sessions of their own, so
    # only the command itself can stop them.
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    errors = tmp_path / "bench.stderr"
    errors_file = errors.open("wb")
    bench = subprocess.Popen(
        [sys.executable, "-m", "cli", "bench", "--duration", "60", "--json", "out.json"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=errors_file,
    )
    pids: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while len(pids) < 4:
            assert time.monotonic() < deadline, "the bench's nodes did not start in 120 s"
            assert bench.poll() is None, errors.read_text()
            files = list(tmp_path.glob("millchain-bench-*/cluster/nodes/*/node.pid"))
            found = [read_pid(path) for path in files]
            pids = [pid for pid in found if pid is not None and is_alive(pid)]
            time.sleep(0.1)
        bench.send_signal(signal.SIGTERM)
        try:
            status = bench.wait(timeout=60)
        except subprocess.TimeoutExpired:
            # Where it and the nodes still running wait: their threads' stacks (SIGUSR1).
            alive = [pid for pid in pids if is_alive(pid)]
            for pid in [bench.pid, *alive]:
                os.kill(pid, signal.SIGUSR1)
            dump_by = time.monotonic() + 10
            while "Thread 0x" not in errors.read_text() and time.monotonic() < dump_by:
                time.sleep(0.05)
            logs = tmp_path.glob("millchain-bench-*/cluster/nodes/*/stdout.log")
            pytest.fail(
                f"bench still ran 60 s after SIGTERM; nodes alive: {alive}\n{errors.read_text()}"
                + "".join(f"\n{log}:\n{log.read_text()[-4000:]}" for log in logs)
            )
        assert status == 128 + signal.SIGTERM
        assert not [pid for pid in pids if is_alive(pid)]
        assert not list(tmp_path.glob("millchain-bench-*"))
    finally:
        bench.kill()
        bench.wait(timeout=30)
        errors_file.close()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
