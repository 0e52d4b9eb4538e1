"""A cluster made with `millchain init --fsync`: every node forces its commits to disk, says so
in /status, and commits as any other cluster does."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from cli.layout import ClusterDir
from tests.clusters import kill_all, millchain, statuses

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def test_an_fsync_cluster_commits_and_every_node_says_it_fsyncs(tmp_path: Path) -> None:
    root = tmp_path / "cluster"
    made = millchain("init", "--dir", str(root), "--fsync", "--observers", "1")
    assert made.returncode == 0, made.stdout + made.stderr
    layout = ClusterDir(root)
    try:
        up = millchain("cluster", "up", "--dir", str(root), "--timeout", "60")
        assert up.returncode == 0, up.stdout + up.stderr
        sent = millchain(
            "tx", "inventory", "receive", "item=steel", "location=main", "qty=5",
            "--dir", str(root), "--as", "supplier", "--wait",
        )  # fmt: skip
        assert sent.returncode == 0, sent.stdout + sent.stderr
        rows = asyncio.run(statuses(layout, layout.node_names()))
        assert [row["fsync"] for row in rows] == [True] * 5
    finally:
        millchain("cluster", "down", "--dir", str(root), timeout_s=60)
        kill_all(layout)
