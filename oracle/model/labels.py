"""Training labels for a horizon: does the machine fail within the next H operations?

H = 0 labels a reading with its own "Machine failure" flag. H > 0 labels it positive when that
reading or any of the next H readings of the same machine (in operation order) failed. A reading
near the end of its machine's series sees fewer than H successors: the label covers what exists.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from oracle.errors import TrainingError
from oracle.telemetry.reading import FLAG_NAMES, Reading

BoolArray = npt.NDArray[np.bool_]


def horizon_labels(
    readings: Sequence[Reading], horizon: int, flag: str = "machine_failure"
) -> BoolArray:
    """`flag` of each reading, widened to the next `horizon` readings of its machine."""
    if horizon < 0:
        raise TrainingError(f"horizon {horizon} is negative, expected 0 or more operations")
    own = np.fromiter((bool(getattr(r, flag)) for r in readings), np.bool_, len(readings))
    if horizon == 0:
        return own
    labels = np.zeros(len(readings), dtype=np.bool_)
    for indices in _machine_orders(readings).values():
        series = own[indices]
        labels[indices] = _any_ahead(series, horizon)
    return labels


def target_labels(
    readings: Sequence[Reading], horizon: int, modes: Sequence[str] = ()
) -> BoolArray:
    """What a model predicts: any failure (no `modes`), or one of the failure `modes` (flags
    such as "twf", "osf"), within the next `horizon` operations."""
    if not modes:
        return horizon_labels(readings, horizon)
    unknown = sorted(set(modes) - set(FLAG_NAMES))
    if unknown:
        raise TrainingError(
            f"unknown failure mode {unknown[0]!r}, expected some of {', '.join(FLAG_NAMES)}"
        )
    labels = np.zeros(len(readings), dtype=np.bool_)
    for mode in modes:
        labels |= horizon_labels(readings, horizon, flag=mode)
    return labels


def _machine_orders(readings: Sequence[Reading]) -> dict[str, npt.NDArray[np.int64]]:
    groups: dict[str, list[int]] = defaultdict(list)
    for index, reading in enumerate(readings):
        groups[reading.machine_id].append(index)
    return {
        machine: np.array(sorted(indices, key=lambda i: readings[i].seq), dtype=np.int64)
        for machine, indices in groups.items()
    }


def _any_ahead(series: BoolArray, horizon: int) -> BoolArray:
    """out[i] = any(series[i : i + horizon + 1])."""
    counts = np.concatenate([[0], np.cumsum(series, dtype=np.int64)])
    ends = np.minimum(np.arange(len(series)) + horizon + 1, len(series))
    ahead: BoolArray = (counts[ends] - counts[: len(series)]) > 0
    return ahead
