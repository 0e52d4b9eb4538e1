"""What the embedded oracle costs in throughput, measured side by side.

    python scripts/oracle_cost.py [--pairs 3] [--duration 20] [--machines 4] [--json FILE]

Each pair launches two fresh 4-node clusters with the bench's senders and MACHINES registered
machines, and measures the bench's committed tx/s while every machine reports batches of
readings on-chain (5 readings every 200 ms, as in the demo; each phase its own machines):

- on one cluster no model is registered, so the validators' oracles have nothing to run;
- on the other the fault model is registered, so every validator runs it on each committed batch
  of readings and submits signed predictions, and a quorum's predictions become final on-chain.

Both clusters first take a stretch of unmeasured load with readings (the validators of the second
load sklearn and the model then). The four measured phases run one at a time, in the order
without, with, with, without, so a drift in the shared machine's load over the pair weighs on
both sides alike; the idle cluster only ticks meanwhile. The cost is 1 - (mean tx/s with the
oracle) / (mean tx/s without it); the median over the pairs is the figure, next to the range.

Throughput on a shared machine moves by more than the oracle costs, so each phase also counts
the CPU its cluster's nodes used (from /proc) per committed bench transaction and node: the
second figure is how much more of it a transaction takes with the oracle running (its reports'
admission and execution, inference, and the smaller blocks they may cause), again the median
over the pairs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import tempfile
import time
from http import HTTPStatus
from pathlib import Path
from typing import Any

import click

from cli import bench
from cli.bench_load import BENCH_SENDERS
from cli.cluster_cmd import temporary_cluster
from cli.demo_oracle import HORIZON
from cli.layout import ClusterDir
from cli.machine_sim import reading_args
from cli.oracle_chain_cmd import file_sha256, register_model_file, wait_model_loaded
from cli.process import cpu_spent, node_cpu_seconds
from ledger.genesis import Role
from ledger.tx import Transaction
from node.client import ClientError, NodeClient
from oracle.model.artifact import save_model
from oracle.model.training import train
from oracle.telemetry.simulator import MachineSimulator, simulate_fleet

PACE_MS = 200
WARM_UP_S = 5.0
MODEL_LOAD_TIMEOUT_S = 30.0
READINGS_PER_REPORT = 5


def train_model(path: Path, operations: int) -> str:
    """The demo's fault model (6 machines x `operations` simulated operations, 1,000 in the
    demo); returns its sha256."""
    readings = simulate_fleet(machines=6, operations=operations, seed=1)
    model = train(readings, horizon=HORIZON, seed=0)
    return save_model(model, path)


async def _call(layout: ClusterDir, identity: str, contract: str, **args: Any) -> None:
    keys = layout.identity_keys(identity)
    async with NodeClient(layout.config(layout.node_names()[0]).url) as client:
        tx = await client.sign_and_submit(
            keys,
            chain_id=layout.genesis().chain_id,
            contract=contract,
            method="register",
            args=args,
        )
        result = await client.wait_committed(tx.hash.hex(), 60)
    if not result["receipt"]["ok"]:
        raise SystemExit(f"{contract}.register: {result['receipt']['error']}")


async def _stream_readings(
    layout: ClusterDir, machines: list[str], stop: asyncio.Event
) -> tuple[int, int]:
    """Every PACE_MS, one report of READINGS_PER_REPORT new readings per machine, signed by the
    machine identity and submitted without waiting for commits (machines stream at their own
    pace). A reading that ends in a failure is dropped and the tool replaced, so every
    machine keeps producing for the whole phase. A report the node refuses as busy (503: the
    unpaced bench fills its mempool) is sent again at the next pace, before the newer ones, as a
    machine buffering its readings would. Returns (readings accepted, refusals)."""
    keys = layout.identity_keys("machine")
    chain_id = layout.genesis().chain_id
    simulators = [MachineSimulator(machine, seed=i + 1) for i, machine in enumerate(machines)]
    submitted = refused = 0
    backlog: list[tuple[bytes, int]] = []  # signed reports not yet accepted, in nonce order
    async with NodeClient(layout.config(layout.node_names()[0]).url) as client:
        nonce = await client.next_nonce(keys.public_key)
        while not stop.is_set():
            for machine, simulator in zip(machines, simulators, strict=True):
                readings: list[dict[str, int]] = []
                while len(readings) < READINGS_PER_REPORT:
                    reading = simulator.step()
                    if reading.machine_failure:
                        simulator.replace_tool()
                        continue
                    readings.append(reading_args(reading))
                tx = Transaction.create(
                    keys,
                    chain_id=chain_id,
                    nonce=nonce,
                    contract="machines",
                    method="report",
                    args={"machine": machine, "readings": readings},
                )
                backlog.append((tx.wire, len(readings)))
                nonce += 1
            while backlog:
                wire, count = backlog[0]
                try:
                    await client.submit(wire)
                except ClientError as exc:
                    if exc.status != HTTPStatus.SERVICE_UNAVAILABLE:
                        raise
                    refused += 1
                    break
                backlog.pop(0)
                submitted += count
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), PACE_MS / 1000)
    return submitted, refused


async def _phase(
    layout: ClusterDir, machines: list[str], senders: list[str], duration_s: float, rate: float
) -> dict[str, Any]:
    """The bench's load for `duration_s` while every machine streams readings."""
    cpu_before = node_cpu_seconds(layout)
    if isinstance(cpu_before, str):
        raise SystemExit(f"cannot measure the nodes' CPU: {cpu_before}")
    stop = asyncio.Event()
    streamer = asyncio.create_task(_stream_readings(layout, machines, stop))
    try:
        figures = await bench._offer_load(layout, senders, duration_s, rate, bench.BATCH_DEFAULT)
    finally:
        stop.set()
        readings, refused = await streamer
    spent = cpu_spent(cpu_before, node_cpu_seconds(layout))
    if isinstance(spent, str):
        raise SystemExit(f"cannot measure the nodes' CPU: {spent}")
    cpu_s = sum(spent.values())
    async with NodeClient(layout.config(layout.node_names()[0]).url) as client:
        status = await client.status()
    figures.pop("timeline", None)
    figures["readings_submitted"] = readings
    figures["reading_reports_refused"] = refused
    # Per committed bench transaction and node (the readings and reports ride along), taken
    # around the presigning too; the bench's own node_cpu_us_per_tx counts every committed
    # transaction, readings and reports included, from the start of the load.
    nodes = len(layout.node_names())
    figures["node_cpu_us_per_bench_tx"] = round(
        1e6 * cpu_s / max(figures["committed"], 1) / nodes, 1
    )
    figures["oracle"] = status["oracle"]  # readings seen and reports submitted so far
    return figures


