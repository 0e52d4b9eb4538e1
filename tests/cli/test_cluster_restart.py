"""`millchain cluster up` and `cluster restart` wait at least a second, and `restart` leaves a
node that started but does not answer yet running (and says so) rather than stopping it again.

A "slow node" here is a process that runs with the node's --config but never answers, standing
in for a node still opening its store: no real node is slow on cue."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from click.testing import CliRunner

from cli.layout import ClusterDir
from cli.main import main
from cli.process import is_alive, node_pid

SILENT_S = 60  # how long a silent stand-in lives at most, should a test fail to end it


def start_silent(layout: ClusterDir, name: str, **_: Any) -> int:
    """Like cli.process.start_node, but the process never answers: it only sleeps."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import time; time.sleep({SILENT_S})",
            "--config",
            str(layout.config_file(name)),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    layout.pid_file(name).write_text(f"{process.pid}\n", encoding="utf-8")
    return process.pid


@pytest.mark.parametrize("command", ["up", "restart"])
@pytest.mark.parametrize("timeout", ["0.3", "0", "-1"])
def test_a_timeout_below_a_second_is_refused_and_stops_nothing(
    cluster: ClusterDir, monkeypatch: pytest.MonkeyPatch, command: str, timeout: str
) -> None:
    monkeypatch.setattr("cli.cluster_cmd.start_node", start_silent)  # should one start
    pid = start_silent(cluster, "node1")
    args = ["cluster", command, *(["node1"] if command == "restart" else [])]
    result = CliRunner().invoke(main, [*args, "--dir", str(cluster.root), "--timeout", timeout])
    assert result.exit_code == 2, result.output
    assert "'--timeout'" in result.output
    assert node_pid(cluster, "node1") == pid


@pytest.mark.parametrize("command", ["up", "restart"])
def test_help_says_what_timeout_waits_for(command: str) -> None:
    result = CliRunner().invoke(main, ["cluster", command, "--help"])
    assert result.exit_code == 0
    assert "Seconds to wait for" in result.output and "x>=1" in result.output


def test_restart_leaves_a_node_that_is_slow_to_answer_running(
    cluster: ClusterDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("cli.cluster_cmd.start_node", start_silent)
    result = CliRunner().invoke(
        main, ["cluster", "restart", "node1", "--dir", str(cluster.root), "--timeout", "1"]
    )
    pid = node_pid(cluster, "node1")
    assert pid is not None and is_alive(pid), "restart stopped the node it started"
    assert result.exit_code == 1, result.output
    assert f"node1 started (pid {pid}) but is not answering after 1 s" in result.output
    assert "it is left running" in result.output


def test_up_stops_nodes_that_do_not_answer_in_time(
    cluster: ClusterDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As documented: up stops what it started when the wait fails; it names who was silent.
    monkeypatch.setattr("cli.cluster_cmd.start_node", start_silent)
    result = CliRunner().invoke(
        main, ["cluster", "up", "--dir", str(cluster.root), "--timeout", "1"]
    )
    assert result.exit_code == 1, result.output
    assert "node0, node1, node2, node3 not answering after 1 s" in result.output
    assert [node_pid(cluster, name) for name in cluster.node_names()] == [None] * 4
