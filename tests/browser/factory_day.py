"""A short factory day on a running cluster, for the explorer to show: a catalog, stock with a
low item, three machines with sensor readings, orders in several states, oracle predictions (one
machine's rising past the model's threshold, so the chain flags it and opens a work order), a
machine down with a work order of its own. Signed and submitted through the NodeClient, each step
waited for.

The oracle reports come from two validators' oracle identities, signed here rather than by the
nodes' own oracles: the registered model is a stand-in (its file is not in the models folder, so
the nodes' oracles load nothing and stay silent), which keeps this day free of model training.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from cli.layout import ClusterDir
from ledger.crypto import KeyPair, read_key_file
from node.client import NodeClient

CATALOG = Path(__file__).resolve().parents[2] / "configs" / "catalog.json"
READINGS = 12
THRESHOLD_BP = 6000


class Factory:
    """Submit one transaction at a time as a named identity, and wait for its receipt."""

    def __init__(self, layout: ClusterDir, client: NodeClient) -> None:
        self.layout = layout
        self.client = client
        self.chain_id = layout.genesis().chain_id
        self.hashes: list[str] = []

    async def send(
        self, who: str | KeyPair, contract: str, method: str, **args: Any
    ) -> dict[str, Any]:
        keys = self.layout.identity_keys(who) if isinstance(who, str) else who
        tx = await self.client.sign_and_submit(
            keys, chain_id=self.chain_id, contract=contract, method=method, args=args
        )
        result = await self.client.wait_committed(tx.hash.hex(), 30)
        receipt: dict[str, Any] = result["receipt"]
        assert receipt["ok"], f"{contract}.{method}: {receipt.get('error')}"
        self.hashes.append(tx.hash.hex())
        return receipt


def reading(seq: int, wear_min: int, torque_cnm: int) -> dict[str, int]:
    return {
        "seq": seq,
        "air_temp_dk": 2980 + seq % 7,
        "process_temp_dk": 3086 + seq % 5,
        "rpm": 1500 + 13 * (seq % 9),
        "torque_cnm": torque_cnm,
        "tool_wear_min": wear_min,
    }


async def stock_and_machines(f: Factory) -> None:
    products = json.loads(CATALOG.read_text(encoding="utf-8"))["products"]
    for product in products:
        await f.send("admin", "catalog", "publish", **product)
    for item, qty in (("steel-sheet", 12), ("bolt-m8", 60), ("powder-black", 3)):
        await f.send("supplier", "inventory", "receive", item=item, location="main", qty=qty)
    for item, point in (("steel-sheet", 8), ("bolt-m8", 10)):
        await f.send(
            "planner", "inventory", "set_reorder_point", item=item, location="main", point=point
        )
    for machine in ("m1", "m2", "m3"):
        await f.send(
            "admin",
            "machines",
            "register",
            machine=machine,
            type="press-cell",
            capabilities=["bend", "coat", "laser-cut"],
            operator="",
        )
    for machine, wear_step, torque in (("m1", 9, 4300), ("m2", 3, 3900), ("m3", 5, 4100)):
        batch = [
            reading(seq, 40 + seq * wear_step, torque + seq * 7) for seq in range(1, READINGS + 1)
        ]
        await f.send("machine", "machines", "report", machine=machine, readings=batch)


async def orders(f: Factory) -> None:
    for variant, qty in (("small", 2), ("large", 1), ("small", 1), ("small", 3), ("large", 1)):
        await f.send(
            "customer",
            "orders",
            "place",
            product="bracket",
            variant=variant,
            options={"finish": "raw"},
            quantity=qty,
        )
    for order in ("ord-1", "ord-2", "ord-3", "ord-4"):
        await f.send("planner", "orders", "accept", order=order)
    for order, machine in (("ord-1", "m1"), ("ord-2", "m2"), ("ord-3", "m2")):
        await f.send("planner", "orders", "schedule", order=order, machine=machine)
    await f.send("machine", "orders", "start", order="ord-2")


async def predictions(f: Factory) -> None:
    """m1's predicted failure probability rises past the threshold; m2's stays low. The last
    two readings of m1 have one report each, short of the quorum of three (2f+1)."""
    model_hash = hashlib.sha256(b"millchain explorer stand-in model").digest()
    await f.send(
        "admin",
        "oracle",
        "register_model",
        model_hash=model_hash,
        name="stand-in",
        features=["torque_cnm", "tool_wear_min"],
        threshold_bp=THRESHOLD_BP,
        horizon=5,
    )
    reporters = [
        read_key_file(f.layout.node_dir(n) / "oracle.key.json") for n in ("node0", "node1", "node2")
    ]
    curves = {
        "m1": [400 + 620 * seq + (seq % 3) * 150 for seq in range(1, READINGS + 1)],
        "m2": [300 + 40 * seq + (seq % 4) * 60 for seq in range(1, READINGS + 1)],
    }
    for index, keys in enumerate(reporters):
        for machine, curve in curves.items():
            last = READINGS - 2 if index and machine == "m1" else READINGS
            reports = [
                {"machine": machine, "seq": seq, "probability_bp": bp + 120 * index}
                for seq, bp in enumerate(curve[:last], start=1)
            ]
            await f.send(keys, "oracle", "report", model_hash=model_hash, reports=reports)


async def run_factory_day(layout: ClusterDir, url: str) -> list[str]:
    """Run the day against the node at `url`; the hashes of the transactions, in order."""
    async with NodeClient(url) as client:
        f = Factory(layout, client)
        await stock_and_machines(f)
        await orders(f)
        await predictions(f)  # m1 crosses the threshold: flagged, work order wo-1, ord-1 moves
        await f.send("machine", "machines", "down", machine="m3", reason="spindle jam")
        await f.send("maintainer", "maintenance", "open", machine="m3", reason="spindle jam")
        await f.send("customer", "orders", "cancel", order="ord-5", reason="no longer needed")
        return f.hashes
