"""The inventory contract: its methods (stock moves, supplier deliveries, reorder points) and
its queries. The state layout, the invariants and the internal API that orders use live in
`contracts.stock`.

Each (item, location) has `on_hand` units, `reserved` of them for planned work (some of those held
by orders, see `contracts.stock`), and an optional reorder point. Receiving and deliveries add to
on_hand, reserving and releasing move units between available and reserved, consuming takes
reserved units out of stock, and transfers move available units to another location.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from contracts.contract import NEWEST_QUERY_MAX, Call, Contract, method
from contracts.errors import (
    ConflictError,
    InsufficientStockError,
    QueryError,
    QueryParameterError,
)
from contracts.schema import NAME_PATTERN, Int, Str
from contracts.state import StateReader, read_map, write_map
from contracts.stock import (
    ON_HAND_MAX,
    QTY_MAX,
    STOCK_PREFIX,
    Stock,
    delivery_key,
    emit_low_stock,
    is_low,
    item_prefix,
    read_allocated,
    read_delivery,
    read_stock,
    set_reorder_point,
    split_stock_key,
    stock_key,
    stock_records,
    stock_records_after,
    stock_view,
    store_stock,
    subject,
)
from ledger.genesis import Role

__all__ = [
    "ON_HAND_MAX",
    "QTY_MAX",
    "STOCK_PREFIX",
    "InventoryContract",
    "Stock",
    "item_prefix",
    "read_stock",
    "split_stock_key",
    "stock_key",
    "stock_records",
    "subject",
]

_NAME = Str(min_len=1, max_len=64, pattern=NAME_PATTERN)
_QTY = Int(min=1, max=QTY_MAX)
_PLANNERS = (Role.PLANNER, Role.ADMIN)


class InventoryContract(Contract):
    """Stock of each item at each location: on hand, reserved for work, and available."""

    name = "inventory"

    @method(
        roles=(Role.SUPPLIER, Role.ADMIN),
        args={"item": _NAME, "location": _NAME, "qty": _QTY},
    )
    def receive(self, call: Call, *, item: str, location: str, qty: int) -> dict[str, int]:
        """Add delivered units to a location's stock."""
        stock = read_stock(call.state, item, location)
        if stock.on_hand + qty > ON_HAND_MAX:
            raise ConflictError(
                f"receiving {qty} {item} at {location} would exceed {ON_HAND_MAX} on hand "
                f"(has {stock.on_hand})"
            )
        after = Stock(on_hand=stock.on_hand + qty, reserved=stock.reserved)
        return store_stock(call, kind="receive", item=item, location=location, qty=qty, after=after)

    @method(roles=_PLANNERS, args={"item": _NAME, "location": _NAME, "qty": _QTY})
    def reserve(self, call: Call, *, item: str, location: str, qty: int) -> dict[str, int]:
        """Set aside available units for planned work."""
        stock = read_stock(call.state, item, location)
        if stock.available < qty:
            raise InsufficientStockError(
                f"cannot reserve {qty} {item} at {location}: only {stock.available} available"
            )
        after = Stock(on_hand=stock.on_hand, reserved=stock.reserved + qty)
        return store_stock(call, kind="reserve", item=item, location=location, qty=qty, after=after)

    @method(roles=_PLANNERS, args={"item": _NAME, "location": _NAME, "qty": _QTY})
    def release(self, call: Call, *, item: str, location: str, qty: int) -> dict[str, int]:
        """Return reserved units to available stock."""
        stock = _free_reserved(call, "release", item, location, qty)
        after = Stock(on_hand=stock.on_hand, reserved=stock.reserved - qty)
        return store_stock(call, kind="release", item=item, location=location, qty=qty, after=after)

    @method(
        roles=(Role.PLANNER, Role.ADMIN, Role.MACHINE),
        args={"item": _NAME, "location": _NAME, "qty": _QTY},
    )
    def consume(self, call: Call, *, item: str, location: str, qty: int) -> dict[str, int]:
        """Use up reserved units: they leave both reserved and on-hand stock."""
        stock = _free_reserved(call, "consume", item, location, qty)
        after = Stock(on_hand=stock.on_hand - qty, reserved=stock.reserved - qty)
        return store_stock(call, kind="consume", item=item, location=location, qty=qty, after=after)

    @method(
        roles=_PLANNERS,
        args={"item": _NAME, "location": _NAME, "to": _NAME, "qty": _QTY},
    )
    def transfer(
        self, call: Call, *, item: str, location: str, to: str, qty: int
    ) -> dict[str, Any]:
        """Move available units of an item from one location to another."""
        if to == location:
            raise ConflictError(f"cannot transfer {item} from {location} to itself")
        source = read_stock(call.state, item, location)
        if source.available < qty:
            raise InsufficientStockError(
                f"cannot transfer {qty} {item} from {location}: only {source.available} available"
            )
        target = read_stock(call.state, item, to)
        if target.on_hand + qty > ON_HAND_MAX:
            raise ConflictError(
                f"transferring {qty} {item} to {to} would exceed {ON_HAND_MAX} on hand "
                f"(has {target.on_hand})"
            )
        source_after = Stock(on_hand=source.on_hand - qty, reserved=source.reserved)
        target_after = Stock(on_hand=target.on_hand + qty, reserved=target.reserved)
        return {
            "from": store_stock(
                call,
                kind="transfer",
                item=item,
                location=location,
                qty=qty,
                after=source_after,
                extra={"to": to},
            ),
            "to": store_stock(
                call,
                kind="transfer",
                item=item,
                location=to,
                qty=qty,
                after=target_after,
                extra={"from": location},
            ),
        }

    @method(
        roles=(Role.SUPPLIER, Role.ADMIN),
        args={
            "reference": Str(min_len=1, max_len=64, pattern=NAME_PATTERN),
            "item": _NAME,
            "location": _NAME,
            "qty": _QTY,
        },
    )
    def deliver(
        self, call: Call, *, reference: str, item: str, location: str, qty: int
    ) -> dict[str, Any]:
        """Receive a supplier delivery once: a delivery reference can be booked only one time."""
        booked = read_delivery(call.state, reference)
        if booked is not None:
            raise ConflictError(
                f"delivery {reference} was already received ({booked.get('qty')} "
                f"{booked.get('item')} at {booked.get('location')} from {booked.get('supplier')})"
            )
        stock = read_stock(call.state, item, location)
        if stock.on_hand + qty > ON_HAND_MAX:
            raise ConflictError(
                f"receiving {qty} {item} at {location} would exceed {ON_HAND_MAX} on hand "
                f"(has {stock.on_hand})"
            )
        write_map(
            call.state,
            delivery_key(reference),
            {
                "item": item,
                "location": location,
                "qty": qty,
                "supplier": call.sender_name,
                "at_ms": call.block.timestamp_ms,
            },
        )
        after = Stock(on_hand=stock.on_hand + qty, reserved=stock.reserved)
        summary = store_stock(
            call,
            kind="deliver",
            item=item,
            location=location,
            qty=qty,
            after=after,
            extra={"reference": reference, "supplier": call.sender_name},
        )
        call.emit(
            "deliver",
            f"delivery:{reference}",
            {"item": item, "location": location, "qty": qty, "supplier": call.sender_name},
        )
        return {"reference": reference, **summary}

    @method(
        roles=_PLANNERS,
        args={"item": _NAME, "location": _NAME, "point": Int(min=0, max=QTY_MAX)},
    )
    def set_reorder_point(
        self, call: Call, *, item: str, location: str, point: int
    ) -> dict[str, Any]:
        """Set the level of available units at or below which the item is low on stock."""
        set_reorder_point(call, item, location, point)
        stock = read_stock(call.state, item, location)
        call.emit("reorder_point", subject(item, location), {"point": point})
        if is_low(stock, point):
            emit_low_stock(call, item, location, stock, point)
        return stock_view(call.state, item, location, stock)

    def query(self, state: StateReader, path: Sequence[str]) -> Any:
        if len(path) > 2:
            raise QueryError(
                f"inventory queries take [], [item] or [item, location], got {list(path)!a}"
            )
        for name in path:
            _check_name(name)
        if len(path) == 2:
            value = read_map(state, stock_key(path[0], path[1]))
            if value is None:
                raise QueryError(f"no stock record for {path[0]} at {path[1]}")
            stock = Stock.from_map(stock_key(path[0], path[1]), value)
            return stock_view(state, path[0], path[1], stock)
        if len(path) == 1:
            records = stock_records(state, item_prefix(path[0]))
            if not records:
                raise QueryError(f"no stock records for {path[0]}")
            return {
                location: stock_view(state, path[0], location, stock)
                for _, location, stock in records
            }
        return _by_item(state, stock_records(state))

    def query_page(self, state: StateReader, path: Sequence[str], *, after: str) -> Any:
        """At most NEWEST_QUERY_MAX stock records, in key order from the one after the cursor
        `after` ("" for the first), whether records follow, and the cursor of the last one
        answered while more follow (else None). Item and location names are anyone's choice, so
        no path segment is free to name this form (an item could be called "newest").

        The whole list (path []): {"items": {item: {location: record}}, "more", "next_after"},
        the cursor an "item/location". One item's locations (path [item]): {"locations":
        {location: record}, "more", "next_after"}, the cursor a location; an item with no stock
        record at all is a QueryError, as unpaged."""
        if len(path) > 1:
            raise QueryParameterError(
                f"inventory pages its whole list (path []) or one item's locations ([item]), got "
                f"{list(path)!a}: read one stock record ([item, location]) without 'after'"
            )
        if path:
            return self._item_page(state, path[0], after)
        start = STOCK_PREFIX if after == "" else stock_key(*_cursor(after))
        page, more = _page(state, STOCK_PREFIX, start)
        return {
            "items": _by_item(state, page),
            "more": more,
            "next_after": f"{page[-1][0]}/{page[-1][1]}" if more else None,
        }

    def _item_page(self, state: StateReader, item: str, after: str) -> dict[str, Any]:
        _check_name(item)
        if after != "" and not _is_name(after):
            raise QueryParameterError(
                f"after must be a location (the next_after of the previous page, 1-64 of "
                f"{NAME_PATTERN}), or empty for the first page; got {after[:140]!a}"
            )
        prefix = item_prefix(item)
        start = prefix if after == "" else stock_key(item, after)
        page, more = _page(state, prefix, start)
        if not page and after == "":
            raise QueryError(f"no stock records for {item}")
        return {
            "locations": {
                location: stock_view(state, item, location, stock) for _, location, stock in page
            },
            "more": more,
            "next_after": page[-1][1] if more else None,
        }


