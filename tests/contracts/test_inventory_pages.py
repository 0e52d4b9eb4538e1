"""The inventory's paged query (`query_page`): at most NEWEST_QUERY_MAX stock records from the one
after a cursor, in key order, whether more follow and the cursor to go on from; of the whole
list, or of one item's locations. Both grow with every name a supplier receives; a page does
not."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import contracts.inventory as inventory_module
from contracts.errors import QueryError, QueryParameterError
from contracts.state import MemoryState
from tests.contracts.conftest import Chain

PAGE = 2


@pytest.fixture
def small_pages(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(inventory_module, "NEWEST_QUERY_MAX", PAGE)
    return PAGE


def receive(chain: Chain, *pairs: tuple[str, str]) -> None:
    """Commit one block in which the supplier receives one unit of each (item, location)."""
    txs = [
        chain.tx("sam", "inventory", "receive", item=item, location=location, qty=1)
        for item, location in pairs
    ]
    assert all(receipt.ok for receipt in chain.run(*txs).receipts)


def page(chain: Chain, after: str) -> dict[str, Any]:
    value: dict[str, Any] = chain.runtime.query_page(chain.state, "inventory", [], after=after)
    return value


def records(value: dict[str, Any]) -> list[str]:
    """A page's records as item/location, in the order answered."""
    return [
        f"{item}/{location}" for item, locations in value["items"].items() for location in locations
    ]


def all_pages(chain: Chain) -> Iterator[dict[str, Any]]:
    value = page(chain, "")
    yield value
    while value["more"]:
        value = page(chain, value["next_after"])
        yield value


