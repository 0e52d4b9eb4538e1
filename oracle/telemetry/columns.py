"""Readings as numpy columns, in the readings' own units, for statistics and features."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from oracle.telemetry.reading import FLAG_NAMES, Reading

_NUMERIC = ("seq", "air_temp_dk", "process_temp_dk", "speed_rpm", "torque_dnm", "wear_min")


def columns(readings: Sequence[Reading]) -> dict[str, npt.NDArray[np.int64]]:
    """One int64 array per numeric field and flag; `quality` as 0/1/2 for L/M/H."""
    out: dict[str, npt.NDArray[np.int64]] = {}
    for name in (*_NUMERIC, "machine_failure", *FLAG_NAMES):
        out[name] = np.fromiter((int(getattr(r, name)) for r in readings), np.int64, len(readings))
    order = {"L": 0, "M": 1, "H": 2}
    out["quality"] = np.fromiter(
        (order[r.quality.value] for r in readings), np.int64, len(readings)
    )
    return out


def machine_labels(readings: Sequence[Reading]) -> list[str]:
    return [reading.machine_id for reading in readings]
