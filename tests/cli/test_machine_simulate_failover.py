"""`millchain machine simulate` on a real cluster whose first node is down: it talks to the first
node that answers, as the client commands do, rather than failing on node0."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from cli.layout import ClusterDir
from node.client import NodeClient
from tests.clusters import millchain, running_cluster, url

pytestmark = [pytest.mark.slow, pytest.mark.integration]

# Seconds the nodes that stay up may take to commit a transaction another node already has.
COMMIT_TIMEOUT_S = 60


async def _committed_on(layout: ClusterDir, names: list[str], tx_hash: str) -> None:
    """Until each named node has committed `tx_hash` (ClientError past COMMIT_TIMEOUT_S)."""

    async def one(name: str) -> None:
        async with NodeClient(url(layout, name)) as client:
            await client.wait_committed(tx_hash, COMMIT_TIMEOUT_S)

    await asyncio.gather(*(one(name) for name in names))


def test_machine_simulate_reports_through_another_node_when_node0_is_down(
    tmp_path: Path,
) -> None:
    root = tmp_path / "cluster"
    with running_cluster(root) as layout:
        directory = ["--dir", str(root)]
        registered = millchain(
            "machine", "register", "m1", "--type", "press-cell", "--capability", "bend",
            "--wait", "--json", *directory,
        )  # fmt: skip
        assert registered.returncode == 0, registered.stdout + registered.stderr
        # --wait returns once any node committed it, node0 (the primary) first as a rule: the
        # nodes that stay up must have it too, or the simulation asks one that has not got there
        # yet and is told there is no machine m1, which is not what this test is about.
        register_hash = json.loads(registered.stdout)["tx"]["hash"]
        asyncio.run(_committed_on(layout, ["node1", "node2", "node3"], register_hash))
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