class CountingReads:
    """The committed state, counting the records looked up one by one and those a bounded scan
    read; a whole-prefix scan fails the test."""

    def __init__(self, state: MemoryState) -> None:
        self._state = state
        self.gets = 0
        self.scanned = 0

    def get(self, key: bytes) -> bytes | None:
        self.gets += 1
        return self._state.get(key)

    def scan(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        raise AssertionError(f"scanned all of {prefix!a}")  # a page reads only its own

    def scan_last(self, prefix: bytes, limit: int) -> list[tuple[bytes, bytes]]:
        return self._state.scan_last(prefix, limit)

    def scan_after(self, prefix: bytes, after: bytes, limit: int) -> list[tuple[bytes, bytes]]:
        found = self._state.scan_after(prefix, after, limit)
        self.scanned += len(found)
        return found


def test_an_empty_inventory_is_one_page_with_nothing_more(chain: Chain) -> None:
    assert page(chain, "") == {"items": {}, "more": False, "next_after": None}


def test_a_page_answers_the_first_records_and_the_cursor_after_the_last(
    chain: Chain, small_pages: int
) -> None:
    receive(chain, ("bolts", "main"), ("steel", "annex"), ("steel", "main"))
    first = page(chain, "")
    assert records(first) == ["bolts/main", "steel/annex"]
    assert first["more"] is True
    assert first["next_after"] == "steel/annex"
    assert first["items"]["steel"]["annex"] == chain.query("inventory", "steel", "annex")


def test_the_cursor_continues_where_the_page_stopped(chain: Chain, small_pages: int) -> None:
    receive(chain, ("bolts", "main"), ("steel", "annex"), ("steel", "main"))
    second = page(chain, page(chain, "")["next_after"])
    assert second == {
        "items": {"steel": {"main": chain.query("inventory", "steel", "main")}},
        "more": False,
        "next_after": None,
    }


def test_exactly_a_page_of_records_has_nothing_more(chain: Chain, small_pages: int) -> None:
    receive(chain, ("bolts", "main"), ("steel", "main"))
    assert page(chain, "")["more"] is False
    assert page(chain, "")["next_after"] is None
    assert records(page(chain, "")) == ["bolts/main", "steel/main"]


def test_pages_together_are_the_whole_list_in_key_order(chain: Chain, small_pages: int) -> None:
    # Key order is byte order of "item/location": "a-b/" < "a.c/" < "a/", unlike name order.
    receive(chain, ("a", "main"), ("a", "x"), ("a-b", "main"), ("a.c", "main"), ("b", "main"))
    pages = list(all_pages(chain))
    assert [records(p) for p in pages] == [
        ["a-b/main", "a.c/main"],
        ["a/main", "a/x"],
        ["b/main"],
    ]
    whole = chain.query("inventory")
    assert [r for p in pages for r in records(p)] == [
        f"{item}/{location}" for item, locations in whole.items() for location in locations
    ]


def test_a_cursor_need_not_name_a_record(chain: Chain, small_pages: int) -> None:
    receive(chain, ("steel", "annex"), ("steel", "main"), ("zinc", "main"))
    assert records(page(chain, "steel/b")) == ["steel/main", "zinc/main"]
    assert page(chain, "zinc/main") == {"items": {}, "more": False, "next_after": None}


def test_a_page_looks_up_only_its_own_records(chain: Chain, small_pages: int) -> None:
    receive(chain, *((f"item-{n}", "main") for n in range(20)))
    reads = CountingReads(chain.state)
    value = chain.runtime.query_page(reads, "inventory", [], after="")
    assert len(records(value)) == small_pages
    # Each record answered reads its reorder point and what orders hold of it, nothing more;
    # the stock records read are the page's and the one that says more follow.
    assert reads.gets == 2 * small_pages
    assert reads.scanned == small_pages + 1


def test_an_item_named_like_a_query_form_is_just_an_item(chain: Chain) -> None:
    receive(chain, ("after", "main"), ("newest", "main"))
    assert chain.query("inventory", "after", "main")["on_hand"] == 1
    assert records(page(chain, "")) == ["after/main", "newest/main"]


@pytest.mark.parametrize(
    "after",
    [
        "steel",
        "steel/",
        "/main",
        "steel/main/extra",
        ".hidden/main",
        "steel/m\u00e4in",
        "steel main/x",
        "x" * 65 + "/main",
        "steel/" + "x" * 65,
    ],
)
def test_a_malformed_cursor_is_refused_with_what_is_expected(chain: Chain, after: str) -> None:
    receive(chain, ("steel", "main"))
    with pytest.raises(QueryParameterError, match="after must be an item/location"):
        page(chain, after)


def item_page(chain: Chain, item: str, after: str) -> dict[str, Any]:
    value: dict[str, Any] = chain.runtime.query_page(chain.state, "inventory", [item], after=after)
    return value


def test_one_items_locations_are_paged_by_location(chain: Chain, small_pages: int) -> None:
    # The neighbours' records (an item sorting just before and after, and one whose name
    # starts with this one's) stay out of its pages.
    receive(
        chain,
        ("steal", "main"),
        ("steel", "annex"),
        ("steel", "main"),
        ("steel", "yard"),
        ("steel-rod", "main"),
        ("steem", "main"),
    )
    first = item_page(chain, "steel", "")
    assert first == {
        "locations": {
            "annex": chain.query("inventory", "steel", "annex"),
            "main": chain.query("inventory", "steel", "main"),
        },
        "more": True,
        "next_after": "main",
    }
    second = item_page(chain, "steel", "main")
    assert second == {
        "locations": {"yard": chain.query("inventory", "steel", "yard")},
        "more": False,
        "next_after": None,
    }
    assert {**first["locations"], **second["locations"]} == chain.query("inventory", "steel")
    assert item_page(chain, "steel", "yard") == {"locations": {}, "more": False, "next_after": None}


def test_an_item_page_reads_only_its_own_records(chain: Chain, small_pages: int) -> None:
    receive(chain, *(("steel", f"bay-{n:02d}") for n in range(20)))
    reads = CountingReads(chain.state)
    value = chain.runtime.query_page(reads, "inventory", ["steel"], after="")
    assert len(value["locations"]) == small_pages
    assert reads.gets == 2 * small_pages
    assert reads.scanned == small_pages + 1


def test_an_item_with_no_stock_is_not_found_paged_or_not(chain: Chain) -> None:
    receive(chain, ("steel", "main"))
    with pytest.raises(QueryError, match="no stock records for zinc") as caught:
        item_page(chain, "zinc", "")
    assert not isinstance(caught.value, QueryParameterError)
    with pytest.raises(QueryError, match="no stock records for zinc"):
        chain.query("inventory", "zinc")


@pytest.mark.parametrize("after", ["steel/main", "/main", ".hidden", "m\u00e4in", "x" * 65])
def test_a_malformed_location_cursor_is_refused(chain: Chain, after: str) -> None:
    receive(chain, ("steel", "main"))
    with pytest.raises(QueryParameterError, match="after must be a location"):
        item_page(chain, "steel", after)


def test_a_single_stock_record_is_not_paged(chain: Chain) -> None:
    receive(chain, ("steel", "main"))
    with pytest.raises(QueryParameterError, match=r"one item's locations .*\['steel', 'main'\]"):
        chain.runtime.query_page(chain.state, "inventory", ["steel", "main"], after="")


@pytest.mark.parametrize("contract", ["orders", "maintenance", "machines", "identity"])
def test_other_contracts_page_nothing(chain: Chain, contract: str) -> None:
    with pytest.raises(QueryParameterError, match=f"contract {contract} pages no listing"):
        chain.runtime.query_page(chain.state, contract, [], after="")


def test_an_unknown_contract_is_not_a_bad_parameter(chain: Chain) -> None:
    with pytest.raises(QueryError, match="unknown contract") as caught:
        chain.runtime.query_page(chain.state, "nosuch", [], after="")
    assert not isinstance(caught.value, QueryParameterError)
