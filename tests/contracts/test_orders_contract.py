"""The orders contract: an order's life, who may move it, and what each move does elsewhere."""

from __future__ import annotations

from typing import Any

import pytest

from contracts import orders as orders_module
from contracts import scheduling
from contracts.errors import QueryError
from contracts.order_state import LEGAL_MOVES, TRANSITIONS, OrderState
from tests.contracts.conftest import Chain, NoWholeScans, place, state_except_nonces


def stock(chain: Chain, item: str) -> Any:
    return chain.query("inventory", item, "main")


def order(chain: Chain, order_id: str = "ord-1") -> Any:
    return chain.query("orders", order_id)


# (who, method, extra args): one move of an order.
Step = tuple[str, str, dict[str, Any]]


def advance(chain: Chain, order_id: str, *steps: Step) -> None:
    """Run (who, method, extra args) steps on an order, each in its own block, all succeeding."""
    for who, method_name, args in steps:
        receipt = chain.call(who, "orders", method_name, order=order_id, **args)
        assert receipt.ok, (method_name, receipt.error)


TO_PRODUCTION: tuple[Step, ...] = (
    ("pat", "accept", {}),
    ("pat", "schedule", {}),
    ("mia", "start", {}),
)


def test_place_resolves_the_bill_of_materials_and_assigns_sequential_ids(factory: Chain) -> None:
    receipt = place(factory, options={"finish": "powder-coat"}, quantity=3)
    assert receipt.ok, receipt.error
    assert receipt.result["id"] == "ord-1"
    assert receipt.result["bom"] == {"bolt-m8": 12, "powder-black": 3, "steel-sheet": 3}
    assert receipt.result["requires"] == ["bend", "coat", "laser-cut"]
    assert receipt.result["duration_ms"] == 3 * (600_000 + 300_000)
    assert receipt.result["state"] == "created"
    assert receipt.result["customer"] == "alice"
    (event,) = receipt.events
    assert (event.contract, event.kind, event.subject) == ("orders", "place", "order:ord-1")
    assert place(factory, who="bob").result["id"] == "ord-2"


def test_full_life_from_placement_to_delivery(factory: Chain) -> None:
    assert place(factory).ok
    advance(factory, "ord-1", *TO_PRODUCTION)
    assert order(factory)["state"] == "in_production"
    assert factory.query("machines", "m1")["producing"] == "ord-1"
    advance(
        factory,
        "ord-1",
        ("mia", "complete", {}),
        ("aud", "qc_pass", {"note": "flat within 0.1 mm"}),
        ("pat", "ship", {}),
        ("alice", "deliver", {}),
    )
    final = order(factory)
    assert final["state"] == "delivered"
    assert final["reservation"] is None
    assert stock(factory, "steel-sheet")["on_hand"] == 18
    assert stock(factory, "steel-sheet")["reserved"] == 0
    machine = factory.query("machines", "m1")
    assert machine["producing"] == ""
    # start at block 3 (t = 3000 ms), complete at block 4: one second of production
    assert machine["production_ms"] == 1_000


def test_accept_reserves_materials_against_the_order(factory: Chain) -> None:
    place(factory)
    receipt = factory.call("pat", "orders", "accept", order="ord-1")
    assert receipt.ok
    assert stock(factory, "bolt-m8")["reserved"] == 8
    assert stock(factory, "bolt-m8")["for_orders"] == 8
    assert order(factory)["reservation"] == {
        "location": "main",
        "lines": {"bolt-m8": 8, "steel-sheet": 2},
    }
    reserve_events = [e for e in receipt.events if e.kind == "reserve"]
    assert [e.subject for e in reserve_events] == ["item:bolt-m8@main", "item:steel-sheet@main"]
    assert all(e.data["order"] == "ord-1" for e in reserve_events)


def test_accept_without_enough_stock_names_every_shortage_and_changes_nothing(
    factory: Chain,
) -> None:
    place(factory, variant="large", quantity=11)
    before = state_except_nonces(factory)
    receipt = factory.call("pat", "orders", "accept", order="ord-1")
    assert receipt.error == (
        "cannot reserve materials for ord-1 at main: needs 22 steel-sheet (only 20 available)"
    )
    assert state_except_nonces(factory) == before


def test_cancel_releases_exactly_the_orders_reservation(factory: Chain) -> None:
    place(factory)
    place(factory, who="bob", quantity=1)
    advance(factory, "ord-1", ("pat", "accept", {}))
    advance(factory, "ord-2", ("pat", "accept", {}), ("pat", "schedule", {}))
    assert stock(factory, "steel-sheet")["reserved"] == 3
    receipt = factory.call("alice", "orders", "cancel", order="ord-1", reason="changed my mind")
    assert receipt.ok
    assert stock(factory, "steel-sheet")["reserved"] == 1
    assert stock(factory, "bolt-m8")["reserved"] == 4
    assert order(factory)["state"] == "cancelled"
    assert order(factory)["reservation"] is None
    assert factory.call("bob", "orders", "cancel", order="ord-2").ok
    assert factory.query("machines", "m1")["queue"] == []
    assert stock(factory, "steel-sheet")["reserved"] == 0


