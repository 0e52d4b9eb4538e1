"""`millchain cluster faults` on a running cluster: a change some target cannot take changes no
node, and a rule no link can carry is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

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
