"""One operation of one machine as the chain sees it: integer fields and the failure flags.

Units are those of the AI4I 2020 CSV at its own resolution, so a reading round-trips through the
file exactly: temperatures in deci-kelvin, speed in rpm, torque in deci-newton-metres, tool wear in
minutes. `machine_failure` is the data set's "Machine failure" column: the simulator sets it to
"any failure mode", a record read from the real file keeps whatever the file says.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Any, Final

from oracle.errors import TelemetryError

# As the chain names machines (contracts.schema.NAME_PATTERN, 64 characters at most): the oracle
# must take every reading the chain accepts, or its reports would stop at the first it cannot.
MACHINE_ID_PATTERN: Final = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}")
SEQ_MAX: Final = 10**12 - 1  # the machines contract's
FIELD_MAX: Final = 10**7  # above every other field's bound on the chain
FLAG_NAMES: Final = ("twf", "hdf", "pwf", "osf", "rnf")
_INT_FIELDS: Final = (
    "seq",
    "air_temp_dk",
    "process_temp_dk",
    "speed_rpm",
    "torque_dnm",
    "wear_min",
)


class Quality(enum.StrEnum):
    """Product quality variant of an operation (AI4I "Type")."""

    L = "L"
    M = "M"
    H = "H"


@dataclass(frozen=True, slots=True, kw_only=True)
class Reading:
    machine_id: str
    seq: int
    quality: Quality
    air_temp_dk: int
    process_temp_dk: int
    speed_rpm: int
    torque_dnm: int
    wear_min: int
    machine_failure: bool = False
    twf: bool = False
    hdf: bool = False
    pwf: bool = False
    osf: bool = False
    rnf: bool = False

    def __post_init__(self) -> None:
        if not MACHINE_ID_PATTERN.fullmatch(self.machine_id):
            raise TelemetryError(
                f"machine id {self.machine_id!r} must be 1-64 of [A-Za-z0-9_.-], not starting "
                "with '.'"
            )
        if not isinstance(self.quality, Quality):
            raise TelemetryError(f"quality {self.quality!r} is not one of L, M, H")
        for name in _INT_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TelemetryError(f"{name} is {value!r}, expected an integer")
            value_max = SEQ_MAX if name == "seq" else FIELD_MAX
            if not 0 <= value <= value_max:
                raise TelemetryError(f"{name} is {value}, expected 0..{value_max}")
        for name in ("machine_failure", *FLAG_NAMES):
            if not isinstance(getattr(self, name), bool):
                raise TelemetryError(f"{name} is {getattr(self, name)!r}, expected a bool")

    @property
    def flags(self) -> dict[str, bool]:
        return {name: bool(getattr(self, name)) for name in FLAG_NAMES}

    def to_map(self) -> dict[str, Any]:
        """The reading as a map of str, int and bool: canonical-encodable, no floats."""
        return {
            "machine_id": self.machine_id,
            "seq": self.seq,
            "quality": self.quality.value,
            "air_temp_dk": self.air_temp_dk,
            "process_temp_dk": self.process_temp_dk,
            "speed_rpm": self.speed_rpm,
            "torque_dnm": self.torque_dnm,
            "wear_min": self.wear_min,
            "machine_failure": self.machine_failure,
            **self.flags,
        }

    @classmethod
    def from_map(cls, value: dict[str, Any]) -> Reading:
        expected = set(cls.__dataclass_fields__)
        if set(value) != expected:
            raise TelemetryError(f"reading keys {sorted(value)} differ from {sorted(expected)}")
        try:
            quality = Quality(value["quality"])
        except ValueError as exc:
            raise TelemetryError(f"quality {value['quality']!r} is not one of L, M, H") from exc
        return cls(**{**value, "quality": quality})
