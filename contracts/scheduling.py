"""Flexible production: which machine takes an order, and moving queued work off a machine.

The rule, in one place because both first scheduling and rescheduling use it: among machines in
service (status running) that have every capability the order requires, other than the ones
excluded, take the least loaded by the total `duration_ms` of the orders queued on it, ties
broken by machine id. When a machine goes down, is taken for maintenance or is flagged at risk,
`move_queued_work` applies the rule to each of its queued orders in order-number order, counting
each move in the loads before the next, so work spreads instead of piling onto one machine. An
order that no machine can take goes back to accepted (its materials stay reserved) with an
`unschedule` event saying why. Orders already in production stay where they are.

A machine queues at most QUEUE_MAX orders: moving its queue emits an event per order, and a
transaction emits at most EVENTS_MAX (1,024), so a longer queue could never be moved and the
machine could no longer be reported down, taken for maintenance or flagged. A full machine is
no candidate for the rule.
"""

from __future__ import annotations

from collections.abc import Iterable

from contracts.contract import Call
from contracts.machine_state import CONTRACT as MACHINES
from contracts.machine_state import Machine, all_machines
from contracts.machine_state import subject as machine_subject
from contracts.order_state import (
    existing_order,
    order_id,
    queue_prefix,
    queued_numbers,
    transition,
)
from contracts.state import StateReader

QUEUE_MAX = 1_000


def queue_full(state: StateReader, machine_id: str) -> bool:
    """Whether the machine has QUEUE_MAX orders queued (reads at most that many)."""
    return len(state.scan_last(queue_prefix(machine_id), QUEUE_MAX)) >= QUEUE_MAX


def pick_machine(
    state: StateReader, requires: tuple[str, ...], exclude: Iterable[str] = ()
) -> Machine | None:
    """The machine the rule gives an order needing `requires`, or None if none can take it."""
    excluded = set(exclude)
    best: tuple[int, str, Machine] | None = None
    for machine in all_machines(state):
        if not machine.in_service or not machine.can_make(requires) or machine.id in excluded:
            continue
        queued = queued_numbers(state, machine.id)  # read once: its length and its load
        if len(queued) >= QUEUE_MAX:
            continue
        load = (sum(duration_ms for _, duration_ms in queued), machine.id, machine)
        if best is None or load[:2] < best[:2]:
            best = load
    return None if best is None else best[2]


def move_queued_work(call: Call, machine_id: str, reason: str) -> list[dict[str, str]]:
    """Reassign every order queued on `machine_id` by the rule; returns what moved where.

    Events: one `reassign` or `unschedule` per order (subject "order:<id>"), and one `requeue`
    on the machine listing them, when there was anything to move.
    """
    moves: list[dict[str, str]] = []
    for number, _ in queued_numbers(call.state, machine_id):
        order = existing_order(call.state, order_id(number))
        target = pick_machine(call.state, order.requires, exclude=(machine_id,))
        if target is None:
            why = (
                f"{reason}; no machine in service has {', '.join(order.requires)}"
                if order.requires
                else f"{reason}; no other machine is in service"
            )
            transition(
                call, order, "unschedule", details={"from_machine": machine_id, "reason": why}
            )
            moves.append({"order": order.id, "to": ""})
        else:
            transition(
                call,
                order,
                "reassign",
                machine=target.id,
                details={"from_machine": machine_id, "to_machine": target.id, "reason": reason},
            )
            moves.append({"order": order.id, "to": target.id})
    if moves:
        call.acting_as(MACHINES).emit(
            "requeue", machine_subject(machine_id), {"reason": reason, "moves": moves}
        )
    return moves
