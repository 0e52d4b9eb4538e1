"""Every candidate model trained on one set and evaluated on another, side by side."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from oracle.model.estimators import MODEL_NAMES
from oracle.model.evaluation import Evaluation, evaluate
from oracle.model.training import train
from oracle.telemetry.reading import Reading


@dataclass(frozen=True, slots=True, kw_only=True)
class Comparison:
    name: str
    fit_s: float
    threshold_bp: int
    validation_f1: float
    test: Evaluation

    def to_map(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "fit_s": round(self.fit_s, 2),
            "threshold_bp": self.threshold_bp,
            "validation_f1": self.validation_f1,
            "test": self.test.to_map(),
        }


def compare(
    fit_readings: Sequence[Reading],
    test_readings: Sequence[Reading],
    *,
    horizon: int = 0,
    seed: int = 0,
    names: Sequence[str] = MODEL_NAMES,
    on_done: Callable[[str], None] | None = None,
) -> list[Comparison]:
    """Train each model in `names` on `fit_readings`, evaluate on `test_readings`."""
    rows = []
    for name in names:
        started = time.perf_counter()  # reported, never used in a decision
        model = train(fit_readings, model_name=name, horizon=horizon, seed=seed)
        fit_s = time.perf_counter() - started
        rows.append(
            Comparison(
                name=name,
                fit_s=fit_s,
                threshold_bp=model.threshold_bp,
                validation_f1=model.metadata.validation["f1"],
                test=evaluate(model, test_readings),
            )
        )
        if on_done is not None:
            on_done(name)
    return rows
