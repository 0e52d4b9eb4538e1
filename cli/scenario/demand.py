"""Customer demand: a seeded stream of orders for custom products, the same for every strategy.

Each product goes to the kind of cell that has every capability it may need. Orders of a product
arrive as a Poisson process whose rate offers `load` times that cell kind's capacity: the rate is
the capacity in operations per step divided by the expected operations of one order, computed
exactly over the catalog's variants and options (each drawn uniformly) and quantities 1-3.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from cli.scenario.config import CELLS, CYCLE_MIN, IDEAL_CYCLE_MIN, ScenarioConfig, cell_of
from oracle.telemetry.simulator import QUALITY_SHARES

QUANTITIES: Final = (1, 2, 3)
MEAN_CYCLE_MIN: Final = sum(CYCLE_MIN[q] * share for q, share in QUALITY_SHARES.items())


@dataclass(frozen=True, slots=True)
class OrderRequest:
    step: int
    product: str
    variant: str
    options: dict[str, str]
    quantity: int

    def args(self) -> dict[str, Any]:
        return {
            "product": self.product,
            "variant": self.variant,
            "options": dict(self.options),
            "quantity": self.quantity,
        }


def operations_for(duration_ms: int) -> int:
    """Operations an order of `duration_ms` of work needs."""
    return max(1, math.ceil(duration_ms / 60_000 / IDEAL_CYCLE_MIN))


def _configurations(product: dict[str, Any]) -> list[tuple[str, dict[str, str], int]]:
    """Every (variant, options, unit duration in ms) of a product."""
    groups = sorted(product.get("options", {}).items())
    found = []
    for variant, spec in sorted(product["variants"].items()):
        for picks in itertools.product(*(sorted(group["choices"]) for _, group in groups)):
            options = {name: pick for (name, _), pick in zip(groups, picks, strict=True)}
            duration = int(spec.get("duration_ms", 0)) + sum(
                int(group["choices"][pick].get("duration_ms", 0))
                for (_, group), pick in zip(groups, picks, strict=True)
            )
            found.append((variant, options, duration))
    return found


def _requirements(product: dict[str, Any]) -> set[str]:
    needed: set[str] = set()
    for spec in product["variants"].values():
        needed.update(spec.get("requires", ()))
    for group in product.get("options", {}).values():
        for choice in group["choices"].values():
            needed.update(choice.get("requires", ()))
    return needed


def _cell_for(product: dict[str, Any]) -> str:
    needed = _requirements(product)
    for name, capabilities in CELLS:
        if needed <= set(capabilities):
            return name
    raise ValueError(f"no kind of cell can make every configuration of {product['product']}")


def order_stream(config: ScenarioConfig, catalog: dict[str, Any], seed: int) -> list[OrderRequest]:
    """Every order the customers will place, in arrival order."""
    rng = np.random.default_rng(seed)
    machines_per_cell = {name: 0 for name, _ in CELLS}
    for index in range(config.machines):
        machines_per_cell[cell_of(index)[0]] += 1
    products = sorted(catalog["products"], key=lambda p: p["product"])
    by_cell: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in CELLS}
    for product in products:
        by_cell[_cell_for(product)].append(product)
    rates: list[tuple[dict[str, Any], list[tuple[str, dict[str, str], int]], float]] = []
    for cell, members in by_cell.items():
        if not members:
            continue
        capacity_ops = machines_per_cell[cell] * config.step_min / MEAN_CYCLE_MIN
        for product in members:
            configurations = _configurations(product)
            expected_ops = sum(
                operations_for(duration * quantity)
                for _, _, duration in configurations
                for quantity in QUANTITIES
            ) / (len(configurations) * len(QUANTITIES))
            rate = config.load * capacity_ops / len(members) / expected_ops
            rates.append((product, configurations, rate))
    stream: list[OrderRequest] = []
    for step in range(config.steps):
        for product, configurations, rate in rates:
            for _ in range(int(rng.poisson(rate))):
                variant, options, _ = configurations[int(rng.integers(len(configurations)))]
                quantity = QUANTITIES[int(rng.integers(len(QUANTITIES)))]
                stream.append(
                    OrderRequest(
                        step=step,
                        product=str(product["product"]),
                        variant=variant,
                        options=options,
                        quantity=quantity,
                    )
                )
    return stream
