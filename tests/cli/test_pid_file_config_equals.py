"""A node run in the foreground with `--config=PATH` (click takes that spelling as it takes
`--config PATH`) holds its pid file as any other: `cluster status` shows its pid, `cluster
down` stops it, and the pid file is not removed as stale while the node lives (which also let a
second `node run` of the same node past the pid file's lock)."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli.layout import init_cluster
from cli.process import read_pid
from tests.clusters import millchain

pytestmark = [pytest.mark.slow]


def test_a_node_run_with_config_equals_is_found_and_stopped_by_cluster_down(
    tmp_path: Path,
) -> None:
    layout = init_cluster(tmp_path / "cluster", nodes=4)
    pid_file = layout.pid_file("node0")
    node = subprocess.Popen(
        [sys.executable, "-m", "cli", "node", "run", f"--config={layout.config_file('node0')}"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while read_pid(pid_file) != node.pid:
            assert node.poll() is None, "the node exited"
            assert time.monotonic() < deadline, "the node wrote no pid file in 30 s"
            time.sleep(0.05)

        status = millchain("cluster", "status", "--dir", str(layout.root), "--json")
        assert status.returncode == 0, status.stderr
        rows = {row["name"]: row for row in json.loads(status.stdout)}
        assert rows["node0"]["pid"] == node.pid, rows["node0"]
        assert read_pid(pid_file) == node.pid  # not removed as stale

        down = millchain("cluster", "down", "--dir", str(layout.root), timeout_s=60)
        assert down.returncode == 0, down.stdout + down.stderr
        assert "node0" in down.stdout, down.stdout
        node.wait(timeout=30)
    finally:
        with contextlib.suppress(ProcessLookupError):
            node.kill()
        node.wait(timeout=30)
