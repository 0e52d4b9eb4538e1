"""Machine records, sensor readings and the one layout of machine state (no contract here).

    machines/machine/<machine id>                 the machine record (`Machine`)
    machines/reading/<machine id>/<seq, 12 digits>  one sensor reading, addressable by
                                                  (machine, seq) for the oracle to reference

Status and accounting. A machine is `running` (in service: it takes new work), `degraded`
(flagged at risk or reported unwell: it may finish what it produces but takes no new work),
`down`, or under `maintenance` (a work order was taken). Every status change goes through
`change_status`, which adds the time since the last change to `downtime_ms` when the machine was
down or under maintenance; `production_ms` grows by the time between an order's start and its
completion. Both come from block timestamps only.

Tool wear. Readings carry the tool wear the machine reports; a closed work order that replaced
the tool moves `tool_wear_baseline_min` to the last reported value, and the machine's effective
tool wear is the reported value minus that baseline.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from contracts.contract import Call
from contracts.errors import NotFoundError, StateError
from contracts.schema import Choice, Int, Record
from contracts.state import StateReader, decode_map, read_map, write_map

CONTRACT = "machines"
MACHINE_PREFIX = b"machines/machine/"
READING_PREFIX = b"machines/reading/"
SEQ_DIGITS = 12
SEQ_MAX = 10**SEQ_DIGITS - 1


class MachineStatus(enum.StrEnum):
    RUNNING = "running"
    DEGRADED = "degraded"
    DOWN = "down"
    MAINTENANCE = "maintenance"


OUT_OF_SERVICE = frozenset({MachineStatus.DOWN, MachineStatus.MAINTENANCE})

# One reading, in the integer units of the AI4I 2020 predictive-maintenance dataset's columns.
READING = Record(
    fields={
        "seq": Int(min=0, max=SEQ_MAX),
        "air_temp_dk": Int(min=0, max=10_000),  # air temperature, deci-kelvin (298.1 K -> 2981)
        "process_temp_dk": Int(min=0, max=10_000),  # process temperature, deci-kelvin
        "rpm": Int(min=0, max=100_000),  # rotational speed
        "torque_cnm": Int(min=0, max=100_000),  # torque, centi-newton-metres (40.5 Nm -> 4050)
        "tool_wear_min": Int(min=0, max=10_000_000),  # tool wear, minutes
        # The product quality variant being made (L, M, H): it sets the overstrain limit.
        "quality": Choice(values=("L", "M", "H"), default="M"),
    }
)
READING_FIELDS = tuple(name for name in READING.fields if name != "seq")


@dataclass(frozen=True, slots=True, kw_only=True)
class Machine:
    id: str
    type: str
    capabilities: tuple[str, ...]  # sorted
    operator: str  # the only machine-role identity that may act for it; "" for any
    status: MachineStatus
    status_since_ms: int
    status_reason: str
    downtime_ms: int
    production_ms: int
    producing: str  # the order in production on it, or ""
    producing_since_ms: int
    last_seq: int  # -1 before the first reading
    last_tool_wear_min: int
    tool_wear_baseline_min: int
    at_risk: dict[str, Any] | None  # {"probability_bp", "source", "reason", "at_ms"} when flagged
    work_order: str  # the work order that holds it under maintenance, or ""

    @property
    def in_service(self) -> bool:
        return self.status is MachineStatus.RUNNING

    @property
    def tool_wear_min(self) -> int:
        return max(0, self.last_tool_wear_min - self.tool_wear_baseline_min)

    def can_make(self, requires: tuple[str, ...]) -> bool:
        return set(requires) <= set(self.capabilities)

    def to_map(self) -> dict[str, Any]:
        record = asdict(self)
        del record["id"]
        record["capabilities"] = list(self.capabilities)
        record["status"] = str(self.status)
        return record

    def summary(self) -> dict[str, Any]:
        return {"id": self.id, **self.to_map(), "tool_wear_min": self.tool_wear_min}

    @classmethod
    def from_map(cls, key: bytes, machine_id: str, value: Mapping[str, Any]) -> Machine:
        expected = {item.name for item in fields(cls)} - {"id"}
        if set(value) != expected:
            raise StateError(f"machine record at {key!a} has fields {sorted(value)}")
        try:
            return cls(
                **{
                    **value,
                    "id": machine_id,
                    "capabilities": tuple(value["capabilities"]),
                    "status": MachineStatus(value["status"]),
                }
            )
        except (TypeError, ValueError) as exc:
            raise StateError(f"machine record at {key!a} is malformed: {exc}") from exc


def machine_key(machine_id: str) -> bytes:
    return MACHINE_PREFIX + machine_id.encode()


def reading_key(machine_id: str, seq: int) -> bytes:
    return reading_prefix(machine_id) + f"{seq:0{SEQ_DIGITS}d}".encode()


def reading_prefix(machine_id: str) -> bytes:
    return READING_PREFIX + machine_id.encode() + b"/"


def subject(machine_id: str) -> str:
    return f"machine:{machine_id}"


def read_machine(state: StateReader, machine_id: str) -> Machine | None:
    key = machine_key(machine_id)
    value = read_map(state, key)
    return None if value is None else Machine.from_map(key, machine_id, value)


def existing_machine(state: StateReader, machine_id: str) -> Machine:
    machine = read_machine(state, machine_id)
    if machine is None:
        known = ", ".join(m.id for m in all_machines(state)) or "none registered"
        raise NotFoundError(f"no machine {machine_id!a}; machines: {known}")
    return machine


def all_machines(state: StateReader) -> list[Machine]:
    """Every machine, sorted by id."""
    return [
        Machine.from_map(key, key[len(MACHINE_PREFIX) :].decode(), decode_map(key, raw))
        for key, raw in state.scan(MACHINE_PREFIX)
    ]


def write_machine(call: Call, machine: Machine) -> None:
    write_map(call.state, machine_key(machine.id), machine.to_map())


def change_status(
    call: Call,
    machine: Machine,
    status: MachineStatus,
    reason: str,
    **changes: Any,
) -> Machine:
    """Move a machine to `status` (with other field changes), account downtime, emit `status`.

    An order in production pauses when its machine goes out of service (down or under
    maintenance: the time worked so far is booked, `production_pause`) and resumes when it
    comes back (its clock starts again, `production_resume`), so no interval counts both as
    production and as downtime."""
    now_ms = call.block.timestamp_ms
    downtime_ms = machine.downtime_ms
    was_out, goes_out = machine.status in OUT_OF_SERVICE, status in OUT_OF_SERVICE
    if was_out:
        downtime_ms += max(0, now_ms - machine.status_since_ms)
    if machine.producing and goes_out and not was_out:
        worked_ms = max(0, now_ms - machine.producing_since_ms)
        changes = {"production_ms": machine.production_ms + worked_ms, **changes}
        call.acting_as(CONTRACT).emit(
            "production_pause",
            subject(machine.id),
            {"order": machine.producing, "worked_ms": worked_ms, "reason": reason},
        )
    elif machine.producing and was_out and not goes_out:
        changes = {"producing_since_ms": now_ms, **changes}
        call.acting_as(CONTRACT).emit(
            "production_resume", subject(machine.id), {"order": machine.producing, "reason": reason}
        )
    updated = replace(
        machine,
        status=status,
        status_since_ms=now_ms,
        status_reason=reason,
        downtime_ms=downtime_ms,
        **changes,
    )
    write_machine(call, updated)
    call.acting_as(CONTRACT).emit(
        "status",
        subject(machine.id),
        {"from": str(machine.status), "to": str(status), "reason": reason},
    )
    return updated


def read_reading(state: StateReader, machine_id: str, seq: int) -> dict[str, Any] | None:
    return read_map(state, reading_key(machine_id, seq))


def recent_readings(state: StateReader, machine_id: str, limit: int) -> list[dict[str, Any]]:
    """The last `limit` readings of a machine, oldest first, each with its `seq`."""
    return [
        {"seq": int(key.rsplit(b"/", 1)[1]), **decode_map(key, raw)}
        for key, raw in state.scan_last(reading_prefix(machine_id), limit)
    ]
