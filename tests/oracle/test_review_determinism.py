"""Review: a reading's basis points do not depend on the batch it is predicted in.

Each validator predicts all the readings committed since its last report in one call, so two
validators batch the same reading differently, and `millchain oracle verify` predicts it alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from scipy.special import logit

from oracle.model import FaultModel, feature_matrix, train
from oracle.model.fault_model import to_bp
from oracle.telemetry import Reading, simulate_fleet

INTERCEPT_STEPS_MAX = 400


def _sklearn_bp(estimator: Any, readings: Sequence[Reading]) -> list[int]:
    return to_bp(np.asarray(estimator.predict_proba(feature_matrix(readings))[:, 1]))


def _logistic_on_a_rounding_edge(
    fleet: list[Reading], readings: list[Reading]
) -> tuple[FaultModel, int] | None:
    """A logistic fault model and the index of a reading of `readings` that sklearn, asked for
    the whole batch, puts in another basis point than asked for that reading alone: the
    model's intercept moved (in steps of one ulp) until the reading's probability lies
    between the two sums of its terms, on the edge between two basis points. None where
    this platform's BLAS sums alike whatever the batch."""
    model = train(fleet, model_name="logistic", horizon=0, seed=5)
    linear = model.estimator[-1]
    batch = model.estimator.predict_proba(feature_matrix(readings))[:, 1]
    for index, reading in enumerate(readings):
        alone = model.estimator.predict_proba(feature_matrix([reading]))[0, 1]
        if alone == batch[index]:
            continue
        # The intercept that puts the reading at 5000.5 bp, then ulp steps either way.
        middle = (logit(alone) + logit(batch[index])) / 2
        start = linear.intercept_[0] + logit(0.50005) - middle
        for direction in (np.inf, -np.inf):
            linear.intercept_[0] = start
            for _ in range(INTERCEPT_STEPS_MAX):
                if (
                    _sklearn_bp(model.estimator, readings)[index]
                    != (_sklearn_bp(model.estimator, [reading])[0])
                ):
                    return FaultModel(model.estimator, model.metadata), index
                linear.intercept_[0] = np.nextafter(linear.intercept_[0], direction)
    return None


def test_a_logistic_models_basis_points_do_not_depend_on_the_batch(fleet: list[Reading]) -> None:
    readings = simulate_fleet(machines=1, operations=64, seed=12)
    found = _logistic_on_a_rounding_edge(fleet, readings)
    if found is None:
        pytest.skip("this platform's BLAS sums a row alike in any batch")
    model, index = found
    assert model.predict_bp(readings)[index] == model.predict_bp([readings[index]])[0]
    assert model.predict_bp(readings) == [model.predict_bp([r])[0] for r in readings]
