"""Pause points on a real cluster, armed as the README says (POST /admin/pause): `after-prepare`
is a backup's phase like the first two are the primary's. The primary of a view sends no
prepare (its pre-prepare stands for it), so the point armed there stays armed while blocks
commit, and a test waiting for it to report being paused waits for ever."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.clusters import admin, millchain, poll, running_cluster

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def test_after_prepare_fires_on_a_backup_and_never_on_the_primary(tmp_path: Path) -> None:
    root = tmp_path / "cluster"
    with running_cluster(root) as layout:
        point = {"phase": "after-prepare"}
        assert asyncio.run(admin(layout, "node0", "/admin/pause", point))["armed"] is not None
        assert asyncio.run(admin(layout, "node1", "/admin/pause", point))["armed"] is not None
        sent = millchain(
            "tx", "inventory", "receive", "item=steel", "location=main", "qty=1",
            "--as", "supplier", "--dir", str(root), "--wait",
        )  # fmt: skip
        assert sent.returncode == 0, sent.stdout + sent.stderr

        async def paused(name: str) -> dict[str, Any] | None:
            state = await admin(layout, name, "/admin/pause")
            return state if state["paused_at"] is not None else None

        backup = asyncio.run(poll(lambda: paused("node1"), timeout_s=30, what="node1 paused"))
        assert backup["paused_at"]["phase"] == "after-prepare"
        primary = asyncio.run(admin(layout, "node0", "/admin/pause"))
        assert primary["paused_at"] is None and primary["armed"] is not None, primary
