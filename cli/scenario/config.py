"""The scenario's parameters, its maintenance strategies and the cost model it is judged by."""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any, Final

from oracle.telemetry.reading import Quality

MACHINES_MAX: Final = 64  # machine seeds spawned from the scenario's seed (plant.seeds)
HOURS_MAX: Final = 24 * 14  # two simulated weeks

# Minutes one operation takes: the tool's cutting time (the data set's wear per operation, 2, 3
# and 5 min for L, M and H) plus a minute of handling.
CYCLE_MIN: Final = {Quality.L: 3, Quality.M: 4, Quality.H: 6}
# The ideal cycle an order's work content is counted in: an order of D minutes needs
# ceil(D / IDEAL_CYCLE_MIN) operations (the mean cycle over the quality mix is 3.9 min).
IDEAL_CYCLE_MIN: Final = 4
# Two kinds of cell, alternating by machine index: each product can be made on half the fleet.
CELLS: Final = (
    ("press-cell", ("bend", "coat", "galvanize", "laser-cut")),
    ("mill-cell", ("assembly", "cnc-mill")),
)
LOCATION: Final = "main"


class Strategy(enum.StrEnum):
    REACTIVE = "reactive"  # repair only after a failure
    PREVENTIVE = "preventive"  # change the tool at a fixed wear, repair failures
    PREDICTIVE = "predictive"  # act on the oracle's final predictions, repair failures


@dataclass(frozen=True, slots=True)
class CostModel:
    """What each event costs, in euros. The defaults are round figures for a small machining
    shop; every one can be set on the command line, and the report states the ones used."""

    failure_repair_eur: int = 2_000  # unplanned repair after a failure: parts, labour, a tool
    tool_change_eur: int = 150  # a planned tool change: the tool and half an hour of labour
    downtime_eur_per_hour: int = 300  # lost contribution of one machine standing still
    scrap_eur: int = 80  # the part being made when a machine fails
    late_order_eur: int = 250  # penalty for an order finished after its due time

    def to_map(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class ScenarioConfig:
    strategy: Strategy
    seed: int = 1
    machines: int = 6
    hours: int = 24
    nodes: int = 4
    step_min: int = 15  # simulated minutes per step: readings are committed once a step
    response_min: int = 30  # from a failure or an oracle work order to a maintainer taking it
    repair_min: int = 120  # an unplanned repair
    tool_change_min: int = 30  # a planned tool change (preventive or predictive)
    tool_change_at_min: int = 150  # preventive: change the tool at this much wear
    lead_time_h: int = 8  # an order is due this long after it is placed
    load: float = 0.8  # offered work as a share of the fleet's capacity
    horizon: int = 10  # the fault model predicts failure within this many operations
    training_operations: int = 3_000  # per machine, for the fault model
    costs: CostModel = field(default_factory=CostModel)

    def __post_init__(self) -> None:
        checks = (
            (
                2 <= self.machines <= MACHINES_MAX,
                f"--machines must be between 2 (one per kind of cell) and {MACHINES_MAX}",
            ),
            (1 <= self.hours <= HOURS_MAX, f"--hours must be between 1 and {HOURS_MAX}"),
            (3 <= self.step_min <= 120, "--step-min must be between 3 and 120"),
            (self.response_min >= 0, "--response-min must not be negative"),
            (self.repair_min > 0, "--repair-min must be positive"),
            (self.tool_change_min > 0, "--tool-change-min must be positive"),
            (self.tool_change_at_min > 0, "--tool-change-at must be positive"),
            (self.lead_time_h > 0, "--lead-time must be positive"),
            (0.0 < self.load <= 2.0, "--load must be in (0, 2]"),
            (1 <= self.horizon <= 100, "--horizon must be between 1 and 100"),
            (self.nodes >= 4, "--nodes must be at least 4"),
        )
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    @property
    def steps(self) -> int:
        return self.hours * 60 // self.step_min

    @property
    def horizon_min(self) -> int:
        return self.steps * self.step_min

    def to_map(self) -> dict[str, Any]:
        data = asdict(self)
        data["strategy"] = str(self.strategy)
        return data


def machine_names(machines: int) -> list[str]:
    width = max(2, len(str(machines - 1)))
    return [f"m{index:0{width}d}" for index in range(machines)]


def cell_of(index: int) -> tuple[str, tuple[str, ...]]:
    return CELLS[index % len(CELLS)]
