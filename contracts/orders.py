"""The orders contract: customized production orders from placement to delivery.

Each method is one transition of `contracts.order_state` by the role that owns it (an admin may
stand in for any of them), with its cross-contract effects in the same transaction:

    place       customer             spec checked against the catalog, bill of materials resolved
    accept      planner              materials reserved for the order (all lines, or nothing)
    schedule    planner              onto a named capable machine in service, or by the rule of
                                     `contracts.scheduling`
    start       machine, planner     the machine (in service, idle) starts producing it
    complete    machine, planner     the reserved materials are consumed, production time booked
    qc_pass     auditor              quality check passed
    qc_fail     auditor              back into production on the same machine (it must be idle)
    ship        planner
    deliver     customer (its own)
    cancel      customer (its own), planner: before production; reservations released
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from contracts.catalog import NAME, ORDER_QTY_MAX, resolve_spec
from contracts.contract import NEWEST_QUERY_MAX, Call, Contract, method
from contracts.errors import ConflictError, QueryError, RejectedError
from contracts.machine_state import MachineStatus, existing_machine, write_machine
from contracts.machines import check_operator
from contracts.order_state import (
    CONTRACT,
    ORDER_ID_PATTERN,
    Order,
    OrderState,
    all_orders,
    create_order,
    existing_order,
    newest_orders,
    next_number,
    read_order,
    transition,
)
from contracts.scheduling import QUEUE_MAX, pick_machine, queue_full
from contracts.schema import NAME_PATTERN, Int, MapOf, Str, is_decimal
from contracts.state import StateReader
from contracts.stock import (
    consume_for_order,
    read_order_reservation,
    release_for_order,
    reserve_for_order,
)
from ledger.genesis import Role

_ORDER = Str(min_len=5, max_len=16, pattern=ORDER_ID_PATTERN)
_NOTE = Str(max_len=256, default="")
_LOCATION = Str(min_len=1, max_len=64, pattern=NAME_PATTERN, default="main")
# A machine's name, or "" to leave the choice to the scheduling rule.
_MACHINE_OR_RULE = Str(max_len=64, pattern=f"(?:{NAME_PATTERN})?", default="")
_PLANNERS = (Role.PLANNER, Role.ADMIN)
_QUALITY = (Role.AUDITOR, Role.ADMIN)
_SHOP_FLOOR = (Role.MACHINE, Role.PLANNER, Role.ADMIN)


def _check_own(
    call: Call, order: Order, action: str, *, stand_in: tuple[Role, ...] = _PLANNERS
) -> None:
    """A customer may act only on its own orders (the `stand_in` roles on anyone's)."""
    if call.has_role(*stand_in) or order.customer == call.sender_name:
        return
    raise RejectedError(
        f"order {order.id} belongs to {order.customer}; {call.sender_name} may not {action} it"
    )


# Distinct materials an order may use: completing it emits a consume event for each (and a
# low-stock one where stock crosses its reorder point) within a transaction's EVENTS_MAX (1,024).
ORDER_MATERIALS_MAX = 500
# How a schedule left to the rule fails when no capable machine in service has room: a planner
# (the scenario's, say) may take it as "try again later" rather than an error.
NO_ROOM = "no machine in service with room in its queue"


class OrdersContract(Contract):
    """Customized production orders and their life from placement to delivery."""

    name = CONTRACT

    @method(
        roles=(Role.CUSTOMER, Role.ADMIN),
        args={
            "product": NAME,
            "variant": NAME,
            "options": MapOf(value=NAME, max_len=16, default={}),
            "quantity": Int(min=1, max=ORDER_QTY_MAX),
        },
    )
    def place(
        self, call: Call, *, product: str, variant: str, options: dict[str, str], quantity: int
    ) -> dict[str, Any]:
        """Order a product in a configuration; the spec is checked and its BOM resolved."""
        spec = resolve_spec(
            call.state, product=product, variant=variant, options=options, quantity=quantity
        )
        if len(spec.bom) > ORDER_MATERIALS_MAX:
            raise RejectedError(
                f"{product} {variant} with these options needs {len(spec.bom)} materials; an "
                f"order may use at most {ORDER_MATERIALS_MAX} (completing it emits events for "
                "each, and a transaction emits at most 1,024)"
            )
        order = Order(
            number=next_number(call.state),
            customer=call.sender_name,
            product=product,
            variant=variant,
            options={group: options[group] for group in sorted(options)},
            quantity=quantity,
            bom=spec.bom,
            requires=spec.requires,
            duration_ms=spec.duration_ms,
            state=OrderState.CREATED,
            machine="",
            location="",
            placed_ms=call.block.timestamp_ms,
            updated_ms=call.block.timestamp_ms,
            qc_failures=0,
        )
        create_order(call, order)
        return order.summary()

    @method(roles=_PLANNERS, args={"order": _ORDER, "location": _LOCATION})
    def accept(self, call: Call, *, order: str, location: str) -> dict[str, Any]:
        """Accept an order, reserving its bill of materials at `location`."""
        record = existing_order(call.state, order)
        updated = transition(call, record, "accept", location=location)
        reserve_for_order(call, record.id, location, record.bom)
        return updated.summary()

    @method(roles=_PLANNERS, args={"order": _ORDER, "machine": _MACHINE_OR_RULE})
    def schedule(self, call: Call, *, order: str, machine: str) -> dict[str, Any]:
        """Queue an order on a machine: the one named, or the one the scheduling rule picks."""
        record = existing_order(call.state, order)
        if machine:
            target = existing_machine(call.state, machine)
            if not target.in_service:
                raise ConflictError(f"machine {machine} is {target.status}, not in service")
            if not target.can_make(record.requires):
                missing = sorted(set(record.requires) - set(target.capabilities))
                raise ConflictError(
                    f"machine {machine} lacks {', '.join(missing)} needed by order {order}"
                )
            if queue_full(call.state, machine):
                raise ConflictError(
                    f"machine {machine} has {QUEUE_MAX} orders queued, the most it takes"
                )
        else:
            picked = pick_machine(call.state, record.requires)
            if picked is None:
                raise ConflictError(
                    f"{NO_ROOM} can make order {order} "
                    f"(needs {', '.join(record.requires) or 'any machine'})"
                )
            machine = picked.id
        return transition(call, record, "schedule", machine=machine).summary()

    @method(roles=_SHOP_FLOOR, args={"order": _ORDER})
    def start(self, call: Call, *, order: str) -> dict[str, Any]:
        """Start producing a scheduled order on its machine (in service and idle)."""
        record = existing_order(call.state, order)
        updated = transition(call, record, "start")
        _begin_production(call, record)
        return updated.summary()

    @method(roles=_SHOP_FLOOR, args={"order": _ORDER})
    def complete(self, call: Call, *, order: str) -> dict[str, Any]:
        """Finish production: the order's materials are consumed and it goes to quality check."""
        record = existing_order(call.state, order)
        updated = transition(call, record, "complete")
        machine = existing_machine(call.state, record.machine)
        check_operator(call, machine)
        if machine.status is MachineStatus.MAINTENANCE:
            # Its production is paused (the time worked so far is booked) and resumes when
            # the work order closes; nothing is produced meanwhile.
            raise ConflictError(
                f"order {record.id} is paused: machine {machine.id} is under maintenance "
                f"(work order {machine.work_order})"
            )
        if machine.status is MachineStatus.DOWN:
            raise ConflictError(
                f"order {record.id} is paused: machine {machine.id} is down "
                f"({machine.status_reason}); it resumes when the machine is back"
            )
        worked_ms = max(0, call.block.timestamp_ms - machine.producing_since_ms)
        write_machine(
            call,
            replace(machine, producing="", production_ms=machine.production_ms + worked_ms),
        )
        call.acting_as("machines").emit(
            "production_end",
            f"machine:{machine.id}",
            {"order": record.id, "worked_ms": worked_ms},
        )
        consume_for_order(call, record.id)
        return updated.summary()

    @method(roles=_QUALITY, args={"order": _ORDER, "note": _NOTE})
    def qc_pass(self, call: Call, *, order: str, note: str) -> dict[str, Any]:
        """Pass the quality check; the order is ready to ship."""
        record = existing_order(call.state, order)
        return transition(call, record, "qc_pass", details={"note": note}).summary()

    @method(roles=_QUALITY, args={"order": _ORDER, "note": _NOTE})
    def qc_fail(self, call: Call, *, order: str, note: str) -> dict[str, Any]:
        """Fail the quality check: the order goes back into production on its machine."""
        record = existing_order(call.state, order)
        updated = transition(
            call,
            record,
            "qc_fail",
            qc_failures=record.qc_failures + 1,
            details={"note": note},
        )
        _begin_production(call, record, rework=True)
        return updated.summary()

    @method(roles=_PLANNERS, args={"order": _ORDER, "note": _NOTE})
    def ship(self, call: Call, *, order: str, note: str) -> dict[str, Any]:
        """Ship an order that passed its quality check."""
        record = existing_order(call.state, order)
        return transition(call, record, "ship", details={"note": note}).summary()

    @method(roles=(Role.CUSTOMER, Role.ADMIN), args={"order": _ORDER})
    def deliver(self, call: Call, *, order: str) -> dict[str, Any]:
        """Confirm delivery of a shipped order (its customer, or an admin)."""
        record = existing_order(call.state, order)
        _check_own(call, record, "confirm delivery of", stand_in=(Role.ADMIN,))
        return transition(call, record, "deliver").summary()

    @method(
        roles=(Role.CUSTOMER, Role.PLANNER, Role.ADMIN), args={"order": _ORDER, "reason": _NOTE}
    )
    def cancel(self, call: Call, *, order: str, reason: str) -> dict[str, Any]:
        """Cancel an order before production; exactly its reservations are released."""
        record = existing_order(call.state, order)
        _check_own(call, record, "cancel")
        updated = transition(call, record, "cancel", details={"reason": reason})
        release_for_order(call, record.id)
        return updated.summary()

    def query(self, state: StateReader, path: Sequence[str]) -> Any:
        if len(path) == 0:
            return {order.id: order.summary() for order in all_orders(state)}
        if list(path) == ["newest"]:
            newest = newest_orders(state, NEWEST_QUERY_MAX)
            return {
                "orders": {order.id: order.summary() for order in newest},
                "total": next_number(state) - 1,
            }
        if len(path) == 1:
            text = path[0]
            if not (text.startswith("ord-") and is_decimal(text[4:]) and len(text) <= 16):
                raise QueryError(f"{text!a} is not an order id (ord-<n>)")
            order = read_order(state, text)
            if order is None:
                raise QueryError(f"no order {text}")
            return {**order.summary(), "reservation": read_order_reservation(state, text)}
        raise QueryError(
            f"orders queries take [], ['newest'] (the newest {NEWEST_QUERY_MAX} and the total) "
            f"or [order id], got {list(path)!a}"
        )


def _begin_production(call: Call, order: Order, *, rework: bool = False) -> None:
    """Put `order` into production on its machine. The machine's named operator (or a planner,
    maintainer or admin) starts it; rework follows a failed quality check, which the quality
    role decides, so it needs no operator's hand."""
    machine = existing_machine(call.state, order.machine)
    if not rework:
        check_operator(call, machine)
    allowed = (
        (MachineStatus.RUNNING, MachineStatus.DEGRADED) if rework else (MachineStatus.RUNNING,)
    )
    if machine.status not in allowed:
        raise ConflictError(f"machine {machine.id} is {machine.status}; it cannot produce now")
    if machine.producing:
        raise ConflictError(f"machine {machine.id} is busy producing order {machine.producing}")
    write_machine(
        call, replace(machine, producing=order.id, producing_since_ms=call.block.timestamp_ms)
    )
    call.acting_as("machines").emit(
        "production_start", f"machine:{machine.id}", {"order": order.id, "rework": rework}
    )
