"""The scenario's pure parts: the demand stream, the books and the verdict."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli.scenario.books import Books
from cli.scenario.config import CostModel, ScenarioConfig, Strategy
from cli.scenario.demand import operations_for, order_stream
from cli.scenario.report import verdict

CATALOG = json.loads(
    (Path(__file__).resolve().parents[2] / "configs" / "catalog.json").read_text("utf-8")
)


def test_the_demand_is_the_same_for_every_strategy_and_follows_the_seed() -> None:
    streams = [order_stream(ScenarioConfig(strategy=s), CATALOG, seed=7) for s in Strategy]
    assert streams[0] == streams[1] == streams[2]
    assert order_stream(ScenarioConfig(strategy=Strategy.REACTIVE), CATALOG, seed=8) != streams[0]


def test_the_demand_offers_about_the_asked_share_of_capacity() -> None:
    config = ScenarioConfig(strategy=Strategy.REACTIVE, hours=24 * 14, load=0.8)
    stream = order_stream(config, CATALOG, seed=3)
    products = {p["product"]: p for p in CATALOG["products"]}
    offered_ops = 0
    for order in stream:
        product = products[order.product]
        unit_ms = product["variants"][order.variant]["duration_ms"] + sum(
            product["options"][g]["choices"][c].get("duration_ms", 0)
            for g, c in order.options.items()
        )
        offered_ops += operations_for(unit_ms * order.quantity)
    capacity_ops = config.machines * config.horizon_min / 3.9
    assert 0.7 < offered_ops / capacity_ops < 0.9


def test_oee_is_availability_times_performance_times_quality() -> None:
    books = Books.for_machines(["m00", "m01"], planned_min_each=600)
    for _ in range(100):
        books.operation("m00", 4, failed=False)
    books.operation("m01", 4, failed=True)
    books.failure("m01", 4, ["osf"])
    books.downtime("m01", 300, repair=True)
    books.order_finished(finished_min=100, due_min=50)
    books.order_finished(finished_min=100, due_min=500)
    summary = books.summary(CostModel())
    assert summary["availability"] == pytest.approx(900 / 1200, abs=1e-4)
    assert summary["performance"] == pytest.approx(404 / 900, abs=1e-4)
    assert summary["quality"] == pytest.approx(100 / 101, abs=1e-4)
    assert summary["oee"] == pytest.approx(
        summary["availability"] * summary["performance"] * summary["quality"], abs=1e-3
    )
    assert summary["failure_modes"]["osf"] == 1
    assert summary["orders"]["on_time"] == 1 and summary["orders"]["late"] == 1
    costs = summary["cost_eur"]
    assert costs["repairs"] == 2_000 and costs["downtime"] == 1_500 and costs["late_orders"] == 250
    assert costs["total"] == sum(v for k, v in costs.items() if k != "total")


def test_an_order_still_open_past_its_due_time_costs_as_a_late_one() -> None:
    # Left uncharged, a strategy that finished fewer orders would look cheaper.
    books = Books.for_machines(["m00"], planned_min_each=600)
    books.order_finished(finished_min=100, due_min=50)
    books.orders.open_overdue = 2
    assert books.summary(CostModel(late_order_eur=250))["cost_eur"]["late_orders"] == 3 * 250


def test_the_verdict_says_when_a_claim_does_not_hold() -> None:
    def run(failures: int, tool_changes: int, cost: int) -> dict[str, object]:
        return {
            "business": {
                "failures": failures,
                "tool_changes": tool_changes,
                "cost_eur": {"total": cost},
            }
        }

    lines = verdict(
        {
            "reactive": run(10, 0, 9_000),
            "preventive": run(5, 4, 7_000),
            "predictive": run(12, 3, 8_000),
        }
    )
    assert lines[0].startswith("Fewer failures than reactive: does NOT hold")
    assert lines[1].startswith("Fewer tool changes than preventive: holds")
    assert lines[2] == (
        "The lowest cost: does NOT hold (EUR: reactive 9,000, preventive 7,000, predictive 8,000)."
    )


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("machines", 1, "--machines must be between 2"),
        ("machines", 65, "--machines must be between 2 .* and 64"),
        ("hours", 0, "--hours must be between"),
        ("load", 0.0, "--load must be in"),
        ("nodes", 3, "--nodes must be at least 4"),
    ],
)
def test_bad_settings_are_refused_with_the_option_named(
    field: str, value: object, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        ScenarioConfig(strategy=Strategy.REACTIVE, **{field: value})  # type: ignore[arg-type]
