"""The machines contract: registration, sensor readings, status changes and the at-risk flag.

A machine that leaves service (down, flagged at risk; taking it for maintenance is the
maintenance contract's doing) has its queued orders moved by `contracts.scheduling` in the same
transaction. `flag_machine_at_risk` is the internal API the oracle contract calls once a
prediction is final; the `flag_at_risk` method exposes the same effect to oracles and admins.
State layout and accounting: `contracts.machine_state`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from contracts.contract import Call, Contract, method
from contracts.errors import ConflictError, QueryError, RejectedError
from contracts.identity import refuse_retired_name
from contracts.machine_state import (
    CONTRACT,
    READING,
    READING_FIELDS,
    Machine,
    MachineStatus,
    all_machines,
    change_status,
    existing_machine,
    read_machine,
    read_reading,
    reading_key,
    recent_readings,
    subject,
    write_machine,
)
from contracts.order_state import order_id, queued_numbers
from contracts.scheduling import move_queued_work
from contracts.schema import NAME_PATTERN, Int, ListOf, Str, is_decimal
from contracts.state import StateReader, write_map
from ledger.genesis import Role

READINGS_PER_TX_MAX = 200
READINGS_QUERY_MAX = 100
BASIS_POINTS = 10_000

_NAME = Str(min_len=1, max_len=64, pattern=NAME_PATTERN)
_REASON = Str(max_len=256, default="")


def check_operator(call: Call, machine: Machine) -> None:
    """A machine-role sender may act only for the machine it operates (if one is named)."""
    if not machine.operator or call.sender_name == machine.operator:
        return
    if call.has_role(Role.ADMIN, Role.PLANNER, Role.MAINTAINER):
        return
    raise RejectedError(
        f"machine {machine.id} is operated by {machine.operator}; "
        f"{call.sender_name} may not act for it"
    )


def flag_machine_at_risk(
    call: Call, machine_id: str, probability_bp: int, *, source: str, reason: str
) -> dict[str, Any]:
    """Mark a machine at risk of failing: a running machine becomes degraded and its queued
    orders move elsewhere. The oracle contract calls this; `source` says who decided."""
    own = call.acting_as(CONTRACT)
    machine = existing_machine(own.state, machine_id)
    flag = {
        "probability_bp": probability_bp,
        "source": source,
        "reason": reason,
        "at_ms": call.block.timestamp_ms,
    }
    own.emit("at_risk", subject(machine_id), flag)
    if machine.status is MachineStatus.RUNNING:
        change_status(
            own, machine, MachineStatus.DEGRADED, reason or "flagged at risk", at_risk=flag
        )
    else:
        write_machine(own, replace(machine, at_risk=flag))
    why = f"machine {machine_id} at risk ({probability_bp} bp)"
    moves = move_queued_work(call, machine_id, why)
    return {
        "machine": machine_id,
        "status": str(existing_machine(own.state, machine_id).status),
        "moves": moves,
    }


class MachinesContract(Contract):
    """Machines with their capabilities, sensor readings, status and time accounting."""

    name = CONTRACT

    @method(
        roles=(Role.ADMIN,),
        args={
            "machine": _NAME,
            "type": _NAME,
            "capabilities": ListOf(item=_NAME, min_len=1, max_len=32, unique=True),
            # A name an identity can hold, or "" for any machine identity.
            "operator": Str(max_len=64, pattern=f"(?:{NAME_PATTERN})?", default=""),
        },
    )
    def register(
        self, call: Call, *, machine: str, type: str, capabilities: list[str], operator: str
    ) -> dict[str, Any]:
        """Register a machine with its type and capabilities; it starts running. The operator
        may be a member still to be added, but not a removed one's retired name."""
        if read_machine(call.state, machine) is not None:
            raise ConflictError(f"machine {machine} is already registered")
        if operator:
            refuse_retired_name(call.state, operator, given_as="operator")
        record = Machine(
            id=machine,
            type=type,
            capabilities=tuple(sorted(capabilities)),
            operator=operator,
            status=MachineStatus.RUNNING,
            status_since_ms=call.block.timestamp_ms,
            status_reason="registered",
            downtime_ms=0,
            production_ms=0,
            producing="",
            producing_since_ms=0,
            last_seq=-1,
            last_tool_wear_min=0,
            tool_wear_baseline_min=0,
            at_risk=None,
            work_order="",
        )
        write_machine(call, record)
        call.emit(
            "register",
            subject(machine),
            {"type": type, "capabilities": list(record.capabilities), "operator": operator},
        )
        return record.summary()

    @method(
        roles=(Role.MACHINE, Role.ADMIN),
        args={"machine": _NAME, "readings": ListOf(item=READING, min_len=1, max_len=200)},
    )
    def report(self, call: Call, *, machine: str, readings: list[dict[str, int]]) -> dict[str, Any]:
        """Record a batch of sensor readings; sequence numbers must rise past the last one."""
        record = existing_machine(call.state, machine)
        check_operator(call, record)
        last_seq = record.last_seq
        # A reading whose wear is below the one before it: the machine reset its own wear
        # counter with a new tool, so the wear counts from 0 again (any reading of the batch
        # counts, or the wear would depend on how the readings were cut into transactions).
        baseline, previous_wear = record.tool_wear_baseline_min, record.last_tool_wear_min
        for index, reading in enumerate(readings):
            if reading["seq"] <= last_seq:
                raise ConflictError(
                    f"reading {index} of machine {machine} has seq {reading['seq']}; "
                    f"sequence numbers must rise past {last_seq}"
                )
            last_seq = reading["seq"]
            if reading["tool_wear_min"] < previous_wear:
                baseline = 0
            previous_wear = reading["tool_wear_min"]
            write_map(
                call.state,
                reading_key(machine, last_seq),
                {
                    **{name: reading[name] for name in READING_FIELDS},
                    "at_ms": call.block.timestamp_ms,
                    "height": call.block.height,
                },
            )
        updated = replace(
            record,
            last_seq=last_seq,
            last_tool_wear_min=previous_wear,
            tool_wear_baseline_min=baseline,
        )
        write_machine(call, updated)
        call.emit(
            "readings",
            subject(machine),
            {
                "first_seq": readings[0]["seq"],
                "last_seq": last_seq,
                "count": len(readings),
                "tool_wear_min": updated.tool_wear_min,
            },
        )
        return {"machine": machine, "last_seq": last_seq, "count": len(readings)}

    @method(
        roles=(Role.MACHINE, Role.MAINTAINER, Role.PLANNER, Role.ADMIN),
        args={"machine": _NAME, "reason": _REASON},
    )
    def down(self, call: Call, *, machine: str, reason: str) -> dict[str, Any]:
        """Report a machine down; its queued orders move to other capable machines."""
        record = existing_machine(call.state, machine)
        check_operator(call, record)
        if record.status is MachineStatus.DOWN:
            raise ConflictError(f"machine {machine} is already down")
        if record.status is MachineStatus.MAINTENANCE:
            raise ConflictError(
                f"machine {machine} is under maintenance (work order {record.work_order})"
            )
        change_status(call, record, MachineStatus.DOWN, reason or "reported down")
        moves = move_queued_work(call, machine, f"machine {machine} down")
        return {"machine": machine, "status": str(MachineStatus.DOWN), "moves": moves}

    @method(roles=(Role.MAINTAINER, Role.ADMIN), args={"machine": _NAME, "reason": _REASON})
    def up(self, call: Call, *, machine: str, reason: str) -> dict[str, Any]:
        """Return a down or degraded machine to service and clear its at-risk flag."""
        record = existing_machine(call.state, machine)
        if record.status is MachineStatus.RUNNING:
            raise ConflictError(f"machine {machine} is already running")
        if record.status is MachineStatus.MAINTENANCE:
            raise ConflictError(
                f"machine {machine} is under maintenance: close work order {record.work_order}"
            )
        change_status(
            call, record, MachineStatus.RUNNING, reason or "back in service", at_risk=None
        )
        return {"machine": machine, "status": str(MachineStatus.RUNNING)}

    @method(
        roles=(Role.ADMIN,),
        args={
            "machine": _NAME,
            "probability_bp": Int(min=0, max=BASIS_POINTS),
            "reason": _REASON,
        },
    )
    def flag_at_risk(
        self, call: Call, *, machine: str, probability_bp: int, reason: str
    ) -> dict[str, Any]:
        """Flag a machine at risk of failure (probability in basis points); it stops taking new
        work and its queued orders move to other capable machines. The admin's hand: an oracle
        key alone never flags a machine, its reports count only toward a quorum (oracle.report).
        """
        return flag_machine_at_risk(
            call, machine, probability_bp, source=call.sender_name, reason=reason
        )

    def query(self, state: StateReader, path: Sequence[str]) -> Any:
        if len(path) == 0:
            return {machine.id: _view(state, machine) for machine in all_machines(state)}
        machine = read_machine(state, path[0])
        if machine is None:
            raise QueryError(f"no machine {path[0]!a}")
        if len(path) == 1:
            return _view(state, machine)
        if path[1] == "readings" and len(path) == 2:
            return recent_readings(state, machine.id, READINGS_QUERY_MAX)
        if path[1] == "readings" and len(path) == 3 and is_decimal(path[2]):
            reading = read_reading(state, machine.id, int(path[2]))
            if reading is None:
                raise QueryError(f"machine {machine.id} has no reading {path[2]}")
            return {"seq": int(path[2]), **reading}
        raise QueryError(
            f"machines queries take [], [machine], [machine, 'readings'] or "
            f"[machine, 'readings', seq], got {list(path)!a}"
        )


def _view(state: StateReader, machine: Machine) -> dict[str, Any]:
    queue = queued_numbers(state, machine.id)
    return {
        **machine.summary(),
        "queue": [order_id(number) for number, _ in queue],
        "queued_ms": sum(duration_ms for _, duration_ms in queue),
    }
