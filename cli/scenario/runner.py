"""One scenario run from end to end: a fresh cluster, the fault model for the predictive
strategy, the plant's loop, and the figures, business and chain apart."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cli.cluster_cmd import temporary_cluster
from cli.demo_factory import CATALOG
from cli.oracle_chain_cmd import file_sha256, register_model_file
from cli.scenario.chain import PlantChain
from cli.scenario.config import ScenarioConfig, Strategy
from cli.scenario.plant import Plant
from node.client import NodeClient

TRAINING_MACHINES = 6
TRAINING_SEED_OFFSET = 10_000  # the model learns from other machines than the plant's
# What a maintenance visit (a new tool, an inspection) prevents: tool wear and overstrain
# failures. Heat dissipation, power and random failures come from the process, not the tool;
# flagging them would stop machines for visits that change nothing.
PREVENTABLE_MODES = ("twf", "osf")


def train_model(config: ScenarioConfig, path: Path) -> dict[str, Any]:
    """Train the fault model for the predictive strategy on simulated history of machines run
    to failure (tools are changed only when they fail), at the scenario's horizon, for the
    failures maintenance prevents."""
    from oracle.model.artifact import save_model  # noqa: PLC0415 (heavy import)
    from oracle.model.training import train  # noqa: PLC0415
    from oracle.telemetry.simulator import simulate_fleet  # noqa: PLC0415

    history = simulate_fleet(
        TRAINING_MACHINES,
        config.training_operations,
        config.seed + TRAINING_SEED_OFFSET,
        tool_fails_at_end_p=1.0,
    )
    model = train(
        history, horizon=config.horizon, seed=config.seed, failure_modes=PREVENTABLE_MODES
    )
    save_model(model, path)
    meta = model.metadata
    return {
        "sha256": file_sha256(path),
        "name": meta.name,
        "horizon": meta.horizon,
        "threshold_bp": meta.threshold_bp,
        "failure_modes": list(PREVENTABLE_MODES),
        "training_records": len(history),
        "validation": dict(meta.validation),
    }


async def _drive(
    config: ScenarioConfig,
    layout: Any,
    model_file: Path | None,
    progress: Callable[[int, int], None] | None,
) -> dict[str, Any]:
    if model_file is not None:
        await register_model_file(layout, model_file)
    first = layout.node_names()[0]
    async with NodeClient(layout.config(first).url) as probe:
        primary = str((await probe.status())["primary_name"])
    catalog = json.loads(CATALOG.read_text(encoding="utf-8"))
    async with NodeClient(layout.config(primary).url, timeout_s=30) as client:
        chain = PlantChain(layout, client)
        plant = Plant(config, chain, catalog, progress)
        started = time.monotonic()
        await plant.setup()
        books = await plant.run()
        seconds = time.monotonic() - started
        status = await client.status()
    counters = status["counters"]
    return {
        "business": books.summary(config.costs),
        "timeline": {
            "failures": books.failures,
            "maintenance": books.maintenance,
            "in_service_by_step": [round(v, 4) for v in books.availability_by_step],
        },
        "chain": {
            "nodes": config.nodes,
            "blocks": int(status["height"]),
            "transactions": int(counters["txs_committed"]),
            "plant_transactions": chain.transactions,
            "view_changes": int(counters["view_changes"]),
            "seconds": round(seconds, 1),
            "seconds_waiting_for_oracle": round(plant.seconds_waiting_for_oracle, 1),
        },
    }


def run_scenario(
    config: ScenarioConfig,
    *,
    model_file: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Run one strategy on a fresh temporary cluster; the model file is needed (and only used)
    by the predictive strategy."""
    if config.strategy is Strategy.PREDICTIVE and model_file is None:
        raise ValueError("the predictive strategy needs a trained model file")
    with temporary_cluster("millchain-scenario-", nodes=config.nodes) as layout:
        outcome = asyncio.run(
            _drive(
                config,
                layout,
                model_file if config.strategy is Strategy.PREDICTIVE else None,
                progress,
            )
        )
    return {"config": config.to_map(), **outcome}
