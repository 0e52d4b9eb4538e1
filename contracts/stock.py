"""Stock records and the one layout of inventory state; the internal API other contracts call.

Every key the inventory contract owns is built here:

    inventory/stock/<item>/<location>      {"on_hand", "reserved"}     the stock record
    inventory/allocated/<item>/<location>  {"qty"}                     reserved units held by orders
    inventory/reorder/<item>/<location>    {"point"}                   the reorder point
    inventory/order/<order id>             {"location", "lines"}       one order's reservation
    inventory/delivery/<reference>         {"item", "location", ...}   a received supplier delivery

Invariant, kept by `store_stock` on every write: 0 <= allocated <= reserved <= on_hand. Units
reserved through `reserve_for_order` are also counted as allocated, so a plain `release` or
`consume` can never take units an order holds, and cancelling an order releases exactly what it
reserved. A stock record whose available units (on_hand - reserved) fall to or below its reorder
point emits one `low_stock` event as it crosses the point. Item and location names cannot
contain "/", so a key splits back into its names unambiguously.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

from contracts.contract import Call
from contracts.errors import ConflictError, InsufficientStockError, StateError
from contracts.state import RecordMemo, StateReader, decode_map, read_map, write_map

CONTRACT = "inventory"
STOCK_PREFIX = b"inventory/stock/"
ALLOCATED_PREFIX = b"inventory/allocated/"
REORDER_PREFIX = b"inventory/reorder/"
ORDER_RESERVATION_PREFIX = b"inventory/order/"
DELIVERY_PREFIX = b"inventory/delivery/"
QTY_MAX = 10**12
# Far below the 64-bit limit of the encoding, and no factory holds more of anything.
ON_HAND_MAX = 10**15


@dataclass(frozen=True, slots=True, kw_only=True)
class Stock:
    on_hand: int
    reserved: int

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved

    def to_map(self) -> dict[str, int]:
        return {"on_hand": self.on_hand, "reserved": self.reserved}

    def summary(self) -> dict[str, int]:
        return {"on_hand": self.on_hand, "reserved": self.reserved, "available": self.available}

    @classmethod
    def from_map(cls, key: bytes, value: dict[str, Any]) -> Stock:
        on_hand, reserved = value.get("on_hand"), value.get("reserved")
        if (
            set(value) != {"on_hand", "reserved"}
            or not _is_int(on_hand)
            or not _is_int(reserved)
            or not 0 <= reserved <= on_hand
        ):
            raise StateError(f"stock record at {key!a} is malformed: {value!a}")
        return cls(on_hand=on_hand, reserved=reserved)


EMPTY_STOCK = Stock(on_hand=0, reserved=0)


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


# Keys


def _pair(item: str, location: str) -> bytes:
    return f"{item}/{location}".encode()


def stock_key(item: str, location: str) -> bytes:
    return STOCK_PREFIX + _pair(item, location)


def allocated_key(item: str, location: str) -> bytes:
    return ALLOCATED_PREFIX + _pair(item, location)


def reorder_key(item: str, location: str) -> bytes:
    return REORDER_PREFIX + _pair(item, location)


def order_reservation_key(order_id: str) -> bytes:
    return ORDER_RESERVATION_PREFIX + order_id.encode()


def delivery_key(reference: str) -> bytes:
    return DELIVERY_PREFIX + reference.encode()


def item_prefix(item: str) -> bytes:
    return STOCK_PREFIX + f"{item}/".encode()


def split_stock_key(key: bytes) -> tuple[str, str]:
    item, _, location = key[len(STOCK_PREFIX) :].decode("utf-8").partition("/")
    return item, location


def subject(item: str, location: str) -> str:
    return f"item:{item}@{location}"


# Reads


_STOCKS: RecordMemo[Stock] = RecordMemo(Stock.from_map)


def read_stock(state: StateReader, item: str, location: str) -> Stock:
    """The stock record, or an empty one where nothing was ever received."""
    found = _STOCKS.read(state, stock_key(item, location))
    return EMPTY_STOCK if found is None else found


def stock_records(state: StateReader, prefix: bytes = STOCK_PREFIX) -> list[tuple[str, str, Stock]]:
    """(item, location, stock) for every record under `prefix`, sorted by item then location."""
    return [
        (*split_stock_key(key), Stock.from_map(key, decode_map(key, raw)))
        for key, raw in state.scan(prefix)
    ]


def stock_records_after(
    state: StateReader, prefix: bytes, after: bytes, limit: int
) -> list[tuple[str, str, Stock]]:
    """(item, location, stock) for the first `limit` records under `prefix` (STOCK_PREFIX, or
    an item's) whose key sorts after `after` (a stock key, or the prefix for the first), in key
    order; the store reads only those."""
    return [
        (*split_stock_key(key), Stock.from_map(key, decode_map(key, raw)))
        for key, raw in state.scan_after(prefix, after, limit)
    ]


def _read_int(state: StateReader, key: bytes, field: str) -> int | None:
    value = read_map(state, key)
    if value is None:
        return None
    number = value.get(field)
    if not _is_int(number) or number < 0:
        raise StateError(f"record at {key!a} has no non-negative integer {field}: {value!a}")
    return int(number)


def read_allocated(state: StateReader, item: str, location: str) -> int:
    return _read_int(state, allocated_key(item, location), "qty") or 0


def read_reorder_point(state: StateReader, item: str, location: str) -> int | None:
    return _read_int(state, reorder_key(item, location), "point")


def is_low(stock: Stock, reorder_point: int | None) -> bool:
    return reorder_point is not None and stock.available <= reorder_point


def stock_view(state: StateReader, item: str, location: str, stock: Stock) -> dict[str, Any]:
    """The query form of a record: its summary, what orders hold, the reorder point, low or not."""
    point = read_reorder_point(state, item, location)
    return {
        **stock.summary(),
        "for_orders": read_allocated(state, item, location),
        "reorder_point": point,
        "low": is_low(stock, point),
    }


def read_order_reservation(state: StateReader, order_id: str) -> dict[str, Any] | None:
    """{"location": str, "lines": {item: qty}} reserved for the order, or None."""
    return read_map(state, order_reservation_key(order_id))


def read_delivery(state: StateReader, reference: str) -> dict[str, Any] | None:
    return read_map(state, delivery_key(reference))


# Writes


def store_stock(
    call: Call,
    *,
    kind: str,
    item: str,
    location: str,
    qty: int,
    after: Stock,
    allocated: int | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, int]:
    """Write a record that keeps the invariant, emit its event (and `low_stock` on crossing the
    reorder point); returns the record's summary. `allocated` replaces the order-held count."""
    held = read_allocated(call.state, item, location) if allocated is None else allocated
    if not 0 <= held <= after.reserved <= after.on_hand:
        raise AssertionError(f"inventory invariant broken for {item} at {location}: {after}")
    before = read_stock(call.state, item, location)
    write_map(call.state, stock_key(item, location), after.to_map())
    if allocated is not None:
        if allocated:
            write_map(call.state, allocated_key(item, location), {"qty": allocated})
        else:
            call.state.delete(allocated_key(item, location))
    call.emit(kind, subject(item, location), {"qty": qty, **after.to_map(), **(extra or {})})
    point = read_reorder_point(call.state, item, location)
    if is_low(after, point) and not is_low(before, point):
        emit_low_stock(call, item, location, after, point)
    return after.summary()


def emit_low_stock(call: Call, item: str, location: str, stock: Stock, point: int | None) -> None:
    call.emit(
        "low_stock",
        subject(item, location),
        {"available": stock.available, "on_hand": stock.on_hand, "reorder_point": point},
    )


def set_reorder_point(call: Call, item: str, location: str, point: int) -> None:
    write_map(call.state, reorder_key(item, location), {"point": point})


# The internal API of order reservations (the orders contract calls these)


def reserve_for_order(call: Call, order_id: str, location: str, lines: Mapping[str, int]) -> None:
    """Reserve every line at `location` for the order, all or nothing; the record remembers them.

    Raises InsufficientStockError naming every short item.
    """
    own = call.acting_as(CONTRACT)
    if read_order_reservation(own.state, order_id) is not None:
        raise ConflictError(f"order {order_id} already holds a reservation")
    items = sorted(lines)
    shortages = [
        f"{lines[item]} {item} (only {read_stock(own.state, item, location).available} available)"
        for item in items
        if read_stock(own.state, item, location).available < lines[item]
    ]
    if shortages:
        raise InsufficientStockError(
            f"cannot reserve materials for {order_id} at {location}: needs {', '.join(shortages)}"
        )
    for item in items:
        stock = read_stock(own.state, item, location)
        store_stock(
            own,
            kind="reserve",
            item=item,
            location=location,
            qty=lines[item],
            after=Stock(on_hand=stock.on_hand, reserved=stock.reserved + lines[item]),
            allocated=read_allocated(own.state, item, location) + lines[item],
            extra={"order": order_id},
        )
    write_map(
        own.state,
        order_reservation_key(order_id),
        {"location": location, "lines": {item: lines[item] for item in items}},
    )


def release_for_order(call: Call, order_id: str) -> None:
    """Return exactly what the order reserved to available stock (nothing if it holds nothing)."""
    _settle_order(call, order_id, consume=False)


def consume_for_order(call: Call, order_id: str) -> None:
    """Use up exactly what the order reserved: it leaves reserved and on-hand stock."""
    _settle_order(call, order_id, consume=True)


def _settle_order(call: Call, order_id: str, *, consume: bool) -> None:
    own = call.acting_as(CONTRACT)
    reservation = read_order_reservation(own.state, order_id)
    if reservation is None:
        return
    location = reservation.get("location")
    lines = reservation.get("lines")
    if not isinstance(location, str) or not isinstance(lines, dict):
        raise StateError(f"reservation of {order_id} is malformed: {reservation!a}")
    for item in sorted(lines):
        qty = lines[item]
        stock = read_stock(own.state, item, location)
        held = read_allocated(own.state, item, location)
        if not _is_int(qty) or qty > held:
            raise StateError(f"reservation of {order_id} holds {qty!a} {item}, only {held} held")
        on_hand = stock.on_hand - qty if consume else stock.on_hand
        store_stock(
            own,
            kind="consume" if consume else "release",
            item=item,
            location=location,
            qty=qty,
            after=Stock(on_hand=on_hand, reserved=stock.reserved - qty),
            allocated=held - qty,
            extra={"order": order_id},
        )
    own.state.delete(order_reservation_key(order_id))