def _page(
    state: StateReader, prefix: bytes, start: bytes
) -> tuple[list[tuple[str, str, Stock]], bool]:
    """The stock records of a page: at most NEWEST_QUERY_MAX under `prefix` after `start`, and
    whether more follow (one more is read to know)."""
    records = stock_records_after(state, prefix, start, NEWEST_QUERY_MAX + 1)
    return records[:NEWEST_QUERY_MAX], len(records) > NEWEST_QUERY_MAX


def _check_name(name: str) -> None:
    if not _is_name(name):
        raise QueryError(f"{name!a} is not an item or location name (1-64 of {NAME_PATTERN})")


def _is_name(text: object) -> bool:
    return (
        isinstance(text, str) and len(text) <= 64 and re.fullmatch(NAME_PATTERN, text) is not None
    )


def _cursor(after: str) -> tuple[str, str]:
    """The (item, location) an `after` cursor names."""
    item, slash, location = after.partition("/")
    if not (slash and _is_name(item) and _is_name(location)):
        raise QueryParameterError(
            f"after must be an item/location (the next_after of the previous page, each name "
            f"1-64 of {NAME_PATTERN}), or empty for the first page; got {after[:140]!a}"
        )
    return item, location


def _by_item(
    state: StateReader, records: Sequence[tuple[str, str, Stock]]
) -> dict[str, dict[str, dict[str, Any]]]:
    """Stock records as the queries answer them: {item: {location: record}}."""
    items: dict[str, dict[str, dict[str, Any]]] = {}
    for item, location, stock in records:
        items.setdefault(item, {})[location] = stock_view(state, item, location, stock)
    return items


def _free_reserved(call: Call, action: str, item: str, location: str, qty: int) -> Stock:
    """The stock record, if `qty` reserved units are not held by orders; else why not."""
    stock = read_stock(call.state, item, location)
    held = read_allocated(call.state, item, location)
    if stock.reserved - held < qty:
        detail = f" ({held} of them held by orders)" if held else ""
        raise InsufficientStockError(
            f"cannot {action} {qty} {item} at {location}: only {stock.reserved} reserved{detail}"
        )
    return stock
