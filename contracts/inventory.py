"""The inventory contract: stock per item and location, its key layout and its queries.

Each (item, location) has a record of `on_hand` units and how many of them are `reserved` for
planned work. Every method keeps 0 <= reserved <= on_hand: receiving adds to on_hand, reserving
and releasing move units between available (on_hand - reserved) and reserved, consuming takes
reserved units out of stock, and transfers move available units to another location. Item and
location names cannot contain "/", so a key splits back into its names unambiguously.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from contracts.contract import Call, Contract, method
from contracts.errors import ConflictError, InsufficientStockError, QueryError, StateError
from contracts.schema import NAME_PATTERN, Int, Str
from contracts.state import StateReader, decode_map, read_map, write_map
from ledger.genesis import Role

STOCK_PREFIX = b"inventory/stock/"
QTY_MAX = 10**12
# Far below the 64-bit limit of the encoding, and no factory holds more of anything.
ON_HAND_MAX = 10**15

_NAME = Str(min_len=1, max_len=64, pattern=NAME_PATTERN)
_QTY = Int(min=1, max=QTY_MAX)
_PLANNERS = (Role.PLANNER, Role.ADMIN)


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
            or not isinstance(on_hand, int)
            or not isinstance(reserved, int)
            or isinstance(on_hand, bool)
            or isinstance(reserved, bool)
            or not 0 <= reserved <= on_hand
        ):
            raise StateError(f"stock record at {key!r} is malformed: {value!r}")
        return cls(on_hand=on_hand, reserved=reserved)


EMPTY_STOCK = Stock(on_hand=0, reserved=0)


def stock_key(item: str, location: str) -> bytes:
    return STOCK_PREFIX + f"{item}/{location}".encode()


def item_prefix(item: str) -> bytes:
    return STOCK_PREFIX + f"{item}/".encode()


def split_stock_key(key: bytes) -> tuple[str, str]:
    item, _, location = key[len(STOCK_PREFIX) :].decode("utf-8").partition("/")
    return item, location


def read_stock(state: StateReader, item: str, location: str) -> Stock:
    """The stock record, or an empty one where nothing was ever received."""
    key = stock_key(item, location)
    value = read_map(state, key)
    return EMPTY_STOCK if value is None else Stock.from_map(key, value)


def stock_records(state: StateReader, prefix: bytes = STOCK_PREFIX) -> list[tuple[str, str, Stock]]:
    """(item, location, stock) for every record under `prefix`, sorted by item then location."""
    return [
        (*split_stock_key(key), Stock.from_map(key, decode_map(key, raw)))
        for key, raw in state.scan(prefix)
    ]


def subject(item: str, location: str) -> str:
    return f"item:{item}@{location}"


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
        return _store(call, kind="receive", item=item, location=location, qty=qty, after=after)

    @method(roles=_PLANNERS, args={"item": _NAME, "location": _NAME, "qty": _QTY})
    def reserve(self, call: Call, *, item: str, location: str, qty: int) -> dict[str, int]:
        """Set aside available units for planned work."""
        stock = read_stock(call.state, item, location)
        if stock.available < qty:
            raise InsufficientStockError(
                f"cannot reserve {qty} {item} at {location}: only {stock.available} available"
            )
        after = Stock(on_hand=stock.on_hand, reserved=stock.reserved + qty)
        return _store(call, kind="reserve", item=item, location=location, qty=qty, after=after)

    @method(roles=_PLANNERS, args={"item": _NAME, "location": _NAME, "qty": _QTY})
    def release(self, call: Call, *, item: str, location: str, qty: int) -> dict[str, int]:
        """Return reserved units to available stock."""
        stock = read_stock(call.state, item, location)
        if stock.reserved < qty:
            raise InsufficientStockError(
                f"cannot release {qty} {item} at {location}: only {stock.reserved} reserved"
            )
        after = Stock(on_hand=stock.on_hand, reserved=stock.reserved - qty)
        return _store(call, kind="release", item=item, location=location, qty=qty, after=after)

    @method(
        roles=(Role.PLANNER, Role.ADMIN, Role.MACHINE),
        args={"item": _NAME, "location": _NAME, "qty": _QTY},
    )
    def consume(self, call: Call, *, item: str, location: str, qty: int) -> dict[str, int]:
        """Use up reserved units: they leave both reserved and on-hand stock."""
        stock = read_stock(call.state, item, location)
        if stock.reserved < qty:
            raise InsufficientStockError(
                f"cannot consume {qty} {item} at {location}: only {stock.reserved} reserved"
            )
        after = Stock(on_hand=stock.on_hand - qty, reserved=stock.reserved - qty)
        return _store(call, kind="consume", item=item, location=location, qty=qty, after=after)

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
            "from": _store(
                call,
                kind="transfer",
                item=item,
                location=location,
                qty=qty,
                after=source_after,
                to=to,
            ),
            "to": _store(
                call,
                kind="transfer",
                item=item,
                location=to,
                qty=qty,
                after=target_after,
                from_=location,
            ),
        }

    def query(self, state: StateReader, path: Sequence[str]) -> Any:
        if len(path) > 2:
            raise QueryError(
                f"inventory queries take [], [item] or [item, location], got {list(path)!r}"
            )
        for name in path:
            if (
                not isinstance(name, str)
                or re.fullmatch(NAME_PATTERN, name) is None
                or len(name) > 64
            ):
                raise QueryError(
                    f"{name!r} is not an item or location name (1-64 of {NAME_PATTERN})"
                )
        if len(path) == 2:
            value = read_map(state, stock_key(path[0], path[1]))
            if value is None:
                raise QueryError(f"no stock record for {path[0]} at {path[1]}")
            return Stock.from_map(stock_key(path[0], path[1]), value).summary()
        if len(path) == 1:
            records = stock_records(state, item_prefix(path[0]))
            if not records:
                raise QueryError(f"no stock records for {path[0]}")
            return {location: stock.summary() for _, location, stock in records}
        items: dict[str, dict[str, dict[str, int]]] = {}
        for item, location, stock in stock_records(state):
            items.setdefault(item, {})[location] = stock.summary()
        return items


def _store(
    call: Call,
    *,
    kind: str,
    item: str,
    location: str,
    qty: int,
    after: Stock,
    to: str | None = None,
    from_: str | None = None,
) -> dict[str, int]:
    """Write a record that keeps the invariant and emit its event; returns the record's summary."""
    if not 0 <= after.reserved <= after.on_hand:
        raise AssertionError(f"inventory invariant broken for {item} at {location}: {after}")
    write_map(call.state, stock_key(item, location), after.to_map())
    data: dict[str, Any] = {"qty": qty, **after.to_map()}
    if to is not None:
        data["to"] = to
    if from_ is not None:
        data["from"] = from_
    call.emit(kind, subject(item, location), data)
    return after.summary()
