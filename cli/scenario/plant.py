"""The plant's step loop: simulated time advances one step at a time, and every step commits its
business on the chain in phases before the next begins.

Each step of `step_min` simulated minutes:

1. shop: maintainers close work orders whose job is done and take those whose wait is over;
   customers place the step's orders, confirm deliveries of shipped ones; the auditor passes
   finished orders;
2. supply: the supplier delivers the new orders' materials; the planner ships passed orders;
3. plan: the planner accepts new orders (reserving their materials) and schedules them, and any
   order that lost its machine, on the least-loaded capable machine in service (the contract's
   rule);
4. run: every machine in service works its queue for the step, one AI4I operation at a time
   (3, 4 or 6 minutes by product quality), and reports its readings; a machine that fails
   reports itself down (its queued orders move) and the planner opens a repair work order; under
   the preventive strategy a machine stops when its tool reaches the change interval;
5. oracle (predictive strategy only): wait until every reading of the step has its final
   prediction. A prediction above the model's threshold has flagged the machine at risk on the
   chain: it stops, its queue has moved, and the oracle's work order waits for a maintainer.

Everything the plant decides comes from its own seeded simulation and from the chain's state
after a phase, never from timing, so one seed gives the same business figures on every run.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from cli.machine_sim import reading_args
from cli.scenario.books import Books
from cli.scenario.chain import Call, PlantChain, ScenarioError
from cli.scenario.config import (
    CYCLE_MIN,
    LOCATION,
    MACHINES_MAX,
    ScenarioConfig,
    Strategy,
    cell_of,
    machine_names,
)
from cli.scenario.demand import OrderRequest, operations_for, order_stream
from contracts.orders import NO_ROOM
from contracts.scheduling import QUEUE_MAX
from node.client import ClientError
from oracle.telemetry.reading import FLAG_NAMES, Reading
from oracle.telemetry.simulator import MachineSimulator

PREDICTION_TIMEOUT_S = 30.0


@dataclass(slots=True)
class Machine:
    name: str
    sim: MachineSimulator
    clock: int = 0  # simulated minute at which it is next free
    order: str = ""  # the order in production on it
    stopped_at: int | None = None  # out of service since, or None while in service
    stop_kind: str = ""  # "failure", "planned" or "oracle"
    work_order: str = ""
    taken_at: int | None = None


@dataclass(slots=True)
class Order:
    id: str
    operations: int
    due_min: int
    done: int = 0


def seeds(seed: int) -> tuple[np.random.SeedSequence, list[np.random.SeedSequence]]:
    """(demand seed, one seed per machine), all from the scenario's seed."""
    demand, machines = np.random.SeedSequence(seed).spawn(2)
    return demand, list(machines.spawn(MACHINES_MAX))


