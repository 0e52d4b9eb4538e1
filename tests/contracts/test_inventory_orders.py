"""Inventory beyond plain stock moves: order-held reservations, reorder points, deliveries."""

from __future__ import annotations

from typing import Any

from tests.contracts.conftest import Chain, place, state_except_nonces


def view(chain: Chain, item: str = "steel-sheet") -> Any:
    return chain.query("inventory", item, "main")


def test_plain_release_cannot_take_units_an_order_holds(factory: Chain) -> None:
    place(factory)
    factory.call("pat", "orders", "accept", order="ord-1")
    factory.call("pat", "inventory", "reserve", item="steel-sheet", location="main", qty=3)
    receipt = factory.call(
        "pat", "inventory", "release", item="steel-sheet", location="main", qty=4
    )
    assert receipt.error == (
        "cannot release 4 steel-sheet at main: only 5 reserved (2 of them held by orders)"
    )
    assert factory.call(
        "pat", "inventory", "release", item="steel-sheet", location="main", qty=3
    ).ok
    assert view(factory)["reserved"] == view(factory)["for_orders"] == 2


def test_crossing_the_reorder_point_emits_one_low_stock_event(factory: Chain) -> None:
    receipt = factory.call(
        "pat", "inventory", "set_reorder_point", item="steel-sheet", location="main", point=16
    )
    assert receipt.ok
    assert [e.kind for e in receipt.events] == ["reorder_point"]
    place(factory, quantity=2)
    place(factory, quantity=2)
    first = factory.call("pat", "orders", "accept", order="ord-1")  # available 20 -> 18
    assert "low_stock" not in [e.kind for e in first.events]
    second = factory.call("pat", "orders", "accept", order="ord-2")  # 18 -> 16: crosses
    (low,) = [e for e in second.events if e.kind == "low_stock"]
    assert low.subject == "item:steel-sheet@main"
    assert low.data == {"available": 16, "on_hand": 20, "reorder_point": 16}
    assert view(factory)["low"] is True
    factory.call("pat", "orders", "cancel", order="ord-2")
    assert view(factory)["low"] is False


def test_setting_a_reorder_point_above_available_reports_low_stock_at_once(factory: Chain) -> None:
    receipt = factory.call(
        "pat", "inventory", "set_reorder_point", item="zinc-bath", location="main", point=5
    )
    assert [e.kind for e in receipt.events] == ["reorder_point", "low_stock"]
    assert receipt.result["low"] is True


def test_a_delivery_is_received_once_by_its_reference(factory: Chain) -> None:
    receipt = factory.call(
        "sam", "inventory", "deliver", reference="PO-1001", item="shaft", location="main", qty=10
    )
    assert receipt.ok, receipt.error
    assert receipt.result == {"reference": "PO-1001", "on_hand": 26, "reserved": 0, "available": 26}
    subjects = [e.subject for e in receipt.events]
    assert subjects == ["item:shaft@main", "delivery:PO-1001"]
    before = state_except_nonces(factory)
    again = factory.call(
        "sam", "inventory", "deliver", reference="PO-1001", item="shaft", location="main", qty=10
    )
    assert again.error == "delivery PO-1001 was already received (10 shaft at main from sam)"
    assert state_except_nonces(factory) == before