def test_customer_may_not_cancel_or_confirm_someone_elses_order(factory: Chain) -> None:
    place(factory)
    receipt = factory.call("bob", "orders", "cancel", order="ord-1")
    assert receipt.error == "order ord-1 belongs to alice; bob may not cancel it"


def test_cancel_is_refused_once_production_started(factory: Chain) -> None:
    place(factory)
    advance(factory, "ord-1", *TO_PRODUCTION)
    receipt = factory.call("alice", "orders", "cancel", order="ord-1")
    assert receipt.error == (
        "cannot cancel order ord-1: it is in_production, "
        "cancel needs accepted or created or scheduled"
    )


def test_qc_fail_sends_the_order_back_into_production_on_its_machine(factory: Chain) -> None:
    place(factory)
    advance(factory, "ord-1", *TO_PRODUCTION, ("mia", "complete", {}))
    receipt = factory.call("aud", "orders", "qc_fail", order="ord-1", note="burr on edge")
    assert receipt.ok
    assert receipt.result["state"] == "in_production"
    assert receipt.result["qc_failures"] == 1
    assert factory.query("machines", "m1")["producing"] == "ord-1"
    advance(factory, "ord-1", ("mia", "complete", {}), ("aud", "qc_pass", {}))
    assert order(factory)["state"] == "passed"
    # Materials were consumed once, at the first completion.
    assert stock(factory, "steel-sheet")["on_hand"] == 18


def test_the_auditor_fails_the_check_of_an_order_made_on_a_machine_with_an_operator(
    factory: Chain,
) -> None:
    # Rework follows the quality role's decision; the operator check is for starting work.
    register = factory.call(
        "root",
        "machines",
        "register",
        machine="m4",
        type="cell",
        capabilities=["bend", "laser-cut"],
        operator="mia",
    )
    assert register.ok, register.error
    place(factory)
    advance(
        factory,
        "ord-1",
        ("pat", "accept", {}),
        ("pat", "schedule", {"machine": "m4"}),
        ("mia", "start", {}),
        ("mia", "complete", {}),
    )
    receipt = factory.call("aud", "orders", "qc_fail", order="ord-1", note="burr")
    assert receipt.ok, receipt.error
    assert factory.query("machines", "m4")["producing"] == "ord-1"


