"""`millchain cluster faults --heal` heals every node of the cluster, also one that is down when
it runs. A node keeps its rules in its data directory (faults.json) and comes back with them
(node/faults.py), so telling the user "not running; a node starts with no fault rules" and
exiting 0 left a node that was cut off by a partition cut off again once restarted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.clusters import millchain, running_cluster

pytestmark = [pytest.mark.slow]


def test_heal_while_a_node_is_down_leaves_it_no_rules_to_come_back_with(tmp_path: Path) -> None:
    root = tmp_path / "cluster"
    with running_cluster(root):
        cut = millchain(
            "cluster", "faults", "--dir", str(root), "--partition", "node3/node0,node1,node2"
        )
        assert cut.returncode == 0, cut.stdout + cut.stderr
        kill = millchain("cluster", "kill", "node3", "--dir", str(root))
        assert kill.returncode == 0, kill.stdout + kill.stderr

        heal = millchain("cluster", "faults", "--dir", str(root), "--heal")
        assert heal.returncode == 0, heal.stdout + heal.stderr

        restart = millchain("cluster", "restart", "node3", "--dir", str(root))
        assert restart.returncode == 0, restart.stdout + restart.stderr
        assert "kept from before are in force" not in restart.stderr, restart.stderr

        shown = millchain("cluster", "faults", "--dir", str(root), "--node", "node3", "--json")
        assert shown.returncode == 0, shown.stdout + shown.stderr
        links = json.loads(shown.stdout)["node3"]["peers"]
        assert [peer for peer, link in links.items() if link["blocked"]] == [], links
