"""AI4I 2020 CSV layout: exact round trip, the real file's Product IDs, malformed files."""

from __future__ import annotations

from pathlib import Path

import pytest

from oracle.errors import TelemetryError
from oracle.telemetry import Quality, Reading, read_csv, simulate_fleet, write_csv
from oracle.telemetry.ai4i_csv import COLUMNS, REAL_FILE_MACHINE_ID, file_sha256, parse_csv_text

REAL_HEADER = (
    "UDI,Product ID,Type,Air temperature [K],Process temperature [K],Rotational speed [rpm],"
    "Torque [Nm],Tool wear [min],Machine failure,TWF,HDF,PWF,OSF,RNF"
)


def test_round_trip_keeps_every_field(tmp_path: Path) -> None:
    readings = simulate_fleet(3, 400, seed=2)
    path = tmp_path / "telemetry.csv"
    digest = write_csv(readings, path)
    assert read_csv(path) == readings
    assert digest == file_sha256(path)


def test_header_is_exactly_the_ai4i_layout(tmp_path: Path) -> None:
    path = tmp_path / "telemetry.csv"
    write_csv(simulate_fleet(1, 3, seed=2), path)
    assert path.read_text().splitlines()[0] == REAL_HEADER == ",".join(COLUMNS)


def test_machine_is_encoded_in_product_id(tmp_path: Path) -> None:
    path = tmp_path / "telemetry.csv"
    write_csv(simulate_fleet(2, 3, seed=2), path)
    rows = [line.split(",") for line in path.read_text().splitlines()[1:]]
    assert [row[0] for row in rows] == ["1", "2", "3", "4", "5", "6"]
    assert rows[4][1] == f"{rows[4][2]}-m01-00001"


def test_a_machine_id_with_dashes_round_trips(tmp_path: Path) -> None:
    reading = Reading(
        machine_id="press-1-00007",
        seq=42,
        quality=Quality.H,
        air_temp_dk=2981,
        process_temp_dk=3087,
        speed_rpm=1400,
        torque_dnm=650,
        wear_min=190,
    )
    path = tmp_path / "dashes.csv"
    write_csv([reading], path)
    assert read_csv(path) == [reading]


def test_real_ai4i_rows_read_as_one_machine_in_file_order() -> None:
    text = (
        REAL_HEADER + "\n"
        "1,M14860,M,298.1,308.6,1551,42.8,0,0,0,0,0,0,0\n"
        "2,L47181,L,298.2,308.7,1408,46.3,3,0,0,0,0,0,0\n"
        "3,L47182,L,298.1,308.5,1498,49.4,5,1,0,0,0,0,1\n"
    )
    readings = parse_csv_text(text)
    assert [r.machine_id for r in readings] == [REAL_FILE_MACHINE_ID] * 3
    assert [r.seq for r in readings] == [0, 1, 2]
    assert readings[0].air_temp_dk == 2981 and readings[0].torque_dnm == 428
    assert readings[2].machine_failure and readings[2].rnf


def _one_row(row: str) -> list[Reading]:
    return parse_csv_text(REAL_HEADER + "\n" + row + "\n")


def test_wrong_header_is_refused() -> None:
    with pytest.raises(TelemetryError, match="header"):
        parse_csv_text("UDI,Type\n1,M\n")


@pytest.mark.parametrize(
    ("row", "complaint"),
    [
        ("1,M14860,X,298.1,308.6,1551,42.8,0,0,0,0,0,0,0", "Type"),
        ("1,M14860,M,298.15,308.6,1551,42.8,0,0,0,0,0,0,0", "decimal places"),
        ("1,M14860,M,warm,308.6,1551,42.8,0,0,0,0,0,0,0", "not a number"),
        ("1,M14860,M,Infinity,308.6,1551,42.8,0,0,0,0,0,0,0", "not a finite number"),
        ("1,M14860,M,298.1,NaN,1551,42.8,0,0,0,0,0,0,0", "not a finite number"),
        ("1,M14860,M,298.1,308.6,1551,42.8,0,2,0,0,0,0,0", "0 or 1"),
        ("1,M14860,M,298.1,308.6,1551,42.8,0", "fields"),
    ],
)
def test_malformed_rows_are_refused_with_their_line(row: str, complaint: str) -> None:
    with pytest.raises(TelemetryError, match=complaint) as caught:
        _one_row(row)
    assert ":2:" in str(caught.value)
