"""`millchain cluster faults` on a running cluster: a change some target cannot take changes no
node, and a rule no link can carry is refused; a setting changes only itself on a link (0
included); showing and healing cover observers and the nodes that answer, naming the others."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cli.process import node_pid
from tests.clusters import millchain, running_cluster

pytestmark = [pytest.mark.slow]


def _faults(root: Path, *args: str) -> tuple[int, str]:
    result = millchain("cluster", "faults", "--dir", str(root), *args)
    return result.returncode, result.stdout + result.stderr


def test_a_change_one_target_cannot_take_changes_no_node(tmp_path: Path) -> None:
    root = tmp_path / "cluster"
    with running_cluster(root):
        assert _faults(root, "--node", "node0", "--peer", "node1", "--delay-ms", "100")[0] == 0
        killed = millchain("cluster", "kill", "node3", "--dir", str(root))
        assert killed.returncode == 0, killed.stderr

        code, out = _faults(root, "--partition", "node0/node1,node2,node3")
        assert code == 1 and "node3 did not answer" in out
        code, out = _faults(
            root, "--node", "node2", "--node", "node3", "--block", "--peer", "node1"
        )
        assert code == 1 and "node3 did not answer" in out

        code, out = _faults(root, "--node", "node0", "--node", "node1", "--node", "node2", "--json")
        assert code == 0, out
        rules = json.loads(out)
        assert rules["node0"]["peers"]["node1"]["delay_ms"] == 100  # kept
        assert not rules["node2"]["peers"]["node1"]["blocked"]
        assert not any(
            link["blocked"] for state in rules.values() for link in state["peers"].values()
        )


def test_a_rule_for_no_link_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "cluster"
    with running_cluster(root):
        code, out = _faults(root, "--node", "node0", "--peer", "node0", "--delay-ms", "5")
        assert code == 1 and "node0 has no link to itself" in out
        code, out = _faults(root, "--peer", "node9", "--delay-ms", "5")
        assert code == 1 and "--peer 'node9' is no validator" in out


def _rules(root: Path, *args: str) -> dict[str, Any]:
    result = millchain("cluster", "faults", "--dir", str(root), *args, "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    rules: dict[str, Any] = json.loads(result.stdout)
    return rules


def test_a_setting_keeps_the_links_others_and_an_explicit_zero_sets_zero(tmp_path: Path) -> None:
    root = tmp_path / "cluster"
    link = ("--node", "node0", "--peer", "node1")
    with running_cluster(root):
        assert _faults(root, *link, "--delay-ms", "50", "--jitter-ms", "5")[0] == 0
        rule = _rules(root, *link, "--loss", "0.2")["node0"]["peers"]["node1"]
        assert (rule["delay_ms"], rule["jitter_ms"], rule["loss"]) == (50, 5, 0.2)

        rule = _rules(root, *link, "--delay-ms", "0")["node0"]["peers"]["node1"]
        assert (rule["delay_ms"], rule["jitter_ms"], rule["loss"]) == (0, 5, 0.2)
        rule = _rules(root, *link, "--loss", "0", "--block")["node0"]["peers"]["node1"]
        assert (rule["loss"], rule["blocked"], rule["jitter_ms"]) == (0, True, 5)
        rule = _rules(root, *link, "--unblock")["node0"]["peers"]["node1"]
        assert (rule["blocked"], rule["jitter_ms"]) == (False, 5)

        table = subprocess.run(
            [sys.executable, "-m", "cli", "cluster", "faults", "--dir", str(root)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={**os.environ, "COLUMNS": "200"},
        )
        assert table.returncode == 0, table.stderr
        header = next(line for line in table.stdout.splitlines() if "delay ms" in line)
        assert header.split("┃")[-3:-1] == [" lost batches ", " blocked batches "]


def test_show_and_heal_cover_observers_and_work_around_nodes_that_do_not_answer(
    tmp_path: Path,
) -> None:
    root = tmp_path / "cluster"
    with running_cluster(root, observers=1) as layout:
        assert _faults(root, "--node", "observer0", "--delay-ms", "5")[0] == 0
        assert _faults(root, "--node", "node0", "--node", "node2", "--loss", "0.5")[0] == 0
        shown = _rules(root)
        assert list(shown) == ["node0", "node1", "node2", "node3", "observer0"]
        assert shown["observer0"]["peers"]["node1"]["delay_ms"] == 5

        killed = millchain("cluster", "kill", "node3", "--dir", str(root))
        assert killed.returncode == 0, killed.stderr
        code, out = _faults(root)
        assert code == 0, out
        assert "node3 not running; a node starts with no fault rules" in out
        assert _rules(root)["node3"] is None

        stopped = node_pid(layout, "node2")
        assert stopped is not None
        os.kill(stopped, signal.SIGSTOP)  # running, but not answering
        try:
            code, out = _faults(root, "--heal")
        finally:
            os.kill(stopped, signal.SIGCONT)
        assert code == 1, out
        assert "node2 did not answer" in out and "not healed: node2" in out
        rules = _rules(root, "--node", "node0", "--node", "node1", "--node", "observer0")
        assert not any(
            link["delay_ms"] or link["loss"]
            for state in rules.values()
            for link in state["peers"].values()
        )
        assert _rules(root, "--node", "node2")["node2"]["peers"]["node0"]["loss"] == 0.5
        code, out = _faults(root, "--heal")
        assert code == 0, out
        assert _rules(root, "--node", "node2")["node2"]["peers"]["node0"]["loss"] == 0
