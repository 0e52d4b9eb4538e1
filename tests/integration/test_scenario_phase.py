"""The scenario's phases on a live cluster: a call's named business failure (a schedule finding
no machine with room) leaves the run going with None for its result; any other failure stops
the run with the call named."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from cli.layout import ClusterDir
from cli.scenario.chain import Call, PlantChain, ScenarioError
from node.client import NodeClient
from tests.clusters import running_cluster, url

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def test_a_named_business_failure_passes_and_any_other_stops_the_run(tmp_path: Path) -> None:
    with running_cluster(tmp_path / "cluster") as layout:
        asyncio.run(_phases(layout))


async def _phases(layout: ClusterDir) -> None:
    async with NodeClient(url(layout, layout.node_names()[0]), timeout_s=30) as client:
        chain = PlantChain(layout, client)
        missing = Call("admin", "identity", "suspend", {"name": "nobody"})
        tolerated = Call(
            "admin", "identity", "suspend", {"name": "nobody"}, may_fail_with="no identity named"
        )
        works = Call("admin", "identity", "suspend", {"name": "auditor"})
        results = await chain.phase([tolerated, works])
        assert results[0] is None
        assert results[1]["status"] == "suspended"

        with pytest.raises(ScenarioError, match=r"identity\.suspend by admin failed: no identity"):
            await chain.phase([missing])
        other_prefix = Call(
            "admin", "identity", "suspend", {"name": "nobody"}, may_fail_with="no machine"
        )
        with pytest.raises(ScenarioError, match=r"identity\.suspend by admin failed"):
            await chain.phase([other_prefix])
        assert chain.transactions == 4
