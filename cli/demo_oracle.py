"""The oracle act of `millchain demo`: a fault model trained on simulated telemetry is registered
on-chain; a machine driven toward overstrain reports its readings; the validators' oracles report
predictions, a quorum makes them final, the chain opens a work order and moves the machine's
queued orders elsewhere, and anyone can re-run the model to check every final prediction."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from cli.common import console
from cli.common import table as print_table
from cli.demo_factory import _call
from cli.layout import ClusterDir
from cli.machine_sim import drive_machine
from cli.oracle_chain_cmd import register_model_file, verify_range, wait_model_loaded
from node.client import NodeClient
from oracle.model.artifact import save_model
from oracle.model.training import train
from oracle.telemetry.reading import Quality
from oracle.telemetry.simulator import simulate_fleet

HORIZON = 5
# The last reports need a block or two after the machine stops.
MODEL_LOAD_TIMEOUT_S = 60.0
FINAL_TIMEOUT_S = 20.0


def _train(path: Path) -> dict[str, Any]:
    readings = simulate_fleet(machines=6, operations=1000, seed=1)
    model = train(readings, horizon=HORIZON, seed=0)
    digest = save_model(model, path)
    return {
        "sha256": digest,
        **model.metadata.validation,
        "threshold_bp": model.metadata.threshold_bp,
    }


async def oracle_act(layout: ClusterDir, workdir: Path) -> None:
    console.print(
        "\n[bold]oracle[/bold]: a fault model on-chain, predictions by a quorum of validators"
    )
    with console.status("training the fault model on 6,000 simulated AI4I-style operations..."):
        trained = await asyncio.to_thread(_train, workdir / "model.skops")
    console.print(
        f"trained a random forest for failure within {HORIZON} operations "
        f"(threshold {trained['threshold_bp']} bp, validation F1 {trained.get('f1', 0):.2f})"
    )
    result, _ = await register_model_file(layout, workdir / "model.skops")
    console.print(
        f"registered model {trained['sha256'][:16]} at height {result['height']}; each validator "
        "loads it only after checking that hash"
    )
    # Readings reported before the validators hold the model are predicted only once they do:
    # the machine could fail before the first prediction.
    await wait_model_loaded(layout, trained["sha256"], MODEL_LOAD_TIMEOUT_S)
    await _call(
        layout,
        "admin",
        "machines",
        "register",
        machine="m3",
        type="press-cell",
        capabilities=["laser-cut", "bend"],
    )
    orders = []
    for quantity in (3, 4):
        receipt = await _call(
            layout,
            "customer",
            "orders",
            "place",
            product="bracket",
            variant="small",
            options={},
            quantity=quantity,
        )
        orders.append(receipt["result"]["id"])
        await _call(layout, "planner", "orders", "accept", order=orders[-1])
        await _call(layout, "planner", "orders", "schedule", order=orders[-1], machine="m2")
    console.print(f"queued {', '.join(orders)} on m2; now m2 runs under rising strain...")
    run = await drive_machine(
        layout, "m2", operations=400, seed=1, stress=0.3, batch=5, quality=Quality.L
    )
    if run.failed_at is not None and run.stopped == "failed":
        console.print(
            f"[yellow]m2 failed ({'+'.join(run.failure_modes)}) at reading {run.failed_at} "
            "before the oracle flagged it[/yellow]"
        )
    else:
        console.print(
            f"after {run.reported} readings the oracle flagged m2 ({run.stopped}) before any "
            "failure"
        )
    async with NodeClient(layout.config(layout.node_names()[0]).url) as client:
        machines = await client.query("machines", [])
        work_orders = await client.query("maintenance", [])
        board = await client.query("orders", [])
    print_table(
        "machines",
        ["machine", "status", "tool wear", "at risk (bp)", "queue"],
        [
            [
                m["id"],
                m["status"],
                m["tool_wear_min"],
                (m.get("at_risk") or {}).get("probability_bp", ""),
                ", ".join(m["queue"]),
            ]
            for m in _records(machines)
        ],
    )
    print_table(
        "work orders",
        ["work order", "machine", "state", "opened by", "reason"],
        [
            [w.get("id", ""), w["machine"], w["state"], w["opened_by"], w["reason"][:60]]
            for w in _records(work_orders)
        ],
    )
    print_table(
        "orders that were queued on m2",
        ["order", "state", "machine"],
        [[o["id"], o["state"], o["machine"] or "-"] for o in _records(board) if o["id"] in orders],
    )
    report = await _verified_when_final(layout)
    console.print(
        f"millchain oracle verify: re-ran the registered model on every committed reading; "
        f"{report['reproduced']} of {report['final_checked']} final predictions reproduced, "
        f"each final within {report['final_lag_blocks_max']} blocks of its reading"
    )


async def _verified_when_final(layout: ClusterDir) -> dict[str, Any]:
    """`millchain oracle verify` over the whole chain once every committed reading has a final
    prediction (or FINAL_TIMEOUT_S has passed: the report then counts the ones still open)."""
    deadline = time.monotonic() + FINAL_TIMEOUT_S
    while True:
        report = await verify_range(layout, 1, None)
        if report["not_final"] == 0 or time.monotonic() > deadline:
            return report
        await asyncio.sleep(0.5)


def _records(result: Any) -> list[dict[str, Any]]:
    if isinstance(result, dict):
        return [
            {"id": key, **value} if "id" not in value else value
            for key, value in result.items()
            if isinstance(value, dict)
        ]
    return [r for r in result if isinstance(r, dict)]
