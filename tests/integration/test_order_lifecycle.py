"""An order's life on a 4-node cluster, driven only through the CLI: placement to delivery, with
the machine it is queued on going down midway and its queue moving to another machine."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cli.main import main
from ledger.genesis import Params
from tests.clusters import converged, millchain, running_cluster

pytestmark = [pytest.mark.slow, pytest.mark.integration]

CATALOG = Path(__file__).resolve().parents[2] / "configs" / "catalog.json"
# Until cli/main.py registers cli.factory_cmd.factory_commands, run them through a shim.
_SHIM = (
    "from cli.main import main\n"
    "from cli.factory_cmd import factory_commands\n"
    "for command in factory_commands:\n"
    "    main.add_command(command)\n"
    "main(prog_name='millchain')\n"
)


def factory_cli(*args: str) -> subprocess.CompletedProcess[str]:
    if "order" in main.commands:
        return millchain(*args)
    return subprocess.run(
        [sys.executable, "-c", _SHIM, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


class Cli:
    def __init__(self, root: Path) -> None:
        self.root = str(root)

    def ok(self, *args: str) -> str:
        result = factory_cli(*args, "--dir", self.root)
        assert result.returncode == 0, f"{args}: {result.stdout}{result.stderr}"
        return result.stdout

    def submit(self, *args: str) -> dict[str, Any]:
        """Submit and wait; the committed receipt, which must be ok."""
        receipt: dict[str, Any] = json.loads(self.ok(*args, "--wait", "--json"))["receipt"]
        assert receipt["ok"], receipt["error"]
        return receipt

    def read(self, *args: str) -> Any:
        return json.loads(self.ok(*args, "--json"))


def test_an_order_goes_from_placement_to_delivery_while_its_machine_fails(tmp_path: Path) -> None:
    root = tmp_path / "cluster"
    with running_cluster(root, params=Params(block_interval_ms=10)) as layout:
        cli = Cli(root)
        published = json.loads(cli.ok("catalog", "publish", str(CATALOG), "--wait", "--json"))
        assert [r["receipt"]["result"]["product"] for r in published] == ["bracket", "gearbox"]
        cli.submit("inventory", "receive", "steel-sheet", "10")
        cli.submit("inventory", "receive", "bolt-m8", "40", "--reference", "PO-1001")
        cli.submit("inventory", "reorder", "steel-sheet", "6")
        for machine in ("m1", "m2"):
            cli.submit(
                "machine", "register", machine, "--type", "press-cell",
                "--capability", "laser-cut", "--capability", "bend",
            )  # fmt: skip

        placed = [
            cli.submit("order", "place", "bracket", "--variant", "small", "--qty", "2")
            for _ in range(2)
        ]
        orders = [receipt["result"]["id"] for receipt in placed]
        assert orders == ["ord-1", "ord-2"]
        for order in orders:
            cli.submit("order", "accept", order)
            cli.submit("order", "schedule", order, "--machine", "m1")

        # m1 fails before production starts: its queue moves to m2, recorded on each order.
        down = cli.submit("machine", "down", "m1", "--reason", "spindle jam")
        assert down["result"]["moves"] == [{"order": o, "to": "m2"} for o in orders]
        machines = cli.read("machine", "status")
        assert (machines["m1"]["status"], machines["m1"]["queue"]) == ("down", [])
        assert machines["m2"]["queue"] == orders

        # A denial names the role needed (the node refuses it at admission, before any block).
        denied = factory_cli(
            "order", "ship", "ord-1", "--as", "customer", "--wait", "--dir", str(root)
        )
        assert denied.returncode == 1
        assert "orders.ship needs role planner or admin; sender customer has customer" in (
            denied.stdout + denied.stderr
        )

        cli.submit("order", "start", "ord-1")
        cli.submit("order", "complete", "ord-1")
        cli.submit("order", "qc-fail", "ord-1", "--note", "burr on edge")
        cli.submit("order", "complete", "ord-1")
        cli.submit("order", "qc-pass", "ord-1")
        cli.submit("order", "ship", "ord-1", "--note", "DHL 1234")
        cli.submit("order", "deliver", "ord-1")
        cli.submit("order", "cancel", "ord-2", "--reason", "no longer needed")

        final = cli.read("order", "status", "ord-1")
        assert (final["state"], final["qc_failures"]) == ("delivered", 1)
        assert [o["id"] for o in cli.read("order", "list", "--state", "cancelled")] == ["ord-2"]
        stock = cli.read("inventory", "show", "steel-sheet")["steel-sheet"]["main"]
        assert (stock["on_hand"], stock["reserved"], stock["low"]) == (8, 0, False)

        history = cli.read("history", "order:ord-1")
        assert [e["kind"] for e in history] == [
            "place", "accept", "schedule", "reassign", "start", "complete",
            "qc_fail", "complete", "qc_pass", "ship", "deliver",
        ]  # fmt: skip
        reassign = history[3]
        assert reassign["data"]["from_machine"] == "m1"
        assert reassign["data"]["to_machine"] == "m2"
        assert all(e["height"] >= 1 and len(e["tx_hash"]) == 64 for e in history)
        heights = [e["height"] for e in history]
        assert heights == sorted(heights)
        assert "history of order:ord-1" in cli.ok("history", "order:ord-1")
        m1_kinds = [e["kind"] for e in cli.read("history", "machine:m1")]
        assert m1_kinds == ["register", "status", "requeue"]
        item_kinds = [e["kind"] for e in cli.read("history", "item:steel-sheet@main")]
        assert item_kinds[:2] == ["receive", "reorder_point"]
        assert "consume" in item_kinds

        height = max(heights)
        asyncio.run(converged(layout, layout.node_names(), height_min=height, timeout_s=30))
