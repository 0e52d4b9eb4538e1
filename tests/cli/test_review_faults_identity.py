"""`millchain cluster faults --dir A` changes only cluster A's nodes. Ports are the ones the OS
reported free when A was initialised, so while A is down another cluster's node may hold one of
them: the command must see that the node answering there is not A's, and leave it alone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cli.layout import ClusterDir, init_cluster
from tests.clusters import millchain, running_cluster

pytestmark = [pytest.mark.slow]


def _faults(root: Path, *args: str) -> tuple[int, str]:
    result = millchain("cluster", "faults", "--dir", str(root), *args)
    return result.returncode, result.stdout + result.stderr


def _link(root: Path, node: str, peer: str) -> dict[str, Any]:
    result = millchain("cluster", "faults", "--dir", str(root), "--node", node, "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    link: dict[str, Any] = json.loads(result.stdout)[node]["peers"][peer]
    return link


def _take_port_of(down: ClusterDir, name: str, running: ClusterDir) -> None:
    """Give `down`'s node the port `running`'s node of that name holds, as the OS may hand a
    port that was free when `down` was initialised to a node started later."""
    path = down.config_file(name)
    document = json.loads(path.read_text(encoding="utf-8"))
    document["port"] = running.config(name).port
    path.write_text(json.dumps(document), encoding="utf-8")


def test_faults_leave_a_node_of_another_cluster_on_a_reused_port_alone(tmp_path: Path) -> None:
    down = init_cluster(tmp_path / "a", nodes=4)  # never started
    with running_cluster(tmp_path / "b") as other:
        _take_port_of(down, "node0", other)
        assert _faults(other.root, "--node", "node0", "--peer", "node1", "--loss", "0.3")[0] == 0

        code, out = _faults(down.root, "--node", "node0", "--peer", "node1", "--delay-ms", "500")
        assert code == 1, out
        assert "another" in out, out
        code, out = _faults(down.root, "--heal")
        assert "node0 not running" in out, out

        link = _link(other.root, "node0", "node1")
        assert (link["delay_ms"], link["loss"]) == (0, 0.3), link
