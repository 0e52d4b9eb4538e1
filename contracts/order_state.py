"""Orders as records: the state machine of an order, and the one layout of order state.

    orders/next                                  {"n"}: the number of the next order
    orders/order/<n, 12 digits>                  the order "ord-<n>" (`Order`)
    orders/queue/<machine id>/<n, 12 digits>     {"duration_ms"}: order n is queued on the machine

Theory of operation. An order moves only along the transitions in `TRANSITIONS`, each named by
the action that takes it (the method of the orders contract, or the rescheduling that moves
queued work when a machine leaves service):

    created --accept--> accepted --schedule--> scheduled --start--> in_production
    in_production --complete--> quality_check --qc_pass--> passed --ship--> shipped
    quality_check --qc_fail--> in_production                    shipped --deliver--> delivered
    scheduled --reassign--> scheduled (another machine)   scheduled --unschedule--> accepted
    created | accepted | scheduled --cancel--> cancelled

`transition` is the only writer of an order after placement: it refuses an illegal move with a
message naming the state the action needs, keeps the queue index equal to the set of scheduled
orders, and emits one event per move on "order:<id>" with the states before and after. The
index makes a machine's queue a prefix scan, ordered by order number.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Final

from contracts.contract import Call
from contracts.errors import ConflictError, NotFoundError, StateError
from contracts.state import StateReader, decode_map, read_map, write_map

CONTRACT = "orders"
NEXT_KEY = b"orders/next"
ORDER_PREFIX = b"orders/order/"
QUEUE_PREFIX = b"orders/queue/"
NUMBER_DIGITS = 12
ORDER_ID_PATTERN = r"ord-[1-9][0-9]{0,11}"


class OrderState(enum.StrEnum):
    CREATED = "created"
    ACCEPTED = "accepted"
    SCHEDULED = "scheduled"
    IN_PRODUCTION = "in_production"
    QUALITY_CHECK = "quality_check"
    PASSED = "passed"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"


S = OrderState
# action -> (states it may start from, state it leads to)
TRANSITIONS: Final[dict[str, tuple[frozenset[OrderState], OrderState]]] = {
    "accept": (frozenset({S.CREATED}), S.ACCEPTED),
    "schedule": (frozenset({S.ACCEPTED}), S.SCHEDULED),
    "reassign": (frozenset({S.SCHEDULED}), S.SCHEDULED),
    "unschedule": (frozenset({S.SCHEDULED}), S.ACCEPTED),
    "start": (frozenset({S.SCHEDULED}), S.IN_PRODUCTION),
    "complete": (frozenset({S.IN_PRODUCTION}), S.QUALITY_CHECK),
    "qc_pass": (frozenset({S.QUALITY_CHECK}), S.PASSED),
    "qc_fail": (frozenset({S.QUALITY_CHECK}), S.IN_PRODUCTION),
    "ship": (frozenset({S.PASSED}), S.SHIPPED),
    "deliver": (frozenset({S.SHIPPED}), S.DELIVERED),
    "cancel": (frozenset({S.CREATED, S.ACCEPTED, S.SCHEDULED}), S.CANCELLED),
}
LEGAL_MOVES: Final = frozenset(
    (before, after) for starts, after in TRANSITIONS.values() for before in starts
)
# States in which an order holds reserved materials (in production: until its first completion
# consumes them; rework after a failed check uses none), and in which it is bound to a machine.
HOLDS_MATERIALS: Final = frozenset({S.ACCEPTED, S.SCHEDULED, S.IN_PRODUCTION})
ON_MACHINE: Final = frozenset({S.SCHEDULED, S.IN_PRODUCTION, S.QUALITY_CHECK})


@dataclass(frozen=True, slots=True, kw_only=True)
class Order:
    number: int
    customer: str
    product: str
    variant: str
    options: dict[str, str]
    quantity: int
    bom: dict[str, int]
    requires: tuple[str, ...]
    duration_ms: int
    state: OrderState
    machine: str  # "" unless scheduled, in production or in quality check
    location: str  # where its materials are reserved; "" until accepted
    placed_ms: int
    updated_ms: int
    qc_failures: int

    @property
    def id(self) -> str:
        return order_id(self.number)

    def to_map(self) -> dict[str, Any]:
        record = asdict(self)
        del record["number"]
        record["requires"] = list(self.requires)
        record["state"] = str(self.state)
        return record

    def summary(self) -> dict[str, Any]:
        return {"id": self.id, **self.to_map()}

    @classmethod
    def from_map(cls, key: bytes, number: int, value: dict[str, Any]) -> Order:
        expected = {item.name for item in fields(cls)} - {"number"}
        if set(value) != expected:
            raise StateError(f"order record at {key!a} has fields {sorted(value)}")
        try:
            return cls(
                **{
                    **value,
                    "number": number,
                    "requires": tuple(value["requires"]),
                    "state": OrderState(value["state"]),
                }
            )
        except (TypeError, ValueError) as exc:
            raise StateError(f"order record at {key!a} is malformed: {exc}") from exc


def order_id(number: int) -> str:
    return f"ord-{number}"


def order_number(order_id_text: str) -> int:
    """The number in "ord-<n>"; the argument schema has already checked the form."""
    return int(order_id_text.removeprefix("ord-"))


def _padded(number: int) -> bytes:
    return f"{number:0{NUMBER_DIGITS}d}".encode()


def order_key(number: int) -> bytes:
    return ORDER_PREFIX + _padded(number)


def queue_prefix(machine_id: str) -> bytes:
    return QUEUE_PREFIX + machine_id.encode() + b"/"


def queue_key(machine_id: str, number: int) -> bytes:
    return queue_prefix(machine_id) + _padded(number)


def subject(order_id_text: str) -> str:
    return f"order:{order_id_text}"


def next_number(state: StateReader) -> int:
    record = read_map(state, NEXT_KEY)
    return 1 if record is None else int(record["n"])


def read_order(state: StateReader, order_id_text: str) -> Order | None:
    number = order_number(order_id_text)
    key = order_key(number)
    value = read_map(state, key)
    return None if value is None else Order.from_map(key, number, value)


def existing_order(state: StateReader, order_id_text: str) -> Order:
    order = read_order(state, order_id_text)
    if order is None:
        raise NotFoundError(f"no order {order_id_text}")
    return order


def all_orders(state: StateReader) -> list[Order]:
    """Every order, by number."""
    return [_stored_order(key, raw) for key, raw in state.scan(ORDER_PREFIX)]


def newest_orders(state: StateReader, limit: int) -> list[Order]:
    """The `limit` orders with the highest numbers, by number; reads only those."""
    return [_stored_order(key, raw) for key, raw in state.scan_last(ORDER_PREFIX, limit)]


def _stored_order(key: bytes, raw: bytes) -> Order:
    return Order.from_map(key, int(key[len(ORDER_PREFIX) :]), decode_map(key, raw))


def queued_numbers(state: StateReader, machine_id: str) -> list[tuple[int, int]]:
    """(order number, duration_ms) of the orders queued on a machine, by number."""
    prefix = queue_prefix(machine_id)
    return [
        (int(key[len(prefix) :]), int(decode_map(key, raw)["duration_ms"]))
        for key, raw in state.scan(prefix)
    ]


def create_order(call: Call, order: Order) -> None:
    """Store a new order under the next number and emit `place` (the only write not a move)."""
    own = call.acting_as(CONTRACT)
    write_map(own.state, NEXT_KEY, {"n": order.number + 1})
    write_map(own.state, order_key(order.number), order.to_map())
    own.emit("place", subject(order.id), {"to": str(order.state), "by": call.sender_name})


def transition(
    call: Call,
    order: Order,
    action: str,
    *,
    details: Mapping[str, Any] | None = None,
    **changes: Any,
) -> Order:
    """Move an order by `action` (with other field changes), keep the queue index, emit it with
    `details` added to the event's data.

    Raises ConflictError, naming the state the action needs, when the move is not legal.
    """
    starts, target = TRANSITIONS[action]
    if order.state not in starts:
        needed = " or ".join(sorted(str(state) for state in starts))
        raise ConflictError(
            f"cannot {action.replace('_', '-')} order {order.id}: it is {order.state}, "
            f"{action.replace('_', '-')} needs {needed}"
        )
    own = call.acting_as(CONTRACT)
    updated = replace(order, state=target, updated_ms=call.block.timestamp_ms, **changes)
    if target not in ON_MACHINE:
        updated = replace(updated, machine="")
    if order.state is S.SCHEDULED:
        own.state.delete(queue_key(order.machine, order.number))
    if target is S.SCHEDULED:
        if not updated.machine:
            raise AssertionError(f"order {order.id} scheduled on no machine")
        write_map(
            own.state,
            queue_key(updated.machine, order.number),
            {"duration_ms": updated.duration_ms},
        )
    write_map(own.state, order_key(order.number), updated.to_map())
    data: dict[str, Any] = {"from": str(order.state), "to": str(target), "by": call.sender_name}
    if updated.machine or order.machine:
        data["machine"] = updated.machine or order.machine
    data.update(details or {})
    own.emit(action, subject(order.id), data)
    return updated
