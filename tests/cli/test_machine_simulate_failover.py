"""`millchain machine simulate` on a real cluster whose first node is down: it talks to the first
node that answers, as the client commands do, rather than failing on node0."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.clusters import millchain, running_cluster

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def test_machine_simulate_reports_through_another_node_when_node0_is_down(
    tmp_path: Path,
) -> None:
    root = tmp_path / "cluster"
    with running_cluster(root):
        directory = ["--dir", str(root)]
        registered = millchain(
            "machine", "register", "m1", "--type", "press-cell", "--capability", "bend",
            "--wait", *directory,
        )  # fmt: skip
        assert registered.returncode == 0, registered.stdout + registered.stderr
        killed = millchain("cluster", "kill", "node0", *directory)
        assert killed.returncode == 0, killed.stderr

        simulated = millchain(
            "machine", "simulate", "m1", "--operations", "20", "--pace-ms", "0", *directory
        )
        assert simulated.returncode == 0, simulated.stdout + simulated.stderr
        assert "m1: " in simulated.stdout and "readings reported" in simulated.stdout

        shown = millchain("query", "machines", "m1", "--json", *directory)
        assert shown.returncode == 0, shown.stderr
        assert json.loads(shown.stdout)["last_seq"] >= 0
