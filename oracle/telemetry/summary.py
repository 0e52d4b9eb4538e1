"""The summary figures of a telemetry set, and those of the real AI4I 2020 data to match."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final

import numpy as np

from oracle.errors import TelemetryError
from oracle.telemetry.columns import columns
from oracle.telemetry.reading import FLAG_NAMES, Reading

# The published figures of the 10,000 real records.
AI4I_FIGURES: Final[dict[str, float]] = {
    "records": 10_000,
    "speed_rpm_mean": 1539.0,
    "speed_rpm_std": 179.0,
    "torque_nm_mean": 40.0,
    "torque_nm_std": 10.0,
    "speed_torque_corr": -0.875,
    "power_w_mean": 6280.0,
    "power_w_std": 1067.0,
    "power_w_p01": 3837.0,
    "power_w_p99": 8821.0,
    "temp_diff_k_mean": 10.0,
    "temp_diff_k_std": 1.0,
    "wear_min_max": 253.0,
    "failures": 339,
    "twf": 46,
    "hdf": 115,
    "pwf": 95,
    "osf": 98,
    "rnf": 19,
}
COUNT_KEYS: Final = ("failures", *FLAG_NAMES)


def summary(readings: Sequence[Reading]) -> dict[str, float]:
    """The AI4I figures of `readings`; counts are raw (compare per 10,000 via `records`)."""
    if len(readings) < 2:
        raise TelemetryError(f"a summary needs at least 2 readings, got {len(readings)}")
    col = columns(readings)
    speed_rpm = col["speed_rpm"].astype(np.float64)
    torque_nm = col["torque_dnm"] / 10.0
    power_w = torque_nm * speed_rpm * 2.0 * math.pi / 60.0
    temp_diff_k = (col["process_temp_dk"] - col["air_temp_dk"]) / 10.0
    figures: dict[str, float] = {
        "records": len(readings),
        "speed_rpm_mean": float(speed_rpm.mean()),
        "speed_rpm_std": float(speed_rpm.std(ddof=1)),
        "torque_nm_mean": float(torque_nm.mean()),
        "torque_nm_std": float(torque_nm.std(ddof=1)),
        "speed_torque_corr": float(np.corrcoef(speed_rpm, torque_nm)[0, 1]),
        "power_w_mean": float(power_w.mean()),
        "power_w_std": float(power_w.std(ddof=1)),
        "power_w_p01": float(np.percentile(power_w, 1)),
        "power_w_p99": float(np.percentile(power_w, 99)),
        "temp_diff_k_mean": float(temp_diff_k.mean()),
        "temp_diff_k_std": float(temp_diff_k.std(ddof=1)),
        "wear_min_max": float(col["wear_min"].max()),
        "failures": int(col["machine_failure"].sum()),
    }
    for name in FLAG_NAMES:
        figures[name] = int(col[name].sum())
    return figures
