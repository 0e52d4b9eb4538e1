"""A non-voting observer follows the chain by fetching certified blocks and serves reads."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from tests.clusters import converged, millchain, running_cluster, statuses

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def test_observer_follows_the_chain_serves_reads_and_forwards_transactions(
    tmp_path: Path,
) -> None:
    root = tmp_path / "cluster"
    with running_cluster(root, observers=1) as layout:
        names = layout.node_names()
        assert names[-1] == "observer0"
        # Submitted through the observer: it forwards to the validators.
        result = millchain(
            "tx",
            "inventory",
            "receive",
            "item=steel",
            "location=main",
            "qty=7",
            "--dir",
            str(root),
            "--as",
            "supplier",
            "--wait",
            "--node",
            "observer0",
        )
        assert result.returncode == 0, result.stdout + result.stderr
        for qty in (1, 2):
            result = millchain(
                "tx",
                "inventory",
                "receive",
                "item=steel",
                "location=main",
                f"qty={qty}",
                "--dir",
                str(root),
                "--as",
                "supplier",
                "--wait",
            )
            assert result.returncode == 0, result.stdout + result.stderr
        rows = asyncio.run(converged(layout, names, height_min=3, timeout_s=30))
        observer = next(r for r in rows if r["name"] == "observer0")
        assert observer["role"] == "observer"
        assert observer["view"] is None
        assert observer["counters"]["blocks_transferred"] >= 3
        read = millchain(
            "query",
            "inventory",
            "steel",
            "main",
            "--dir",
            str(root),
            "--json",
            "--node",
            "observer0",
        )
        assert json.loads(read.stdout)["on_hand"] == 10
        validators = asyncio.run(statuses(layout, names[:-1]))
        assert all(r["role"] == "validator" for r in validators)