async def _prepare(
    layout: ClusterDir,
    model: Path | None,
    machine_sets: list[list[str]],
    senders: list[str],
    warm_up_s: float,
    rate: float,
) -> None:
    """Register every phase's machines (and the model, when given), then a first stretch of
    load with readings streaming, not measured: a fresh cluster's first seconds are slower, and
    a validator's first predictions pay for loading sklearn."""
    for machine in [machine for machines in machine_sets for machine in machines]:
        await _call(
            layout,
            "admin",
            "machines",
            machine=machine,
            type="press-cell",
            capabilities=["laser-cut", "bend"],
        )
    if model is not None:
        try:
            await register_model_file(layout, model)
            await wait_model_loaded(layout, file_sha256(model), MODEL_LOAD_TIMEOUT_S)
        except click.ClickException as exc:
            raise SystemExit(exc.message) from exc
    await _phase(layout, machine_sets[0], senders, warm_up_s, rate)


async def _pair(
    plain: ClusterDir,
    oracle: ClusterDir,
    model: Path,
    machines: list[str],
    duration_s: float,
    rate: float,
    warm_up_s: float,
) -> dict[str, Any]:
    """Two phases on each cluster, in the order plain, oracle, oracle, plain: a drift in the
    machine's background load over the pair weighs on both sides alike."""
    senders = [f"bench{i}" for i in range(BENCH_SENDERS)]
    # Each phase has machines of its own: a machine's reading sequence numbers only rise.
    warm, first, second = ([f"{machine}{tag}" for machine in machines] for tag in "wab")
    await _prepare(plain, None, [warm, first, second], senders, warm_up_s, rate)
    await _prepare(oracle, model, [warm, first, second], senders, warm_up_s, rate)
    without = [await _phase(plain, first, senders, duration_s, rate)]
    with_oracle = [await _phase(oracle, first, senders, duration_s, rate)]
    with_oracle.append(await _phase(oracle, second, senders, duration_s, rate))
    without.append(await _phase(plain, second, senders, duration_s, rate))
    rate_without = statistics.fmean(phase["committed_tx_per_s"] for phase in without)
    rate_with = statistics.fmean(phase["committed_tx_per_s"] for phase in with_oracle)
    cpu_without = statistics.fmean(phase["node_cpu_us_per_bench_tx"] for phase in without)
    cpu_with = statistics.fmean(phase["node_cpu_us_per_bench_tx"] for phase in with_oracle)
    return {
        "without": without,
        "with": with_oracle,
        "tx_per_s_without": round(rate_without, 1),
        "tx_per_s_with": round(rate_with, 1),
        "ratio": round(rate_with / max(rate_without, 1e-9), 3),
        "node_cpu_us_per_bench_tx_without": round(cpu_without, 1),
        "node_cpu_us_per_bench_tx_with": round(cpu_with, 1),
        "cpu_ratio": round(cpu_with / max(cpu_without, 1e-9), 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=3, help="Clusters, each measured twice.")
    parser.add_argument("--duration", type=float, default=20.0, help="Seconds per phase.")
    parser.add_argument("--machines", type=int, default=4, help="Machines reporting readings.")
    parser.add_argument(
        "--rate", type=float, default=0.0, help="Bench offered tx/s (0: as fast as accepted)."
    )
    parser.add_argument(
        "--warm-up", type=float, default=WARM_UP_S, help="Seconds of unmeasured load first."
    )
    parser.add_argument(
        "--training-operations",
        type=int,
        default=1000,
        help="Simulated operations per machine (6 machines) to train the model on.",
    )
    parser.add_argument("--json", type=Path, default=Path("oracle-cost.json"))
    args = parser.parse_args(argv)
    if args.pairs < 1 or args.duration <= 0 or not 1 <= args.machines <= 50:
        parser.error("need --pairs >= 1, --duration > 0 and 1 <= --machines <= 50")
    if args.rate < 0 or args.warm_up <= 0 or args.training_operations < 100:
        parser.error("need --rate >= 0, --warm-up > 0 and --training-operations >= 100")
    machines = [f"m{i + 1}" for i in range(args.machines)]
    extra = tuple((f"bench{i}", (Role.SUPPLIER,)) for i in range(BENCH_SENDERS))
    with tempfile.TemporaryDirectory(prefix="millchain-oracle-cost-") as work:
        model = Path(work) / "model.skops"
        started = time.monotonic()
        digest = train_model(model, args.training_operations)
        print(f"trained the fault model {digest[:16]} in {time.monotonic() - started:.0f} s")
        pairs = []
        for index in range(args.pairs):
            with (
                temporary_cluster("millchain-oracle-cost-", extra_identities=extra) as plain,
                temporary_cluster("millchain-oracle-cost-", extra_identities=extra) as oracle,
            ):
                pair = asyncio.run(
                    _pair(plain, oracle, model, machines, args.duration, args.rate, args.warm_up)
                )
            pairs.append(pair)
            print(
                f"pair {index + 1}: without the oracle {pair['tx_per_s_without']:,.0f} tx/s, "
                f"with it {pair['tx_per_s_with']:,.0f} tx/s (ratio {pair['ratio']}); node CPU "
                f"per transaction {pair['node_cpu_us_per_bench_tx_without']:,.0f} us without, "
                f"{pair['node_cpu_us_per_bench_tx_with']:,.0f} us with"
            )
    ratios = [pair["ratio"] for pair in pairs]
    cpu_ratios = [pair["cpu_ratio"] for pair in pairs]
    summary = {
        "machines": args.machines,
        "duration_s": args.duration,
        "pairs": pairs,
        "ratio_median": statistics.median(ratios),
        "cost_median": round(1 - statistics.median(ratios), 3),
        "cost_range": [round(1 - max(ratios), 3), round(1 - min(ratios), 3)],
        "cpu_cost_median": round(statistics.median(cpu_ratios) - 1, 3),
        "cpu_cost_range": [round(min(cpu_ratios) - 1, 3), round(max(cpu_ratios) - 1, 3)],
    }
    print(
        f"oracle cost: {100 * summary['cost_median']:.1f} % of throughput (median of "
        f"{len(ratios)}; range {100 * summary['cost_range'][0]:.1f} to "
        f"{100 * summary['cost_range'][1]:.1f} %); node CPU per transaction "
        f"{100 * summary['cpu_cost_median']:+.1f} % (range "
        f"{100 * summary['cpu_cost_range'][0]:+.1f} to {100 * summary['cpu_cost_range'][1]:+.1f} %)"
    )
    args.json.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
