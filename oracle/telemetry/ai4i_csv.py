"""Telemetry files in the AI4I 2020 column layout.

The columns are exactly the real file's, so tools written for AI4I read ours and a model trained
on simulated data can be evaluated on the real file. The machine is encoded in "Product ID" as
"{Type}-{machine}-{seq}" (for example "M-m03-00042"): AI4I tools treat that column as an opaque
identifier. Machines are concatenated, each in operation order; "UDI" numbers the rows from 1.
A file whose Product IDs are AI4I's own ("M14860") reads as one machine, "ai4i", in row order.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Final

from ledger.hashing import sha256
from oracle.errors import TelemetryError
from oracle.telemetry.reading import Quality, Reading

COLUMNS: Final = (
    "UDI",
    "Product ID",
    "Type",
    "Air temperature [K]",
    "Process temperature [K]",
    "Rotational speed [rpm]",
    "Torque [Nm]",
    "Tool wear [min]",
    "Machine failure",
    "TWF",
    "HDF",
    "PWF",
    "OSF",
    "RNF",
)
REAL_FILE_MACHINE_ID: Final = "ai4i"
# Quality, machine id (which may hold "-" too: the seq is what follows the last one), seq.
_PRODUCT_ID = re.compile(r"([LMH])-([A-Za-z0-9_-][A-Za-z0-9_.-]{0,63})-([0-9]+)")
_FLAG_COLUMNS: Final = {"TWF": "twf", "HDF": "hdf", "PWF": "pwf", "OSF": "osf", "RNF": "rnf"}


def _tenths(value: int) -> str:
    return f"{value // 10}.{value % 10}"


def _row(udi: int, reading: Reading) -> list[str]:
    product_id = f"{reading.quality.value}-{reading.machine_id}-{reading.seq:05d}"
    flags = [str(int(getattr(reading, name))) for name in _FLAG_COLUMNS.values()]
    return [
        str(udi),
        product_id,
        reading.quality.value,
        _tenths(reading.air_temp_dk),
        _tenths(reading.process_temp_dk),
        str(reading.speed_rpm),
        _tenths(reading.torque_dnm),
        str(reading.wear_min),
        str(int(reading.machine_failure)),
        *flags,
    ]


def to_csv_text(readings: Iterable[Reading]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows(_row(udi, reading) for udi, reading in enumerate(readings, start=1))
    return buffer.getvalue()


def readings_sha256(readings: Iterable[Reading]) -> str:
    """sha256 of the CSV text `write_csv` would write: equals the file's hash for our files."""
    return sha256(to_csv_text(readings).encode("utf-8")).hex()


def file_sha256(path: Path) -> str:
    return sha256(path.read_bytes()).hex()


def write_csv(readings: Sequence[Reading], path: Path) -> str:
    """Write `readings` in the AI4I layout; returns the file's sha256 (hex)."""
    data = to_csv_text(readings).encode("utf-8")
    path.write_bytes(data)
    return sha256(data).hex()


def read_csv(path: Path) -> list[Reading]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise TelemetryError(f"cannot read telemetry file {path}: {exc}") from exc
    return parse_csv_text(text, source=str(path))


def parse_csv_text(text: str, *, source: str = "<text>") -> list[Reading]:
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None or tuple(header) != COLUMNS:
        raise TelemetryError(f"{source}: header {header!r} is not the AI4I layout {COLUMNS!r}")
    readings: list[Reading] = []
    for line, row in enumerate(reader, start=2):
        if not row:
            continue
        try:
            readings.append(_parse_row(row, index=len(readings)))
        except TelemetryError as exc:
            raise TelemetryError(f"{source}:{line}: {exc}") from exc
    return readings


def _parse_row(row: list[str], *, index: int) -> Reading:
    if len(row) != len(COLUMNS):
        raise TelemetryError(f"{len(row)} fields, expected {len(COLUMNS)}")
    cell = dict(zip(COLUMNS, row, strict=True))
    quality = _quality(cell["Type"])
    machine_id, seq = _machine_and_seq(cell["Product ID"], index)
    return Reading(
        machine_id=machine_id,
        seq=seq,
        quality=quality,
        air_temp_dk=_fixed(cell["Air temperature [K]"], 10),
        process_temp_dk=_fixed(cell["Process temperature [K]"], 10),
        speed_rpm=_fixed(cell["Rotational speed [rpm]"], 1),
        torque_dnm=_fixed(cell["Torque [Nm]"], 10),
        wear_min=_fixed(cell["Tool wear [min]"], 1),
        machine_failure=_flag(cell["Machine failure"]),
        **{name: _flag(cell[column]) for column, name in _FLAG_COLUMNS.items()},
    )


def _quality(text: str) -> Quality:
    try:
        return Quality(text)
    except ValueError as exc:
        raise TelemetryError(f"Type {text!r} is not one of L, M, H") from exc


def _machine_and_seq(product_id: str, index: int) -> tuple[str, int]:
    match = _PRODUCT_ID.fullmatch(product_id)
    if match is None:
        return REAL_FILE_MACHINE_ID, index
    return match.group(2), int(match.group(3))


def _fixed(text: str, scale: int) -> int:
    """A decimal number as an integer count of 1/scale units; refuses finer resolution."""
    try:
        scaled = Decimal(text.strip()) * scale
    except InvalidOperation as exc:
        raise TelemetryError(f"{text!r} is not a number") from exc
    if not scaled.is_finite():
        raise TelemetryError(f"{text!r} is not a finite number")
    if scaled != scaled.to_integral_value():
        raise TelemetryError(f"{text!r} has more than {len(str(scale)) - 1} decimal places")
    return int(scaled)


def _flag(text: str) -> bool:
    if text.strip() not in ("0", "1"):
        raise TelemetryError(f"failure flag {text!r}, expected 0 or 1")
    return text.strip() == "1"