class Plant:
    def __init__(
        self,
        config: ScenarioConfig,
        chain: PlantChain,
        catalog: dict[str, Any],
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        self.config = config
        self.chain = chain
        self.catalog = catalog
        self.progress = progress
        demand_seed, machine_seeds = seeds(config.seed)
        if config.machines > len(machine_seeds):
            raise ValueError(f"--machines must be at most {len(machine_seeds)}")
        self.demand = order_stream(config, catalog, int(demand_seed.generate_state(1)[0]))
        self.machines = {
            name: Machine(name, MachineSimulator(name, seed, tool_fails_at_end_p=1.0))
            for name, seed in zip(machine_names(config.machines), machine_seeds, strict=False)
        }
        self.books = Books.for_machines(list(self.machines), config.horizon_min)
        self.orders: dict[str, Order] = {}
        self.finished: list[str] = []  # waiting for the quality check
        self.passed: list[str] = []  # waiting to ship
        self.shipped: list[str] = []  # waiting for the customer's confirmation
        self.known_work_orders: set[str] = set()
        self.seconds_waiting_for_oracle = 0.0

    # -- setup ---------------------------------------------------------------------------------

    async def setup(self) -> None:
        calls = [
            Call("admin", "catalog", "publish", dict(product))
            for product in sorted(self.catalog["products"], key=lambda p: p["product"])
        ]
        for index, name in enumerate(self.machines):
            cell, capabilities = cell_of(index)
            calls.append(
                Call(
                    "admin",
                    "machines",
                    "register",
                    {"machine": name, "type": cell, "capabilities": list(capabilities)},
                )
            )
        await self.chain.phase(calls)

    # -- the loop ------------------------------------------------------------------------------

    async def run(self) -> Books:
        arrivals: dict[int, list[OrderRequest]] = defaultdict(list)
        for request in self.demand:
            arrivals[request.step].append(request)
        for step in range(self.config.steps):
            t0 = step * self.config.step_min
            t1 = t0 + self.config.step_min
            placed = await self._shop(t0, arrivals[step])
            await self._supply(placed)
            await self._plan(placed)
            readings = await self._run(t0, t1)
            if self.config.strategy is Strategy.PREDICTIVE:
                await self._oracle(t1, readings)
            in_service = sum(1 for m in self.machines.values() if m.stopped_at is None)
            self.books.availability_by_step.append(in_service / len(self.machines))
            if self.progress is not None:
                self.progress(step + 1, self.config.steps)
        self._close_books()
        return self.books

    async def _shop(self, t0: int, requests: list[OrderRequest]) -> list[dict[str, Any]]:
        config = self.config
        calls: list[Call] = []
        back: list[Machine] = []
        for machine in self.machines.values():
            if machine.taken_at is None or machine.stopped_at is None:
                continue
            duration = (
                config.repair_min if machine.stop_kind == "failure" else (config.tool_change_min)
            )
            if t0 >= machine.taken_at + duration:
                actions = {
                    "failure": ["repaired", "tool_replaced"],
                    "planned": ["tool_replaced"],
                    "oracle": ["inspected", "tool_replaced"],
                }[machine.stop_kind]
                calls.append(
                    Call(
                        "maintainer",
                        "maintenance",
                        "close",
                        {"work_order": machine.work_order, "actions": actions},
                    )
                )
                back.append(machine)
        for machine in self.machines.values():
            if machine.work_order and machine.taken_at is None and machine.stopped_at is not None:
                wait = 0 if machine.stop_kind == "planned" else config.response_min
                if t0 >= machine.stopped_at + wait:
                    calls.append(
                        Call(
                            "maintainer", "maintenance", "take", {"work_order": machine.work_order}
                        )
                    )
                    machine.taken_at = t0
        first_order = len(calls)
        calls.extend(Call("customer", "orders", "place", r.args()) for r in requests)
        calls.extend(
            Call("auditor", "orders", "qc_pass", {"order": o, "note": "inspected"})
            for o in self.finished
        )
        calls.extend(Call("customer", "orders", "deliver", {"order": o}) for o in self.shipped)
        results = await self.chain.phase(calls)
        self.passed, self.finished, self.shipped = self.finished, [], []
        for machine in back:
            assert machine.stopped_at is not None
            self.books.downtime(
                machine.name, t0 - machine.stopped_at, repair=machine.stop_kind == "failure"
            )
            self.books.maintained(
                machine.name, t0, machine.stop_kind, planned=machine.stop_kind != "failure"
            )
            machine.sim.replace_tool()
            machine.clock = max(machine.clock, t0)
            machine.stopped_at, machine.stop_kind = None, ""
            machine.work_order, machine.taken_at = "", None
        placed: list[dict[str, Any]] = results[first_order : first_order + len(requests)]
        self.books.orders.placed += len(placed)
        for summary in placed:
            self.orders[str(summary["id"])] = Order(
                id=str(summary["id"]),
                operations=operations_for(int(summary["duration_ms"])),
                due_min=t0 + config.lead_time_h * 60,
            )
        return placed

    async def _supply(self, placed: list[dict[str, Any]]) -> None:
        needed: dict[str, int] = defaultdict(int)
        for summary in placed:
            for item, qty in summary["bom"].items():
                needed[item] += int(qty)
        calls = [
            Call("supplier", "inventory", "receive", {"item": i, "location": LOCATION, "qty": q})
            for i, q in sorted(needed.items())
        ]
        calls.extend(
            Call("planner", "orders", "ship", {"order": o, "note": "dispatched"})
            for o in self.passed
        )
        await self.chain.phase(calls)
        self.shipped, self.passed = self.passed, []

    async def _plan(self, placed: list[dict[str, Any]]) -> None:
        machines = await self.chain.query("machines")
        in_service = [m for m in machines.values() if m["status"] == "running"]
        calls = [
            Call("planner", "orders", "accept", {"order": summary["id"], "location": LOCATION})
            for summary in placed
        ]
        # Orders accepted earlier whose machine left service with no other to take them.
        # (The new ones are still "created" here: their accepts are in this phase.)
        waiting = sorted(
            (o for o in (await self.chain.query("orders")).values() if o["state"] == "accepted"),
            key=lambda o: int(str(o["id"])[4:]),
        )
        # An order no machine with room can take stays accepted and is tried again next step:
        # the queues may fill within this phase, so a schedule may fail for want of room.
        with_room = [m for m in in_service if len(m["queue"]) < QUEUE_MAX]
        for summary in [*placed, *waiting]:
            needs = set(summary["requires"])
            if any(needs <= set(m["capabilities"]) for m in with_room):
                calls.append(
                    Call(
                        "planner",
                        "orders",
                        "schedule",
                        {"order": summary["id"], "machine": ""},
                        may_fail_with=NO_ROOM,
                    )
                )
        await self.chain.phase(calls)

    async def _run(self, t0: int, t1: int) -> dict[str, list[Reading]]:
        config = self.config
        snapshot = await self.chain.query("machines")
        machine_calls: list[Call] = []
        stops: list[tuple[Machine, Call]] = []  # the planner's work order for each stop
        reported: dict[str, list[Reading]] = {}
        for machine in self.machines.values():
            view = snapshot[machine.name]
            if machine.stopped_at is not None:
                continue
            if view["status"] != "running":
                raise ScenarioError(
                    f"machine {machine.name} is {view['status']} on the chain but in service "
                    "in the plant"
                )
            machine.clock = max(machine.clock, t0)
            queue = list(view["queue"])
            readings: list[Reading] = []
            after: list[Call] = []
            before: list[Call] = []
            while machine.clock < t1:
                if not machine.order:
                    if not queue:
                        machine.clock = t1  # idle: nothing to make
                        break
                    machine.order = queue.pop(0)
                    start = Call("machine", "orders", "start", {"order": machine.order})
                    (after if readings else before).append(start)
                reading = machine.sim.step()
                readings.append(reading)
                machine.clock += CYCLE_MIN[reading.quality]
                failed = reading.machine_failure
                self.books.operation(machine.name, CYCLE_MIN[reading.quality], failed=failed)
                order = self.orders[machine.order]
                if failed:
                    modes = [name for name in FLAG_NAMES if getattr(reading, name)]
                    self.books.failure(machine.name, machine.clock, modes)
                    why = "failure " + "+".join(modes).upper()
                    after.append(
                        Call(
                            "machine", "machines", "down", {"machine": machine.name, "reason": why}
                        )
                    )
                    stops.append(_stop(machine, "failure", why))
                    break
                order.done += 1
                if order.done >= order.operations:
                    after.append(Call("machine", "orders", "complete", {"order": order.id}))
                    self.books.order_finished(machine.clock, order.due_min)
                    self.finished.append(order.id)
                    machine.order = ""
                if (
                    config.strategy is Strategy.PREVENTIVE
                    and machine.sim.wear_min >= config.tool_change_at_min
                ):
                    why = f"preventive tool change at {machine.sim.wear_min} min of wear"
                    stops.append(_stop(machine, "planned", why))
                    break
            machine_calls.extend(before)
            if readings:
                reported[machine.name] = readings
                machine_calls.append(
                    Call(
                        "machine",
                        "machines",
                        "report",
                        {"machine": machine.name, "readings": [reading_args(r) for r in readings]},
                    )
                )
            machine_calls.extend(after)
        results = await self.chain.phase(machine_calls + [call for _, call in stops])
        for (machine, _), result in zip(stops, results[len(machine_calls) :], strict=True):
            machine.work_order = str(result["work_order"])
            self.known_work_orders.add(machine.work_order)
        return reported

    async def _oracle(self, t1: int, readings: dict[str, list[Reading]]) -> None:
        started = time.monotonic()
        # A validator reports on a block's readings in one transaction, so once the last
        # reading of each machine is final the others are too; every one is checked anyway.
        await asyncio.gather(
            *(self._final_prediction(name, batch[-1].seq) for name, batch in readings.items())
        )
        await asyncio.gather(
            *(
                self._final_prediction(name, reading.seq)
                for name, batch in readings.items()
                for reading in batch[:-1]
            )
        )
        self.seconds_waiting_for_oracle += time.monotonic() - started
        snapshot = await self.chain.query("machines")
        flagged = [
            m
            for m in self.machines.values()
            if m.stopped_at is None and snapshot[m.name]["status"] == "degraded"
        ]
        if not flagged:
            return
        work_orders = await self.chain.query("maintenance")
        for machine in flagged:
            opened = sorted(
                (
                    wo
                    for wo, record in work_orders.items()
                    if record["machine"] == machine.name
                    and record["source"] == "oracle"
                    and record["state"] == "open"
                    and wo not in self.known_work_orders
                ),
                key=lambda wo: int(wo[3:]),
            )
            if len(opened) != 1:
                raise ScenarioError(
                    f"machine {machine.name} was flagged at risk but has {len(opened)} new oracle "
                    "work orders"
                )
            machine.work_order = opened[0]
            self.known_work_orders.add(machine.work_order)
            machine.stopped_at, machine.stop_kind = max(t1, machine.clock), "oracle"
            self.books.machines[machine.name].flags += 1

    async def _final_prediction(self, machine: str, seq: int) -> None:
        deadline = time.monotonic() + PREDICTION_TIMEOUT_S
        while True:
            try:
                prediction = await self.chain.query("oracle", "prediction", machine, str(seq))
                if prediction["final"]:
                    return
            except ClientError as exc:
                if exc.status not in (400, 404):
                    raise
            if time.monotonic() > deadline:
                raise ScenarioError(
                    f"no final prediction on machine {machine} reading {seq} after "
                    f"{PREDICTION_TIMEOUT_S:.0f} s: check the validators' oracle status "
                    "(millchain cluster status, /status 'oracle')"
                )
            await asyncio.sleep(0.01)

    def _close_books(self) -> None:
        end = self.config.horizon_min
        for machine in self.machines.values():
            if machine.stopped_at is not None:
                self.books.downtime(
                    machine.name,
                    max(0, end - machine.stopped_at),
                    repair=machine.stop_kind == "failure",
                )
        for order in self.orders.values():
            if order.done >= order.operations:
                continue
            if order.due_min < end:
                self.books.orders.open_overdue += 1
            else:
                self.books.orders.open_in_time += 1


def _stop(machine: Machine, kind: str, why: str) -> tuple[Machine, Call]:
    """Take `machine` out of service at its clock; the planner's call opening its work order."""
    machine.stopped_at, machine.stop_kind = machine.clock, kind
    return machine, Call("planner", "maintenance", "open", {"machine": machine.name, "reason": why})
