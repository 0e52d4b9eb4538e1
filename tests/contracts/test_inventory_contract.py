"""The inventory contract: each method's effect, its failures, its events and the queries."""

from __future__ import annotations

from typing import Any

import pytest

from contracts.errors import QueryError
from tests.contracts.conftest import Chain

STEEL_MAIN = ("inventory", "steel", "main")


# What a stock query adds to a record's counts when no order holds it and no reorder point is set.
PLAIN = {"for_orders": 0, "reorder_point": None, "low": False}


def stock(chain: Chain, item: str = "steel", location: str = "main") -> dict[str, Any]:
    """The counts of a stock record, as its query shows them."""
    view = chain.query("inventory", item, location)
    return {name: view[name] for name in ("on_hand", "reserved", "available")}


def test_receive_adds_to_on_hand_and_emits_an_event(chain: Chain) -> None:
    receipt = chain.call("sam", "inventory", "receive", item="steel", location="main", qty=40)
    assert receipt.ok
    assert receipt.result == {"on_hand": 40, "reserved": 0, "available": 40}
    (event,) = receipt.events
    assert (event.contract, event.kind, event.subject) == (
        "inventory",
        "receive",
        "item:steel@main",
    )
    assert event.data == {"qty": 40, "on_hand": 40, "reserved": 0}
    assert chain.call("sam", "inventory", "receive", item="steel", location="main", qty=2).ok
    assert stock(chain)["on_hand"] == 42


def test_reserve_moves_available_stock_to_reserved(stocked: Chain) -> None:
    assert stock(stocked) == {"on_hand": 100, "reserved": 30, "available": 70}


def test_reserve_beyond_available_fails_and_changes_nothing(stocked: Chain) -> None:
    before = stocked.state.items()
    result = stocked.run(
        stocked.tx("pat", "inventory", "reserve", item="steel", location="main", qty=71)
    )
    assert result.receipts[0].error == "cannot reserve 71 steel at main: only 70 available"
    assert stock(stocked) == {"on_hand": 100, "reserved": 30, "available": 70}
    changed = {key for key, value in stocked.state.items().items() if before.get(key) != value}
    assert all(key.startswith(b"account/") for key in changed)


def test_reserve_of_unknown_stock_fails(chain: Chain) -> None:
    receipt = chain.call("pat", "inventory", "reserve", item="gold", location="main", qty=1)
    assert receipt.error == "cannot reserve 1 gold at main: only 0 available"
    with pytest.raises(QueryError):
        stock(chain, "gold")


def test_release_returns_reserved_stock(stocked: Chain) -> None:
    assert stocked.call("pat", "inventory", "release", item="steel", location="main", qty=10).ok
    assert stock(stocked) == {"on_hand": 100, "reserved": 20, "available": 80}


def test_release_beyond_reserved_fails(stocked: Chain) -> None:
    receipt = stocked.call("pat", "inventory", "release", item="steel", location="main", qty=31)
    assert receipt.error == "cannot release 31 steel at main: only 30 reserved"


def test_consume_takes_reserved_units_out_of_stock(stocked: Chain) -> None:
    receipt = stocked.call("mia", "inventory", "consume", item="steel", location="main", qty=25)
    assert receipt.ok
    assert receipt.events[0].data == {"qty": 25, "on_hand": 75, "reserved": 5}
    assert stock(stocked) == {"on_hand": 75, "reserved": 5, "available": 70}


def test_consume_cannot_use_unreserved_stock(stocked: Chain) -> None:
    receipt = stocked.call("mia", "inventory", "consume", item="steel", location="main", qty=31)
    assert receipt.error == "cannot consume 31 steel at main: only 30 reserved"
    assert stock(stocked)["on_hand"] == 100


def test_consume_is_open_to_machines_but_not_suppliers(stocked: Chain) -> None:
    receipt = stocked.call("sam", "inventory", "consume", item="steel", location="main", qty=1)
    assert receipt.error == (
        "inventory.consume needs role planner or admin or machine; sender sam has supplier"
    )


def test_transfer_moves_available_stock_and_emits_two_events(stocked: Chain) -> None:
    receipt = stocked.call(
        "pat", "inventory", "transfer", item="steel", location="main", to="annex", qty=70
    )
    assert receipt.ok, receipt.error
    assert receipt.result == {
        "from": {"on_hand": 30, "reserved": 30, "available": 0},
        "to": {"on_hand": 70, "reserved": 0, "available": 70},
    }
    assert [(e.kind, e.subject, e.data) for e in receipt.events] == [
        ("transfer", "item:steel@main", {"qty": 70, "on_hand": 30, "reserved": 30, "to": "annex"}),
        ("transfer", "item:steel@annex", {"qty": 70, "on_hand": 70, "reserved": 0, "from": "main"}),
    ]


def test_transfer_cannot_move_reserved_stock(stocked: Chain) -> None:
    receipt = stocked.call(
        "pat", "inventory", "transfer", item="steel", location="main", to="annex", qty=71
    )
    assert receipt.error == "cannot transfer 71 steel from main: only 70 available"
    with pytest.raises(QueryError, match="no stock record for steel at annex"):
        stock(stocked, location="annex")


def test_transfer_to_the_same_location_fails(stocked: Chain) -> None:
    receipt = stocked.call(
        "pat", "inventory", "transfer", item="steel", location="main", to="main", qty=1
    )
    assert receipt.error == "cannot transfer steel from main to itself"


def test_receive_refuses_to_pass_the_on_hand_limit(chain: Chain) -> None:
    txs = [
        chain.tx("sam", "inventory", "receive", item="a", location="b", qty=10**12)
        for _ in range(1001)
    ]
    receipts = chain.run(*txs).receipts
    assert all(receipt.ok for receipt in receipts[:1000])
    assert receipts[1000].error == (
        f"receiving {10**12} a at b would exceed {10**15} on hand (has {10**15})"
    )
    assert stock(chain, "a", "b")["on_hand"] == 10**15


def test_query_all_items_groups_locations_under_items(stocked: Chain) -> None:
    stocked.call("sam", "inventory", "receive", item="bolts", location="main", qty=5)
    stocked.call("pat", "inventory", "transfer", item="steel", location="main", to="annex", qty=1)
    assert stocked.query("inventory") == {
        "bolts": {"main": {"on_hand": 5, "reserved": 0, "available": 5, **PLAIN}},
        "steel": {
            "annex": {"on_hand": 1, "reserved": 0, "available": 1, **PLAIN},
            "main": {"on_hand": 99, "reserved": 30, "available": 69, **PLAIN},
        },
    }
    assert list(stocked.query("inventory", "steel")) == ["annex", "main"]


def test_item_query_does_not_match_items_sharing_a_prefix(chain: Chain) -> None:
    chain.call("sam", "inventory", "receive", item="steel", location="main", qty=1)
    chain.call("sam", "inventory", "receive", item="steel2", location="main", qty=2)
    assert chain.query("inventory", "steel") == {
        "main": {"on_hand": 1, "reserved": 0, "available": 1, **PLAIN}
    }


@pytest.mark.parametrize(
    ("path", "message"),
    [
        (("ghost",), "no stock records for ghost"),
        (("steel", "nowhere"), "no stock record for steel at nowhere"),
        (("a", "b", "c"), "inventory queries take"),
        (("bad/name",), "is not an item or location name"),
    ],
)
def test_query_errors_are_clear(stocked: Chain, path: tuple[str, ...], message: str) -> None:
    with pytest.raises(QueryError, match=message):
        stocked.query("inventory", *path)
