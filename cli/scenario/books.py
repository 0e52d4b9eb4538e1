"""The plant's books: what happened to machines and orders, in simulated minutes, and what it
cost. Pure bookkeeping: the step loop records events here, and `summary` turns them into the
figures a strategy is judged by.

Overall equipment effectiveness (OEE) is availability x performance x quality, over a plant that
is planned to run around the clock:

- availability: time in service over planned time. A machine is out of service from a failure
  to the end of its repair, and from stopping for maintenance (a planned tool change, or a flag
  by the oracle, including the wait for a maintainer) to the end of it;
- performance: time spent on operations, at their ideal cycle, over time in service. Time in
  service without work to do (waiting for orders, or for orders moved elsewhere) is the loss;
- quality: good operations over all operations. The part being made when a machine fails is
  scrap and is made again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cli.scenario.config import CostModel
from oracle.telemetry.reading import FLAG_NAMES


@dataclass(slots=True)
class MachineBook:
    machine: str
    busy_min: int = 0
    operations: int = 0
    scrap: int = 0
    failures: int = 0
    failure_modes: dict[str, int] = field(default_factory=lambda: {m: 0 for m in FLAG_NAMES})
    repair_down_min: int = 0
    maintenance_down_min: int = 0
    tool_changes: int = 0  # planned ones; a repair after a failure also replaces the tool
    flags: int = 0

    @property
    def down_min(self) -> int:
        return self.repair_down_min + self.maintenance_down_min


@dataclass(slots=True)
class OrderBook:
    placed: int = 0
    on_time: int = 0
    late: int = 0
    open_overdue: int = 0
    open_in_time: int = 0
    lateness_min: list[int] = field(default_factory=list)


@dataclass(slots=True)
class Books:
    machines: dict[str, MachineBook]
    planned_min: int
    orders: OrderBook = field(default_factory=OrderBook)
    failures: list[dict[str, Any]] = field(default_factory=list)  # {"t_min", "machine", "modes"}
    maintenance: list[dict[str, Any]] = field(default_factory=list)  # {"t_min", "machine", ...}
    availability_by_step: list[float] = field(default_factory=list)

    @classmethod
    def for_machines(cls, names: list[str], planned_min_each: int) -> Books:
        return cls(
            machines={name: MachineBook(name) for name in names},
            planned_min=planned_min_each * len(names),
        )

    def operation(self, machine: str, cycle_min: int, *, failed: bool) -> None:
        book = self.machines[machine]
        book.operations += 1
        book.busy_min += cycle_min
        if failed:
            book.scrap += 1

    def failure(self, machine: str, t_min: int, modes: list[str]) -> None:
        book = self.machines[machine]
        book.failures += 1
        for mode in modes:
            book.failure_modes[mode] += 1
        self.failures.append({"t_min": t_min, "machine": machine, "modes": modes})

    def downtime(self, machine: str, minutes: int, *, repair: bool) -> None:
        book = self.machines[machine]
        if repair:
            book.repair_down_min += minutes
        else:
            book.maintenance_down_min += minutes

    def maintained(self, machine: str, t_min: int, kind: str, *, planned: bool) -> None:
        if planned:
            self.machines[machine].tool_changes += 1
        self.maintenance.append({"t_min": t_min, "machine": machine, "kind": kind})

    def order_finished(self, finished_min: int, due_min: int) -> None:
        if finished_min <= due_min:
            self.orders.on_time += 1
        else:
            self.orders.late += 1
            self.orders.lateness_min.append(finished_min - due_min)

    def summary(self, costs: CostModel) -> dict[str, Any]:
        books = list(self.machines.values())
        down = sum(b.down_min for b in books)
        busy = sum(b.busy_min for b in books)
        operations = sum(b.operations for b in books)
        scrap = sum(b.scrap for b in books)
        in_service = self.planned_min - down
        availability = in_service / self.planned_min if self.planned_min else 0.0
        performance = busy / in_service if in_service else 0.0
        quality = (operations - scrap) / operations if operations else 0.0
        failures = sum(b.failures for b in books)
        tool_changes = sum(b.tool_changes for b in books)
        modes = {mode: sum(b.failure_modes[mode] for b in books) for mode in FLAG_NAMES}
        cost = {
            "repairs": failures * costs.failure_repair_eur,
            "tool_changes": tool_changes * costs.tool_change_eur,
            "downtime": round(down / 60 * costs.downtime_eur_per_hour),
            "scrap": scrap * costs.scrap_eur,
            # Also the orders still open past their due time at the end: late whatever comes
            # next (uncharged, a strategy that finished fewer orders would look cheaper).
            "late_orders": (self.orders.late + self.orders.open_overdue) * costs.late_order_eur,
        }
        lateness = sorted(self.orders.lateness_min)
        return {
            "failures": failures,
            "failure_modes": modes,
            "tool_changes": tool_changes,
            "oracle_flags": sum(b.flags for b in books),
            "downtime_h": round(down / 60, 2),
            "repair_downtime_h": round(sum(b.repair_down_min for b in books) / 60, 2),
            "maintenance_downtime_h": round(sum(b.maintenance_down_min for b in books) / 60, 2),
            "operations": operations,
            "scrap": scrap,
            "oee": round(availability * performance * quality, 4),
            "availability": round(availability, 4),
            "performance": round(performance, 4),
            "quality": round(quality, 4),
            "orders": {
                "placed": self.orders.placed,
                "on_time": self.orders.on_time,
                "late": self.orders.late,
                "open_overdue": self.orders.open_overdue,
                "open_in_time": self.orders.open_in_time,
                "median_lateness_min": lateness[len(lateness) // 2] if lateness else 0,
            },
            "cost_eur": {**cost, "total": sum(cost.values())},
            "machines": {
                b.machine: {
                    "operations": b.operations,
                    "failures": b.failures,
                    "tool_changes": b.tool_changes,
                    "flags": b.flags,
                    "downtime_h": round(b.down_min / 60, 2),
                }
                for b in books
            },
        }