def test_a_full_queue_takes_no_more_orders_and_the_rule_passes_it_by(
    factory: Chain, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Moving a queue emits an event per order within a transaction's 1,024: a longer one could
    # never be moved, and its machine never be reported down, taken or flagged again.
    monkeypatch.setattr(scheduling, "QUEUE_MAX", 2)
    monkeypatch.setattr(orders_module, "QUEUE_MAX", 2)
    for _ in range(4):
        place(factory)
    for order_id in ("ord-1", "ord-2"):
        advance(factory, order_id, ("pat", "accept", {}), ("pat", "schedule", {"machine": "m1"}))
    advance(factory, "ord-3", ("pat", "accept", {}))
    full = factory.call("pat", "orders", "schedule", order="ord-3", machine="m1")
    assert full.error == "machine m1 has 2 orders queued, the most it takes"
    picked = factory.call("pat", "orders", "schedule", order="ord-3", machine="")
    assert picked.ok and picked.result["machine"] == "m2"
    advance(factory, "ord-4", ("pat", "accept", {}), ("pat", "schedule", {"machine": "m2"}))
    assert factory.call("mia", "machines", "down", machine="m3").ok  # m3 cannot bend anyway
    advance(factory, "ord-1", ("mia", "start", {}))  # m1 now queues ord-2 alone: room for one
    down = factory.call("mia", "machines", "down", machine="m2", reason="jam")
    assert down.ok, down.error
    moved = {m["order"]: m["to"] for m in down.result["moves"]}
    assert moved == {"ord-3": "m1", "ord-4": ""}  # m1 took one, then was full


def test_an_order_needing_more_materials_than_a_transaction_can_consume_is_refused(
    factory: Chain, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(orders_module, "ORDER_MATERIALS_MAX", 2)
    receipt = place(factory, options={"finish": "powder-coat"})
    assert receipt.error is not None
    assert "needs 3 materials; an order may use at most 2" in receipt.error
    assert place(factory).ok  # raw brackets need two


def test_schedule_picks_the_least_loaded_capable_machine_ties_by_id(factory: Chain) -> None:
    for _ in range(3):
        place(factory)
    for order_id in ("ord-1", "ord-2", "ord-3"):
        advance(factory, order_id, ("pat", "accept", {}), ("pat", "schedule", {}))
    machines = factory.query("machines")
    assert machines["m1"]["queue"] == ["ord-1", "ord-3"]
    assert machines["m2"]["queue"] == ["ord-2"]
    assert machines["m3"]["queue"] == []


def test_schedule_on_a_machine_lacking_a_capability_is_refused(factory: Chain) -> None:
    place(factory, options={"finish": "galvanized"})
    advance(factory, "ord-1", ("pat", "accept", {}))
    receipt = factory.call("pat", "orders", "schedule", order="ord-1", machine="m1")
    assert receipt.error == "machine m1 lacks galvanize needed by order ord-1"
    assert factory.call("pat", "orders", "schedule", order="ord-1").result["machine"] == "m2"


def test_start_needs_an_idle_machine(factory: Chain) -> None:
    place(factory)
    place(factory)
    for order_id in ("ord-1", "ord-2"):
        advance(factory, order_id, ("pat", "accept", {}), ("pat", "schedule", {"machine": "m1"}))
    advance(factory, "ord-1", ("mia", "start", {}))
    receipt = factory.call("mia", "orders", "start", order="ord-2")
    assert receipt.error == "machine m1 is busy producing order ord-1"


@pytest.mark.parametrize(
    ("who", "method_name", "needed"),
    [
        ("pat", "place", "customer or admin"),
        ("alice", "accept", "planner or admin"),
        ("alice", "schedule", "planner or admin"),
        ("alice", "start", "machine or planner or admin"),
        ("pat", "qc_pass", "auditor or admin"),
        ("mia", "ship", "planner or admin"),
        ("pat", "deliver", "customer or admin"),
        ("mia", "cancel", "customer or planner or admin"),
    ],
)
def test_each_move_is_reserved_to_the_role_that_owns_it(
    factory: Chain, who: str, method_name: str, needed: str
) -> None:
    place(factory)
    args = (
        {"product": "bracket", "variant": "small", "quantity": 1}
        if method_name == "place"
        else {"order": "ord-1"}
    )
    before = state_except_nonces(factory)
    receipt = factory.call(who, "orders", method_name, **args)
    assert receipt.error is not None
    assert receipt.error.startswith(f"orders.{method_name} needs role {needed}; sender {who} has")
    assert state_except_nonces(factory) == before


def test_the_transition_table_only_moves_forward_or_to_cancelled() -> None:
    assert (OrderState.DELIVERED, OrderState.CANCELLED) not in LEGAL_MOVES
    assert not any(before is OrderState.CANCELLED for before, _ in LEGAL_MOVES)
    assert not any(before is OrderState.DELIVERED for before, _ in LEGAL_MOVES)
    assert TRANSITIONS["qc_fail"][1] is OrderState.IN_PRODUCTION


def test_every_move_is_an_event_on_the_order_with_both_states(factory: Chain) -> None:
    place(factory)
    advance(factory, "ord-1", *TO_PRODUCTION)
    receipt = factory.call("mia", "orders", "complete", order="ord-1")
    (move,) = [e for e in receipt.events if e.subject == "order:ord-1"]
    assert move.kind == "complete"
    assert move.data == {
        "from": "in_production",
        "to": "quality_check",
        "by": "mia",
        "machine": "m1",
    }
    consumed = [e for e in receipt.events if e.kind == "consume"]
    assert {e.subject for e in consumed} == {"item:bolt-m8@main", "item:steel-sheet@main"}


def test_the_newest_orders_query_answers_the_last_ones_and_the_total(
    factory: Chain, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert factory.query("orders", "newest") == {"orders": {}, "total": 0}
    for _ in range(3):
        assert place(factory).ok
    monkeypatch.setattr(orders_module, "NEWEST_QUERY_MAX", 2)
    newest = factory.runtime.query(NoWholeScans(factory.state), "orders", ["newest"])
    assert list(newest["orders"]) == ["ord-2", "ord-3"]
    assert newest["orders"]["ord-3"] == factory.query("orders")["ord-3"]
    assert newest["total"] == 3
    with pytest.raises(QueryError, match=r"\['newest'\] \(the newest 2 and the total\)"):
        factory.query("orders", "newest", "5")


def test_order_queries_list_all_and_reject_bad_ids(factory: Chain) -> None:
    place(factory)
    assert list(factory.query("orders")) == ["ord-1"]
    with pytest.raises(QueryError, match="not an order id"):
        factory.query("orders", "order-1")
    with pytest.raises(QueryError, match="no order ord-9"):
        factory.query("orders", "ord-9")
