"""Physics features of readings: what the failure rules look at, in the units they use.

Every feature is a float64 computed from a reading's integer fields alone, so any node computes
the same matrix from the same on-chain readings. The margins put the documented limits into the
features, which lets a smooth model (SVM, logistic) draw the same boundaries a tree finds by
splitting: heat dissipation (temperature difference vs 8.6 K, speed vs 1380 rpm), power (distance
to the 3500-9000 W band) and overstrain (wear x torque relative to the quality's limit).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np
import numpy.typing as npt

from oracle.telemetry import physics
from oracle.telemetry.columns import columns
from oracle.telemetry.reading import Reading

FEATURE_NAMES: Final = (
    "quality",
    "air_temp_k",
    "process_temp_k",
    "temp_diff_k",
    "heat_margin_k",
    "speed_rpm",
    "heat_speed_margin_rpm",
    "torque_nm",
    "power_w",
    "power_margin_w",
    "wear_min",
    "strain_minnm",
    "strain_ratio",
)
_OSF_LIMIT_BY_CODE: Final = np.array(
    [physics.OSF_LIMIT_MINNM[q] for q in ("L", "M", "H")], dtype=np.float64
)

FloatMatrix = npt.NDArray[np.float64]


def feature_matrix(readings: Sequence[Reading]) -> FloatMatrix:
    """One row per reading, one column per name in FEATURE_NAMES."""
    col = columns(readings)
    air_temp_k = col["air_temp_dk"] / 10.0
    process_temp_k = col["process_temp_dk"] / 10.0
    temp_diff_k = (col["process_temp_dk"] - col["air_temp_dk"]) / 10.0
    speed_rpm = col["speed_rpm"].astype(np.float64)
    torque_nm = col["torque_dnm"] / 10.0
    power_w = torque_nm * speed_rpm * (2.0 * np.pi / 60.0)
    wear_min = col["wear_min"].astype(np.float64)
    strain_minnm = wear_min * torque_nm
    features = {
        "quality": col["quality"].astype(np.float64),
        "air_temp_k": air_temp_k,
        "process_temp_k": process_temp_k,
        "temp_diff_k": temp_diff_k,
        "heat_margin_k": temp_diff_k - physics.HDF_TEMP_DIFF_DK_MIN / 10.0,
        "speed_rpm": speed_rpm,
        "heat_speed_margin_rpm": speed_rpm - physics.HDF_SPEED_RPM_MIN,
        "torque_nm": torque_nm,
        "power_w": power_w,
        "power_margin_w": np.minimum(
            power_w - physics.PWF_POWER_W_MIN, physics.PWF_POWER_W_MAX - power_w
        ),
        "wear_min": wear_min,
        "strain_minnm": strain_minnm,
        "strain_ratio": strain_minnm / _OSF_LIMIT_BY_CODE[col["quality"]],
    }
    return np.column_stack([features[name] for name in FEATURE_NAMES]).astype(np.float64)
