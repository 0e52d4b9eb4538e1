"""The AI4I 2020 failure rules, as pure functions of integer-encoded readings.

The rules are the ones the data set's documentation states. They are evaluated on the recorded
(rounded) values, so a reading's flags always agree with its own fields, and the features of the
fault model can compute the same quantities exactly.
"""

from __future__ import annotations

import math
from typing import Final

# Heat dissipation failure: process minus air temperature below 8.6 K and speed below 1380 rpm.
HDF_TEMP_DIFF_DK_MIN: Final = 86
HDF_SPEED_RPM_MIN: Final = 1380
# Power failure: mechanical power outside [3500 W, 9000 W].
PWF_POWER_W_MIN: Final = 3500.0
PWF_POWER_W_MAX: Final = 9000.0
# Overstrain failure: tool wear x torque above this limit, per product quality (min x Nm).
OSF_LIMIT_MINNM: Final = {"L": 11_000, "M": 12_000, "H": 13_000}
# Tool wear added by one operation, per product quality (minutes).
WEAR_STEP_MIN: Final = {"L": 2, "M": 3, "H": 5}

_RAD_PER_S_PER_RPM: Final = 2.0 * math.pi / 60.0


def power_w(*, torque_dnm: int, speed_rpm: int) -> float:
    """Mechanical power: torque (Nm) times angular speed (rad/s)."""
    return torque_dnm / 10.0 * speed_rpm * _RAD_PER_S_PER_RPM


def strain_minnm(*, wear_min: int, torque_dnm: int) -> float:
    """Tool wear times torque, the overstrain quantity (min x Nm)."""
    return wear_min * torque_dnm / 10.0


def heat_dissipation_fails(*, air_temp_dk: int, process_temp_dk: int, speed_rpm: int) -> bool:
    too_hot = process_temp_dk - air_temp_dk < HDF_TEMP_DIFF_DK_MIN
    return too_hot and speed_rpm < HDF_SPEED_RPM_MIN


def power_fails(*, torque_dnm: int, speed_rpm: int) -> bool:
    power = power_w(torque_dnm=torque_dnm, speed_rpm=speed_rpm)
    return power < PWF_POWER_W_MIN or power > PWF_POWER_W_MAX


def overstrain_fails(*, quality: str, wear_min: int, torque_dnm: int) -> bool:
    # Integer comparison in deci-units keeps the rule exact: wear x torque_dnm vs limit x 10.
    return wear_min * torque_dnm > OSF_LIMIT_MINNM[quality] * 10
