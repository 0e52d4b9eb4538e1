"""The oracle on a live 4-node cluster: a registered model, reports from the validators'
oracles, final predictions by a quorum, action on an at-risk machine, and verification."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from cli.demo_factory import _call
from cli.machine_sim import drive_machine
from cli.oracle_chain_cmd import verify_range
from node.client import NodeClient
from oracle.model.artifact import save_model
from oracle.model.training import train
from oracle.telemetry.reading import Quality
from oracle.telemetry.simulator import simulate_fleet
from tests.clusters import millchain, running_cluster, url

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def test_validators_finalize_predictions_and_act_on_an_at_risk_machine(tmp_path: Path) -> None:
    model_file = tmp_path / "model.skops"
    save_model(
        train(simulate_fleet(machines=6, operations=1000, seed=1), horizon=5, seed=0), model_file
    )
    root = tmp_path / "cluster"
    with running_cluster(root) as layout:
        registered = millchain("oracle", "register", str(model_file), "--dir", str(root), "--json")
        assert registered.returncode == 0, registered.stdout + registered.stderr
        # A copy with one byte changed is refused before anything is loaded.
        tampered = tmp_path / "tampered.skops"
        raw = bytearray(model_file.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        tampered.write_bytes(bytes(raw))
        expected = json.loads(registered.stdout)["sha256"]
        refused = millchain(
            "oracle",
            "evaluate",
            "--model",
            str(tampered),
            "--data",
            str(tmp_path / "none.csv"),
            "--sha256",
            expected,
        )
        assert refused.returncode != 0

        async def scenario() -> dict[str, Any]:
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
            await _call(layout, "admin", "catalog", "publish", **_bracket())
            for item, qty in (("steel-sheet", 20), ("bolt-m8", 80)):
                await _call(
                    layout, "supplier", "inventory", "receive", item=item, location="main", qty=qty
                )
            placed = await _call(
                layout,
                "customer",
                "orders",
                "place",
                product="bracket",
                variant="small",
                options={},
                quantity=1,
            )
            order = placed["result"]["id"]
            await _call(layout, "planner", "orders", "accept", order=order)
            await _call(layout, "planner", "orders", "schedule", order=order, machine="m1")
            run = await drive_machine(
                layout, "m1", operations=200, seed=1, stress=0.3, batch=5, quality=Quality.L
            )
            # A machine simulated again goes on from its last reading's sequence number.
            again = [await drive_machine(layout, "m2", operations=3, seed=2) for _ in range(2)]
            assert [r.reported for r in again] == [3, 3]
            async with NodeClient(url(layout, "node2")) as client:
                assert (await client.query("machines", ["m2"]))["last_seq"] == 5
                machine = await client.query("machines", ["m1"])
                predictions = await client.query("oracle", ["predictions", "m1"])
                moved = await client.query("orders", [order])
                work_orders = await client.query("maintenance", [])
            report = await verify_range(layout, 1, None)
            return {
                "run": run,
                "machine": machine,
                "predictions": predictions,
                "order": moved,
                "work_orders": work_orders,
                "verify": report,
            }

        outcome = asyncio.run(scenario())
        final = [p for p in outcome["predictions"] if p["final"]]
        assert final, "no prediction became final"
        assert all(len(p["reports"]) >= 3 for p in final)  # 2f + 1 distinct reporters
        assert outcome["run"].stopped == "degraded"  # flagged before it failed
        assert outcome["run"].failed_at is None
        assert outcome["machine"]["at_risk"]["source"] == "oracle"
        assert outcome["order"]["machine"] == "m2"
        opened = [w for w in _records(outcome["work_orders"]) if w["source"] == "oracle"]
        assert [w["machine"] for w in opened] == ["m1"]
        report = outcome["verify"]
        assert report["final_checked"] >= len(final)
        assert report["mismatches"] == []
        # Readings committed at height h have their final prediction by h + 3.
        assert report["final_lag_blocks_max"] <= 3


def _bracket() -> dict[str, Any]:
    catalog = json.loads(
        (Path(__file__).resolve().parents[2] / "configs" / "catalog.json").read_text(
            encoding="utf-8"
        )
    )
    product: dict[str, Any] = next(p for p in catalog["products"] if p["product"] == "bracket")
    return product


def _records(result: Any) -> list[dict[str, Any]]:
    if isinstance(result, dict):
        return [v for v in result.values() if isinstance(v, dict)]
    return [r for r in result if isinstance(r, dict)]
