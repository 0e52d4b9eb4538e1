"""A 4-node cluster of real processes, driven through the CLI and the client API."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from cli.layout import ClusterDir
from ledger.genesis import Params
from ledger.tx import Transaction
from node.client import ClientError, NodeClient
from tests.clusters import converged, millchain, running_cluster, statuses, url

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def _receipts(layout: ClusterDir, sender: str, start_nonce: int, count: int) -> list[Transaction]:
    keys = layout.identity_keys(sender)
    chain_id = layout.genesis().chain_id
    return [
        Transaction.create(
            keys,
            chain_id=chain_id,
            nonce=start_nonce + i,
            contract="inventory",
            method="receive",
            args={"item": f"part-{i % 7}", "location": "main", "qty": 1 + i % 5},
        )
        for i in range(count)
    ]


async def _submit_all(client: NodeClient, txs: list[Transaction]) -> None:
    for tx in txs:
        await client.submit(tx.to_wire())


async def _wait_all(client: NodeClient, txs: list[Transaction]) -> None:
    for tx in txs:
        result = await client.wait_committed(tx.hash.hex(), 60)
        assert result["receipt"]["ok"], result


def test_cli_cluster_commits_200_txs_identically_and_survives_a_killed_backup(
    tmp_path: Path,
) -> None:
    root = tmp_path / "cluster"
    with running_cluster(root, params=Params(block_interval_ms=10)) as layout:
        names = layout.node_names()

        # The client command, as a newcomer would use it.
        result = millchain(
            "tx",
            "inventory",
            "receive",
            "item=steel",
            "location=main",
            "qty=100",
            "--dir",
            str(root),
            "--as",
            "supplier",
            "--wait",
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "committed" in result.stdout
        result = millchain("query", "inventory", "steel", "main", "--dir", str(root), "--json")
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["on_hand"] == 100

        shown = millchain("block", "1", "--dir", str(root), "--json")
        assert shown.returncode == 0, shown.stderr
        checked = json.loads(shown.stdout)["certificate_check"]
        assert checked["verified"] and len(checked["signers"]) >= 3

        # Replaying a committed transaction is refused with a reason, and changes nothing.
        async def replay() -> str:
            async with NodeClient(url(layout, "node3")) as client:
                block = await client.block(1)
                tx_hash = block["txs"][0]["hash"]
                stored = await client.tx(tx_hash)
                assert stored["status"] == "committed"
                keys = layout.identity_keys("supplier")
                again = Transaction.create(
                    keys,
                    chain_id=layout.genesis().chain_id,
                    nonce=0,
                    contract="inventory",
                    method="receive",
                    args={"item": "steel", "location": "main", "qty": 100},
                )
                assert again.hash.hex() == tx_hash
                try:
                    await client.submit(again.to_wire())
                except ClientError as exc:
                    return str(exc)
                raise AssertionError("a replayed transaction was accepted")

        assert asyncio.run(replay()).startswith("409")

        # 200 transactions from two senders over the API, spread over the nodes.
        supplier_txs = _receipts(layout, "supplier", 1, 100)
        admin_txs = _receipts(layout, "admin", 0, 100)

        async def load() -> None:
            async with (
                NodeClient(url(layout, "node1")) as first,
                NodeClient(url(layout, "node2")) as second,
            ):
                await asyncio.gather(
                    _submit_all(first, supplier_txs), _submit_all(second, admin_txs)
                )
                await _wait_all(first, supplier_txs + admin_txs)

        asyncio.run(load())
        asyncio.run(converged(layout, names, height_min=2, timeout_s=30))
        status = millchain("cluster", "status", "--dir", str(root), "--json")
        table = json.loads(status.stdout)
        assert {r["name"] for r in table if r["alive"]} == set(names)
        assert len({(r["height"], r["head"], r["state_digest"]) for r in table}) == 1

        # SIGKILL a backup in the middle of more load: the other three keep committing (f = 1).
        backup = next(r["name"] for r in table if r["name"] != r["primary"])
        survivors = [n for n in names if n != backup]
        more = _receipts(layout, "supplier", 101, 150)

        async def load_while_killing() -> int:
            async with NodeClient(url(layout, survivors[0])) as client:
                height_before = (await client.status())["height"]
                feeder = asyncio.create_task(_submit_all(client, more))
                await client.wait_committed(more[20].hash.hex(), 30)
                killed = millchain("cluster", "kill", backup, "--dir", str(root))
                assert killed.returncode == 0, killed.stderr
                await feeder
                await _wait_all(client, more)
                return int(height_before)

        height_before = asyncio.run(load_while_killing())
        rows = asyncio.run(converged(layout, survivors, height_min=height_before + 1, timeout_s=30))
        assert rows[0]["height"] > height_before
        down = asyncio.run(statuses(layout, survivors))
        assert all(r["halted"] is None for r in down)
        status = json.loads(millchain("cluster", "status", "--dir", str(root), "--json").stdout)
        assert [r["alive"] for r in status if r["name"] == backup] == [False]
