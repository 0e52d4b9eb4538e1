"""A node run in the foreground (`millchain node run`) holds the pid file a node started by
`cluster up` has, so `cluster status` shows its process and `cluster down` stops it; a second
run of the same node is refused while it lives, and the file goes when it exits.
`cluster status` names a node that answers with no process known in the directory."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.layout import ClusterDir, LayoutError, init_cluster
from cli.main import main
from cli.process import holding_pid_file, read_pid
from tests.cli.test_process import stand_ins
from tests.clusters import millchain

START_TIMEOUT_S = 60


@contextlib.contextmanager
def foreground_node(layout: ClusterDir, name: str) -> Iterator[subprocess.Popen[str]]:
    """`millchain node run` for node `name`, as a user would start it from a shell, once it
    answers; killed by its pid on the way out."""
    process = subprocess.Popen(
        [sys.executable, "-m", "cli", "node", "run", "--config", str(layout.config_file(name))],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _answers(layout, name):
            assert process.poll() is None, process.communicate()[0]
            assert time.monotonic() < deadline, f"{name} did not start in {START_TIMEOUT_S} s"
            time.sleep(0.05)
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGKILL)
        process.communicate(timeout=30)


def _answers(layout: ClusterDir, name: str) -> bool:
    result = CliRunner().invoke(main, ["cluster", "status", "--dir", str(layout.root), "--json"])
    return bool(next(r for r in json.loads(result.stdout) if r["name"] == name)["alive"])


@pytest.mark.slow
def test_cluster_down_stops_a_node_run_in_the_foreground(tmp_path: Path) -> None:
    layout = init_cluster(tmp_path / "cluster", nodes=4)
    root = str(layout.root)
    with foreground_node(layout, "node0") as process:
        status = millchain("cluster", "status", "--dir", root, "--json")
        rows = {row["name"]: row for row in json.loads(status.stdout)}
        assert (rows["node0"]["pid"], rows["node0"]["alive"]) == (process.pid, True)
        table = millchain("cluster", "status", "--dir", root)
        assert _cells(table.stdout, "node0")[2:4] == [str(process.pid), "yes"], table.stdout

        again = millchain("node", "run", "--config", str(layout.config_file("node0")))
        assert again.returncode == 1, again.stdout + again.stderr
        assert f"node0 is already running (pid {process.pid}" in again.stderr
        assert "serving" not in again.stdout
        assert read_pid(layout.pid_file("node0")) == process.pid

        down = millchain("cluster", "down", "--dir", root)
        assert down.returncode == 0, down.stderr
        assert "stopped 1 node(s): node0" in down.stdout
        assert process.wait(timeout=30) == 0
        assert not layout.pid_file("node0").exists()


@pytest.mark.slow
def test_a_node_run_in_the_foreground_removes_its_pid_file_when_it_stops(tmp_path: Path) -> None:
    layout = init_cluster(tmp_path / "cluster", nodes=4)
    with foreground_node(layout, "node1") as process:
        assert read_pid(layout.pid_file("node1")) == process.pid
        process.send_signal(signal.SIGINT)  # Ctrl-C
        assert process.wait(timeout=30) == 0
        assert not layout.pid_file("node1").exists()


def _hold(config_file: Path, name: str) -> None:
    with holding_pid_file(config_file, name):
        pass


def test_a_second_holder_of_the_pid_file_is_refused_and_the_file_goes_with_the_first(
    tmp_path: Path,
) -> None:
    layout = init_cluster(tmp_path / "cluster", nodes=4)
    config = layout.config_file("node2")
    with holding_pid_file(config, "node2") as pid_file:
        assert read_pid(pid_file) == os.getpid()
        # Locked: two starts at once cannot both take it, even from one process.
        with pytest.raises(LayoutError, match=f"node2 is already running \\(pid {os.getpid()}"):
            _hold(config, "node2")
        assert read_pid(pid_file) == os.getpid()
    assert not pid_file.exists()


def test_a_node_started_before_pid_files_were_locked_is_recognised(tmp_path: Path) -> None:
    layout = init_cluster(tmp_path / "cluster", nodes=4)
    with stand_ins(layout) as pids:
        with pytest.raises(LayoutError, match=f"node3 is already running \\(pid {pids['node3']}"):
            _hold(layout.config_file("node3"), "node3")
        assert read_pid(layout.pid_file("node3")) == pids["node3"]


def test_a_stale_pid_file_is_taken_over(tmp_path: Path) -> None:
    layout = init_cluster(tmp_path / "cluster", nodes=4)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait(timeout=30)
    layout.pid_file("node0").write_text(f"{gone.pid}\n", encoding="utf-8")
    with holding_pid_file(layout.config_file("node0"), "node0") as pid_file:
        assert read_pid(pid_file) == os.getpid()
    assert not pid_file.exists()


def _cells(table: str, name: str) -> list[str]:
    """The cells of the status table's row for node `name` (node, url, pid, alive, ...)."""
    row = next(line for line in table.splitlines() if line.startswith(f"│ {name} "))
    return [cell.strip() for cell in row.strip("│").split("│")]


class Answering(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"name": "node1", "height": 3, "view": 0}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_status_names_a_node_that_answers_without_a_process_in_the_directory(
    tmp_path: Path,
) -> None:
    layout = init_cluster(tmp_path / "cluster", nodes=4)
    config = layout.config("node1")
    server = ThreadingHTTPServer((config.host, config.port), Answering)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        result = CliRunner().invoke(main, ["cluster", "status", "--dir", str(layout.root)])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
    assert result.exit_code == 0, result.output
    assert "┃ pid " in result.output
    assert _cells(result.output, "node1")[2:4] == ["-", "yes"], result.output
    assert "node1: answering, but no pid file in" in result.output
    assert "so `cluster down` cannot stop it" in result.output
