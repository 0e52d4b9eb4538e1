"""The factory act of `millchain demo`: a custom order from the catalog to the customer, with
the machine it was queued on failing midway and its work moving to another machine."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from cli.client_cmd import submit
from cli.common import console
from cli.common import table as print_table
from cli.layout import ClusterDir
from node.client import NodeClient

CATALOG = Path(__file__).resolve().parent.parent / "configs" / "catalog.json"


async def _call(
    layout: ClusterDir, identity: str, contract: str, method: str, **args: Any
) -> dict[str, Any]:
    result = await submit(
        layout,
        identity=identity,
        contract=contract,
        method=method,
        args=args,
        wait=True,
        node_name=None,
    )
    receipt: dict[str, Any] = result["receipt"]
    if not receipt["ok"]:
        raise click.ClickException(f"{contract}.{method} failed: {receipt['error']}")
    return receipt


async def factory_act(layout: ClusterDir) -> None:
    console.print("\n[bold]factory[/bold]: a custom order, a machine failure, a delivery")
    catalog = json.loads(CATALOG.read_text(encoding="utf-8"))
    bracket = next(p for p in catalog["products"] if p["product"] == "bracket")
    await _call(layout, "admin", "catalog", "publish", **bracket)
    for item, qty in (("steel-sheet", 40), ("bolt-m8", 200)):
        await _call(layout, "supplier", "inventory", "receive", item=item, location="main", qty=qty)
    for machine in ("m1", "m2"):
        await _call(
            layout,
            "admin",
            "machines",
            "register",
            machine=machine,
            type="press-cell",
            capabilities=["laser-cut", "bend"],
        )
    orders = []
    for variant, quantity in (("small", 2), ("large", 1), ("small", 5)):
        receipt = await _call(
            layout,
            "customer",
            "orders",
            "place",
            product="bracket",
            variant=variant,
            options={"holes": "slotted"},
            quantity=quantity,
        )
        order = receipt["result"]["id"]
        orders.append(order)
        await _call(layout, "planner", "orders", "accept", order=order)
        await _call(layout, "planner", "orders", "schedule", order=order, machine="m1")
    console.print(f"placed, accepted (materials reserved) and queued on m1: {', '.join(orders)}")
    await _call(layout, "machine", "machines", "down", machine="m1", reason="spindle jam")
    console.print("m1 reports itself down: its queue moves to m2 in the same transaction")
    first = orders[0]
    for identity, method, extra in (
        ("machine", "start", {}),
        ("machine", "complete", {}),
        ("auditor", "qc_pass", {"note": "within tolerance"}),
        ("planner", "ship", {"note": "truck 7"}),
        ("customer", "deliver", {}),
    ):
        await _call(layout, identity, "orders", method, order=first, **extra)
    async with NodeClient(layout.config(layout.node_names()[0]).url) as client:
        board = await client.query("orders", [])
        history = await client.request("GET", f"/events/order:{first}")
    _show_board(board)
    print_table(
        f"history of {first}, every step a transaction in a block",
        ["height", "tx", "event", "data"],
        [
            [e["height"], e["tx_hash"][:12], f"{e['contract']}.{e['kind']}", _brief(e["data"])]
            for e in history["events"]
        ],
    )


def _show_board(board: Any) -> None:
    orders = board.get("orders", board) if isinstance(board, dict) else board
    rows = []
    items = orders.values() if isinstance(orders, dict) else orders
    for order in items:
        if not isinstance(order, dict):
            continue
        rows.append(
            [
                order.get("id"),
                order.get("product"),
                order.get("variant"),
                order.get("quantity"),
                order.get("state"),
                order.get("machine") or "-",
            ]
        )
    print_table("orders board", ["order", "product", "variant", "qty", "state", "machine"], rows)


def _brief(data: Any) -> str:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return text if len(text) <= 70 else text[:67] + "..."
