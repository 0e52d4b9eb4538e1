"""Horizon labels: a failure within the next H operations of the same machine."""

from __future__ import annotations

import pytest

from oracle.errors import TrainingError
from oracle.model.labels import horizon_labels
from oracle.telemetry import Quality, Reading


def _reading(machine: str, seq: int, failed: bool) -> Reading:
    return Reading(
        machine_id=machine,
        seq=seq,
        quality=Quality.L,
        air_temp_dk=3000,
        process_temp_dk=3100,
        speed_rpm=1500,
        torque_dnm=400,
        wear_min=seq,
        machine_failure=failed,
    )


def _series() -> list[Reading]:
    a = [_reading("a", i, i == 4) for i in range(6)]
    b = [_reading("b", i, i == 0) for i in range(3)]
    return a + b


def test_horizon_zero_is_the_records_own_flag() -> None:
    assert horizon_labels(_series(), 0).tolist() == [0, 0, 0, 0, 1, 0, 1, 0, 0]


def test_horizon_looks_ahead_within_one_machine_only() -> None:
    # machine a fails at seq 4; b's failure at seq 0 must not leak into a's last records.
    assert horizon_labels(_series(), 2).tolist() == [0, 0, 1, 1, 1, 0, 1, 0, 0]


def test_horizon_follows_operation_order_not_file_order() -> None:
    shuffled = list(reversed(_series()))
    assert horizon_labels(shuffled, 2).tolist() == list(reversed(horizon_labels(_series(), 2)))


def test_negative_horizon_is_refused() -> None:
    with pytest.raises(TrainingError, match="horizon"):
        horizon_labels(_series(), -1)
