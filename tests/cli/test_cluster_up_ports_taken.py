"""`millchain cluster up` says "N nodes up" only when the nodes it started answer. Ports are the
ones the OS reported free when a cluster was initialised, so while cluster A is down another
cluster B (initialised later) may hold them. Its nodes are named node0.. too, so they answer
A's addresses "as themselves"; A's own nodes then fail to bind and exit. `up` must not report
A's cluster up, and must leave no process of A's behind."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from cli.layout import ClusterDir, init_cluster
from cli.process import is_alive, node_pid, read_pid
from tests.clusters import millchain, running_cluster

pytestmark = [pytest.mark.slow]


def _take_ports_of(down: ClusterDir, running: ClusterDir) -> None:
    """Give every node of `down` the port `running`'s node of that name holds (genesis and
    node.json), as the OS hands ports that were free when `down` was initialised to a cluster
    initialised later."""
    genesis = json.loads(down.genesis_file.read_text(encoding="utf-8"))
    for validator in genesis["validators"]:
        validator["port"] = running.config(validator["name"]).port
    down.genesis_file.write_text(json.dumps(genesis), encoding="utf-8")
    for name in down.node_names():
        path = down.config_file(name)
        document = json.loads(path.read_text(encoding="utf-8"))
        document["port"] = running.config(name).port
        path.write_text(json.dumps(document), encoding="utf-8")


def _no_node_of(layout: ClusterDir, timeout_s: float) -> list[str]:
    """Poll until no node of `layout` runs (by its pid file); the names still running."""
    deadline = time.monotonic() + timeout_s
    while True:
        running = [name for name in layout.node_names() if node_pid(layout, name) is not None]
        if not running or time.monotonic() > deadline:
            return running
        time.sleep(0.05)


def test_up_does_not_report_nodes_up_when_another_clusters_nodes_hold_its_ports(
    tmp_path: Path,
) -> None:
    down = init_cluster(tmp_path / "a", nodes=4)
    with running_cluster(tmp_path / "b") as other:
        other_pids = [read_pid(other.pid_file(name)) for name in other.node_names()]
        _take_ports_of(down, other)
        try:
            up = millchain("cluster", "up", "--dir", str(down.root), "--timeout", "30")
            out = up.stdout + up.stderr
            assert up.returncode == 1, out
            assert "nodes up" not in up.stdout, out
            assert "another process" in up.stderr, out
            assert _no_node_of(down, 30) == [], out
            # The other cluster's nodes are left alone.
            assert all(pid is not None and is_alive(pid) for pid in other_pids)
        finally:
            millchain("cluster", "down", "--dir", str(down.root), timeout_s=60)
