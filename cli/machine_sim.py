"""Simulated machines on a live cluster: each runs the oracle's telemetry simulator and reports
its readings on-chain in batches, as the machine identity would, until it fails or is taken out
of service. `millchain machine simulate` and the demo use it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from cli.client_cmd import reachable_client
from cli.common import console, dir_option, guarded, layout_of
from cli.layout import ClusterDir
from contracts.machines import READINGS_PER_TX_MAX
from oracle.telemetry.reading import FLAG_NAMES, Quality, Reading
from oracle.telemetry.simulator import STRESS_MAX, MachineSimulator


def reading_args(reading: Reading, *, seq_offset: int = 0) -> dict[str, Any]:
    """A simulated reading in the machines contract's units (torque in centi-Nm), its sequence
    number moved on by `seq_offset` (past the readings the machine reported before)."""
    return {
        "seq": reading.seq + seq_offset,
        "air_temp_dk": reading.air_temp_dk,
        "process_temp_dk": reading.process_temp_dk,
        "rpm": reading.speed_rpm,
        "torque_cnm": reading.torque_dnm * 10,
        "tool_wear_min": reading.wear_min,
        "quality": reading.quality.value,
    }


@dataclass(slots=True)
class MachineRun:
    machine: str
    reported: int = 0
    failed_at: int | None = None
    failure_modes: list[str] = field(default_factory=list)
    stopped: str | None = None  # why the machine stopped producing, if it did
    last_height: int = 0


async def _record(layout: ClusterDir, machine: str) -> dict[str, Any]:
    client = await reachable_client(layout, None)
    try:
        record: dict[str, Any] = await client.query("machines", [machine])
    finally:
        await client.__aexit__(None, None, None)
    return record


async def _status(layout: ClusterDir, machine: str) -> str:
    return str((await _record(layout, machine))["status"])


async def drive_machine(
    layout: ClusterDir,
    machine: str,
    *,
    operations: int,
    seed: int,
    stress: float = 0.0,
    batch: int = 10,
    quality: Quality | None = None,
    pace_ms: int = 200,
) -> MachineRun:
    """Report `operations` readings in batches, one batch every `pace_ms` at most (a machine
    works at its own pace, not as fast as the chain commits); stop at a failure (reported as
    the machine going down) or when the machine is no longer running (flagged at risk or under
    maintenance)."""
    simulator = MachineSimulator(machine, seed=seed, quality=quality)
    simulator.stress = stress
    outcome = MachineRun(machine=machine)
    # Sequence numbers go on from the machine's last reading, so it can be simulated again.
    offset = int((await _record(layout, machine))["last_seq"]) + 1
    pending: list[Reading] = []
    for _ in range(operations):
        reading = simulator.step()
        pending.append(reading)
        if reading.machine_failure or len(pending) >= batch:
            await _report(layout, machine, pending, outcome, offset)
            pending = []
            await asyncio.sleep(pace_ms / 1000)
        if reading.machine_failure:
            outcome.failed_at = reading.seq + offset
            outcome.failure_modes = [n.upper() for n in FLAG_NAMES if getattr(reading, n)]
            await _call(
                layout,
                "machine",
                "machines",
                "down",
                {"machine": machine, "reason": "failure " + "+".join(outcome.failure_modes)},
            )
            outcome.stopped = "failed"
            return outcome
        if not pending and (status := await _status(layout, machine)) != "running":
            outcome.stopped = status
            return outcome
    if pending:
        await _report(layout, machine, pending, outcome, offset)
    return outcome


async def _report(
    layout: ClusterDir, machine: str, readings: list[Reading], outcome: MachineRun, offset: int
) -> None:
    result = await _call(
        layout,
        "machine",
        "machines",
        "report",
        {
            "machine": machine,
            "readings": [reading_args(r, seq_offset=offset) for r in readings],
        },
    )
    outcome.reported += len(readings)
    outcome.last_height = int(result["height"])


_LOCKS: dict[str, asyncio.Lock] = {}


async def _call(
    layout: ClusterDir, identity: str, contract: str, method: str, args: dict[str, Any]
) -> dict[str, Any]:
    """Sign and submit as `identity` to the first node that answers, then wait there for the
    receipt. Machines that share an identity take nonces one at a time (under a lock), but
    wait for commits concurrently."""
    lock = _LOCKS.setdefault(identity, asyncio.Lock())
    keys = layout.identity_keys(identity)
    chain_id = layout.genesis().chain_id
    client = await reachable_client(layout, None)
    try:
        async with lock:
            tx = await client.sign_and_submit(
                keys, chain_id=chain_id, contract=contract, method=method, args=args
            )
        result = await client.wait_committed(tx.hash.hex(), 60)
    finally:
        await client.__aexit__(None, None, None)
    if not result["receipt"]["ok"]:
        raise click.ClickException(f"{contract}.{method}: {result['receipt']['error']}")
    return result


def _stress_levels(pairs: tuple[str, ...], machines: tuple[str, ...]) -> dict[str, float]:
    """--stress MACHINE=LEVEL values, each for one of `machines` and within 0..STRESS_MAX."""
    levels: dict[str, float] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep:
            raise click.BadParameter(f"{pair!r}: expected MACHINE=LEVEL", param_hint="--stress")
        if name not in machines:
            raise click.BadParameter(
                f"{pair!r}: {name!r} is not one of the machines simulated ({', '.join(machines)})",
                param_hint="--stress",
            )
        if name in levels:
            raise click.BadParameter(f"{name!r} given twice", param_hint="--stress")
        expected = f"{pair!r}: expected a level from 0 to {STRESS_MAX:g}"
        try:
            level = float(text)
        except ValueError as exc:
            raise click.BadParameter(expected, param_hint="--stress") from exc
        if not 0.0 <= level <= STRESS_MAX:  # also refuses nan
            raise click.BadParameter(expected, param_hint="--stress")
        levels[name] = level
    return levels


@click.command(name="simulate")
@click.argument("machines", nargs=-1, required=True)
@dir_option
@click.option(
    "--operations",
    type=click.IntRange(min=1),
    default=200,
    show_default=True,
    help="Operations per machine.",
)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option(
    "--stress",
    "stress_pairs",
    multiple=True,
    help=f"MACHINE=LEVEL (0..{STRESS_MAX:g}), for one of MACHINES: extra torque that drives "
    "it toward overstrain.",
)
@click.option(
    "--batch",
    type=click.IntRange(min=1, max=READINGS_PER_TX_MAX),
    default=10,
    show_default=True,
    help=f"Readings per report transaction (the machines contract takes at most "
    f"{READINGS_PER_TX_MAX}).",
)
@click.option(
    "--pace-ms",
    type=click.IntRange(min=0),
    default=200,
    show_default=True,
    help="Pause between batches.",
)
@guarded
def simulate(
    machines: tuple[str, ...],
    directory: Path,
    operations: int,
    seed: int,
    stress_pairs: tuple[str, ...],
    batch: int,
    pace_ms: int,
) -> None:
    """Run simulated MACHINES (already registered) that report their readings on-chain."""
    twice = sorted({m for m in machines if machines.count(m) > 1})
    if twice:
        raise click.BadParameter(f"{', '.join(twice)} given twice", param_hint="MACHINES")
    stress = _stress_levels(stress_pairs, machines)
    layout = layout_of(directory)

    async def all_machines() -> list[MachineRun]:
        return list(
            await asyncio.gather(
                *(
                    drive_machine(
                        layout,
                        m,
                        operations=operations,
                        seed=seed + i,
                        stress=stress.get(m, 0.0),
                        batch=batch,
                        pace_ms=pace_ms,
                    )
                    for i, m in enumerate(machines)
                )
            )
        )

    for run in asyncio.run(all_machines()):
        why = f", stopped: {run.stopped}" if run.stopped else ""
        failure = (
            f" (failed at reading {run.failed_at}: {'+'.join(run.failure_modes)})"
            if run.failed_at is not None
            else ""
        )
        console.print(f"{run.machine}: {run.reported} readings reported{failure}{why}")
