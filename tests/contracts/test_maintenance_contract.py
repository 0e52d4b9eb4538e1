"""The maintenance contract: work orders open, taken and closed, and their effect on machines."""

from __future__ import annotations

import pytest

from contracts import maintenance as maintenance_module
from tests.contracts.conftest import Chain, NoWholeScans, place, state_except_nonces
from tests.contracts.test_machines_contract import queue_two_on_m1, reading


def open_on(chain: Chain, machine: str = "m1", reason: str = "noisy bearing") -> str:
    receipt = chain.call("max", "maintenance", "open", machine=machine, reason=reason)
    assert receipt.ok, receipt.error
    work_order: str = receipt.result["work_order"]
    return work_order


def test_work_order_ids_are_sequential_and_opening_leaves_the_machine_running(
    factory: Chain,
) -> None:
    assert open_on(factory) == "wo-1"
    assert open_on(factory, "m2") == "wo-2"
    assert factory.query("machines", "m1")["status"] == "running"
    record = factory.query("maintenance", "wo-1")
    assert (record["state"], record["machine"], record["opened_by"]) == ("open", "m1", "max")


def test_the_newest_work_orders_query_answers_the_last_ones_and_the_total(
    factory: Chain, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert factory.query("maintenance", "newest") == {"work_orders": {}, "total": 0}
    for machine in ("m1", "m2", "m3"):
        open_on(factory, machine)
    monkeypatch.setattr(maintenance_module, "NEWEST_QUERY_MAX", 2)
    newest = factory.runtime.query(NoWholeScans(factory.state), "maintenance", ["newest"])
    assert list(newest["work_orders"]) == ["wo-2", "wo-3"]
    assert newest["work_orders"]["wo-3"] == factory.query("maintenance")["wo-3"]
    assert newest["total"] == 3


def test_taking_a_work_order_puts_the_machine_under_maintenance_and_moves_its_queue(
    factory: Chain,
) -> None:
    queue_two_on_m1(factory)
    open_on(factory)
    receipt = factory.call("max", "maintenance", "take", work_order="wo-1")
    assert receipt.ok, receipt.error
    assert receipt.result["moves"] == [
        {"order": "ord-1", "to": "m2"},
        {"order": "ord-2", "to": "m2"},
    ]
    m1 = factory.query("machines", "m1")
    assert (m1["status"], m1["work_order"]) == ("maintenance", "wo-1")
    assert factory.call("max", "machines", "up", machine="m1").error == (
        "machine m1 is under maintenance: close work order wo-1"
    )


def test_closing_records_what_was_done_resets_tool_wear_and_returns_the_machine(
    factory: Chain,
) -> None:
    factory.call("mia", "machines", "report", machine="m1", readings=[reading(1, wear=180)])
    assert factory.query("machines", "m1")["tool_wear_min"] == 180
    open_on(factory, reason="tool wear 180 min")
    factory.call("max", "maintenance", "take", work_order="wo-1")  # t = 4000
    factory.call("pat", "orders", "place")  # a failing tx; time passes
    receipt = factory.call(
        "max",
        "maintenance",
        "close",
        work_order="wo-1",
        actions=["tool_replaced", "inspected"],
        note="new insert",
    )  # t = 6000
    assert receipt.ok, receipt.error
    record = factory.query("maintenance", "wo-1")
    assert (record["state"], record["actions"], record["note"]) == (
        "closed",
        ["inspected", "tool_replaced"],
        "new insert",
    )
    m1 = factory.query("machines", "m1")
    assert (m1["status"], m1["work_order"], m1["tool_wear_min"]) == ("running", "", 0)
    assert m1["downtime_ms"] == 2_000
    factory.call("mia", "machines", "report", machine="m1", readings=[reading(2, wear=185)])
    assert factory.query("machines", "m1")["tool_wear_min"] == 5
    kinds = [(e.contract, e.kind, e.subject) for e in receipt.events]
    assert ("machines", "tool_replaced", "machine:m1") in kinds
    assert ("maintenance", "close", "workorder:wo-1") in kinds


def test_only_the_taker_or_an_admin_closes_a_work_order(factory: Chain) -> None:
    open_on(factory)
    factory.call("max", "maintenance", "take", work_order="wo-1")
    factory.call(
        "root",
        "identity",
        "add",
        name="kim",
        public_key=factory.keys("kim").public_key,
        roles=["maintainer"],
    )
    receipt = factory.call("kim", "maintenance", "close", work_order="wo-1", actions=["other"])
    assert receipt.error == "work order wo-1 was taken by max; only they or an admin may close it"
    assert factory.call("root", "maintenance", "close", work_order="wo-1", actions=["other"]).ok


def test_work_orders_move_only_forward(factory: Chain) -> None:
    open_on(factory)
    before = state_except_nonces(factory)
    receipt = factory.call("max", "maintenance", "close", work_order="wo-1", actions=["other"])
    assert receipt.error == "work order wo-1 is open, close needs taken"
    assert state_except_nonces(factory) == before
    factory.call("max", "maintenance", "take", work_order="wo-1")
    assert factory.call("max", "maintenance", "take", work_order="wo-1").error == (
        "work order wo-1 is taken, take needs open"
    )


def test_maintenance_pauses_the_order_in_production_until_the_work_order_closes(
    factory: Chain,
) -> None:
    place(factory)
    for who, method_name in (("pat", "accept"), ("pat", "schedule"), ("mia", "start")):
        factory.call(who, "orders", method_name, order="ord-1")
    open_on(factory)
    taken = factory.call("max", "maintenance", "take", work_order="wo-1")
    assert taken.ok, taken.error
    machine = factory.query("machines", "m1")
    assert (machine["status"], machine["producing"]) == ("maintenance", "ord-1")
    assert factory.query("orders", "ord-1")["state"] == "in_production"
    # Paused: it cannot be completed under maintenance (its time worked is booked already).
    refused = factory.call("mia", "orders", "complete", order="ord-1")
    assert (
        refused.error == "order ord-1 is paused: machine m1 is under maintenance (work order wo-1)"
    )
    worked = factory.query("machines", "m1")["production_ms"]
    for _ in range(3):
        factory.run()  # time under maintenance is not production time
    closed = factory.call(
        "max", "maintenance", "close", work_order="wo-1", actions=["tool_replaced"]
    )
    assert closed.ok, closed.error
    assert factory.query("machines", "m1")["producing"] == "ord-1"
    resumed_ms = factory.query("machines", "m1")["producing_since_ms"]
    done = factory.call("mia", "orders", "complete", order="ord-1")
    assert done.ok, done.error
    finished_ms = factory.query("orders", "ord-1")["updated_ms"]
    machine = factory.query("machines", "m1")
    assert machine["production_ms"] == worked + finished_ms - resumed_ms
    kinds = [e.kind for e in taken.events + closed.events]
    assert "production_pause" in kinds and "production_resume" in kinds
