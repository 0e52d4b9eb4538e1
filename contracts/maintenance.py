"""The maintenance contract: work orders on machines, from opening to a record of what was done.

    maintenance/next                  {"n"}: the number of the next work order
    maintenance/wo/<n, 12 digits>     the work order "wo-<n>"

A work order is open, then taken by one maintainer (the machine goes under maintenance and its
queued orders move elsewhere), then closed by that maintainer or an admin with the actions done;
closing returns the machine to service, clears its at-risk flag and, if the tool was replaced,
resets its tool-wear baseline. `open_work_order` is the internal API the oracle contract calls to
open one from a finalized prediction.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Any

from contracts.contract import NEWEST_QUERY_MAX, Call, Contract, method
from contracts.errors import ConflictError, NotFoundError, QueryError, RejectedError
from contracts.machine_state import MachineStatus, change_status, existing_machine
from contracts.machine_state import subject as machine_subject
from contracts.scheduling import move_queued_work
from contracts.schema import NAME_PATTERN, Choice, ListOf, Str, is_decimal
from contracts.state import StateReader, decode_map, read_map, write_map
from ledger.genesis import Role

CONTRACT = "maintenance"
NEXT_KEY = b"maintenance/next"
WORK_ORDER_PREFIX = b"maintenance/wo/"
WORK_ORDER_PATTERN = r"wo-[1-9][0-9]{0,11}"
ACTIONS = ("tool_replaced", "repaired", "inspected", "lubricated", "calibrated", "cleaned", "other")

_NAME = Str(min_len=1, max_len=64, pattern=NAME_PATTERN)
_WORK_ORDER = Str(min_len=4, max_len=15, pattern=WORK_ORDER_PATTERN)


class WorkOrderState(enum.StrEnum):
    OPEN = "open"
    TAKEN = "taken"
    CLOSED = "closed"


def work_order_key(work_order: str) -> bytes:
    return WORK_ORDER_PREFIX + f"{int(work_order.removeprefix('wo-')):012d}".encode()


def subject(work_order: str) -> str:
    return f"workorder:{work_order}"


def read_work_order(state: StateReader, work_order: str) -> dict[str, Any] | None:
    return read_map(state, work_order_key(work_order))


def all_work_orders(state: StateReader) -> list[dict[str, Any]]:
    """Every work order, by number, each with its `id`."""
    return [_stored_work_order(key, raw) for key, raw in state.scan(WORK_ORDER_PREFIX)]


def newest_work_orders(state: StateReader, limit: int) -> list[dict[str, Any]]:
    """The `limit` work orders with the highest numbers, by number; reads only those."""
    return [_stored_work_order(key, raw) for key, raw in state.scan_last(WORK_ORDER_PREFIX, limit)]


def _stored_work_order(key: bytes, raw: bytes) -> dict[str, Any]:
    return {"id": f"wo-{int(key[len(WORK_ORDER_PREFIX) :])}", **decode_map(key, raw)}


def work_orders_opened(state: StateReader) -> int:
    counter = read_map(state, NEXT_KEY)
    return 0 if counter is None else int(counter["n"]) - 1


def open_work_order(call: Call, machine: str, reason: str, *, source: str) -> str:
    """Open a work order on a machine; returns its id. `source` says who asked for it."""
    own = call.acting_as(CONTRACT)
    existing_machine(own.state, machine)
    number = work_orders_opened(own.state) + 1
    work_order = f"wo-{number}"
    write_map(own.state, NEXT_KEY, {"n": number + 1})
    record = {
        "machine": machine,
        "reason": reason,
        "source": source,
        "state": str(WorkOrderState.OPEN),
        "opened_by": call.sender_name,
        "opened_ms": call.block.timestamp_ms,
        "taken_by": "",
        "taken_ms": 0,
        "closed_ms": 0,
        "actions": [],
        "note": "",
    }
    write_map(own.state, work_order_key(work_order), record)
    data = {"machine": machine, "reason": reason, "source": source, "by": call.sender_name}
    own.emit("open", subject(work_order), data)
    own.emit("work_order_open", machine_subject(machine), {"work_order": work_order, **data})
    return work_order


def _existing(state: StateReader, work_order: str) -> dict[str, Any]:
    record = read_work_order(state, work_order)
    if record is None:
        raise NotFoundError(f"no work order {work_order}")
    return record


class MaintenanceContract(Contract):
    """Work orders: opened on a machine, taken by a maintainer, closed with what was done."""

    name = CONTRACT

    @method(
        roles=(Role.MAINTAINER, Role.PLANNER, Role.ADMIN),
        args={"machine": _NAME, "reason": Str(min_len=1, max_len=256)},
    )
    def open(self, call: Call, *, machine: str, reason: str) -> dict[str, Any]:
        """Open a work order on a machine (the machine stays in service until it is taken)."""
        work_order = open_work_order(call, machine, reason, source=call.sender_name)
        return {"work_order": work_order, "machine": machine}

    @method(roles=(Role.MAINTAINER, Role.ADMIN), args={"work_order": _WORK_ORDER})
    def take(self, call: Call, *, work_order: str) -> dict[str, Any]:
        """Take an open work order: the machine goes under maintenance, its queue moves away;
        an order in production on it stays there, paused until the work order closes."""
        record = _existing(call.state, work_order)
        if record["state"] != WorkOrderState.OPEN:
            raise ConflictError(f"work order {work_order} is {record['state']}, take needs open")
        machine = existing_machine(call.state, record["machine"])
        if machine.status is MachineStatus.MAINTENANCE:
            raise ConflictError(
                f"machine {machine.id} is already under maintenance (work order "
                f"{machine.work_order})"
            )
        # An order in production stays on the machine, paused until the work order closes
        # (change_status books the time worked so far, unless the machine was down already).
        change_status(
            call,
            machine,
            MachineStatus.MAINTENANCE,
            f"work order {work_order}",
            work_order=work_order,
        )
        updated = {
            **record,
            "state": str(WorkOrderState.TAKEN),
            "taken_by": call.sender_name,
            "taken_ms": call.block.timestamp_ms,
        }
        write_map(call.state, work_order_key(work_order), updated)
        call.emit("take", subject(work_order), {"machine": machine.id, "by": call.sender_name})
        moves = move_queued_work(call, machine.id, f"machine {machine.id} under maintenance")
        return {"work_order": work_order, "machine": machine.id, "moves": moves}

    @method(
        roles=(Role.MAINTAINER, Role.ADMIN),
        args={
            "work_order": _WORK_ORDER,
            "actions": ListOf(item=Choice(values=ACTIONS), min_len=1, max_len=8, unique=True),
            "note": Str(max_len=512, default=""),
        },
    )
    def close(
        self, call: Call, *, work_order: str, actions: list[str], note: str
    ) -> dict[str, Any]:
        """Close a taken work order with what was done; the machine returns to service."""
        record = _existing(call.state, work_order)
        if record["state"] != WorkOrderState.TAKEN:
            raise ConflictError(f"work order {work_order} is {record['state']}, close needs taken")
        if record["taken_by"] != call.sender_name and not call.has_role(Role.ADMIN):
            raise RejectedError(
                f"work order {work_order} was taken by {record['taken_by']}; "
                f"only they or an admin may close it"
            )
        machine = existing_machine(call.state, record["machine"])
        done = sorted(actions)
        changes: dict[str, Any] = {"work_order": "", "at_risk": None}
        if "tool_replaced" in done:
            changes["tool_wear_baseline_min"] = machine.last_tool_wear_min
        change_status(
            call, machine, MachineStatus.RUNNING, f"work order {work_order} closed", **changes
        )
        updated = {
            **record,
            "state": str(WorkOrderState.CLOSED),
            "closed_ms": call.block.timestamp_ms,
            "actions": done,
            "note": note,
        }
        write_map(call.state, work_order_key(work_order), updated)
        call.emit(
            "close",
            subject(work_order),
            {"machine": machine.id, "actions": done, "note": note, "by": call.sender_name},
        )
        if "tool_replaced" in done:
            call.acting_as("machines").emit(
                "tool_replaced",
                machine_subject(machine.id),
                {"work_order": work_order, "baseline_min": machine.last_tool_wear_min},
            )
        return {"work_order": work_order, "machine": machine.id, "actions": done}

    def query(self, state: StateReader, path: Sequence[str]) -> Any:
        if len(path) == 0:
            return {record.pop("id"): record for record in all_work_orders(state)}
        if list(path) == ["newest"]:
            newest = newest_work_orders(state, NEWEST_QUERY_MAX)
            return {
                "work_orders": {record.pop("id"): record for record in newest},
                "total": work_orders_opened(state),
            }
        if len(path) == 1:
            text = path[0]
            if not (text.startswith("wo-") and is_decimal(text[3:]) and len(text) <= 15):
                raise QueryError(f"{text!a} is not a work order id (wo-<n>)")
            record = read_work_order(state, text)
            if record is None:
                raise QueryError(f"no work order {text}")
            return {"id": text, **record}
        raise QueryError(
            f"maintenance queries take [], ['newest'] (the newest {NEWEST_QUERY_MAX} and the "
            f"total) or [work order], got {list(path)!a}"
        )
