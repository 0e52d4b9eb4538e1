"""`millchain cluster up` and `cluster restart` on real node processes: a cluster directory
given relative to the working directory, a node that cannot start, a name that is no node."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli.layout import ClusterDir, init_cluster
from cli.process import node_pid
from tests.clusters import kill_all


def millchain_in(cwd: Path, *args: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    """The CLI as a user runs it, from the working directory `cwd`."""
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
        cwd=cwd,
    )


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[ClusterDir]:
    layout = init_cluster(tmp_path / "cluster", nodes=4)
    try:
        yield layout
    finally:
        millchain_in(tmp_path, "cluster", "down", "--dir", "cluster", timeout_s=60)
        kill_all(layout)


def test_a_cluster_dir_relative_to_the_working_directory_starts_and_restarts(
    tmp_path: Path, cluster: ClusterDir
) -> None:
    # As the README has it: `millchain cluster up --dir cluster`.
    up = millchain_in(tmp_path, "cluster", "up", "--dir", "cluster", "--timeout", "60")
    assert up.returncode == 0, up.stdout + up.stderr
    status = millchain_in(tmp_path, "cluster", "status", "--dir", "cluster", "--json")
    assert [row["alive"] for row in json.loads(status.stdout)] == [True] * 4

    pid = node_pid(cluster, "node1")
    wrong = millchain_in(tmp_path, "cluster", "restart", "../nodes/node1", "--dir", "cluster")
    assert wrong.returncode == 1 and "no node named '../nodes/node1'" in wrong.stderr
    assert node_pid(cluster, "node1") == pid  # an unknown name stops nothing

    restart = millchain_in(tmp_path, "cluster", "restart", "node1", "--dir", "cluster")
    assert restart.returncode == 0, restart.stdout + restart.stderr
    assert node_pid(cluster, "node1") not in (None, pid)


def test_a_node_that_cannot_start_fails_up_at_once_and_up_stops_what_it_started(
    tmp_path: Path, cluster: ClusterDir
) -> None:
    config = cluster.config("node3")
    with socket.socket() as holder:
        holder.bind((config.host, config.port))
        holder.listen()
        up = millchain_in(tmp_path, "cluster", "up", "--dir", "cluster", "--timeout", "60")
    assert up.returncode == 1
    assert "node3 exited before answering" in up.stderr
    assert f"cannot listen on {config.host}:{config.port}" in up.stderr
    assert [node_pid(cluster, name) for name in cluster.node_names()] == [None] * 4
