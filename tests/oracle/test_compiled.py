"""The compiled forest gives sklearn's probabilities bit for bit, or is not used."""

from __future__ import annotations

import numpy as np
import pytest

from oracle.model import FaultModel, fault_model, train
from oracle.model.compiled import CompiledForest, compile_model
from oracle.model.estimators import build_estimator
from oracle.model.features import feature_matrix
from oracle.telemetry import Reading, simulate_fleet


def _sklearn_positive(model: FaultModel, matrix: np.ndarray) -> np.ndarray:
    return np.asarray(model.estimator.predict_proba(matrix)[:, 1], dtype=np.float64)


def _on_thresholds(model: FaultModel, rows: int, seed: int) -> np.ndarray:
    """Readings moved so that features sit exactly on the trees' split thresholds, and on the
    float64 values just above and below them: where x <= threshold and float32 rounding decide
    the branch."""
    compiled = compile_model(model.estimator)
    assert compiled is not None
    forest = model.estimator.calibrated_classifiers_[0].estimator
    rng = np.random.default_rng(seed)
    base = feature_matrix(simulate_fleet(machines=2, operations=rows, seed=seed))[:rows].copy()
    for row in range(rows):
        tree = forest.estimators_[int(rng.integers(len(forest.estimators_)))].tree_
        splits = np.flatnonzero(tree.children_left != -1)
        for node in rng.choice(splits, size=min(4, len(splits)), replace=False):
            threshold = float(tree.threshold[node])
            nudge = rng.integers(3)
            value = (
                threshold
                if nudge == 0
                else np.nextafter(threshold, np.inf if nudge == 1 else -np.inf)
            )
            base[row, int(tree.feature[node])] = value
    return base


def test_random_forest_matches_sklearn_exactly(small_model: FaultModel) -> None:
    compiled = compile_model(small_model.estimator)
    assert compiled is not None
    matrix = feature_matrix(simulate_fleet(machines=4, operations=500, seed=23))
    assert np.array_equal(compiled.positive(matrix), _sklearn_positive(small_model, matrix))


def test_matches_sklearn_on_split_thresholds(small_model: FaultModel) -> None:
    compiled = compile_model(small_model.estimator)
    assert compiled is not None
    matrix = _on_thresholds(small_model, rows=400, seed=3)
    assert np.array_equal(compiled.positive(matrix), _sklearn_positive(small_model, matrix))
    # The forest alone, before calibration maps its output onto a few steps:
    forest = small_model.estimator.calibrated_classifiers_[0].estimator
    raw = forest.predict_proba(matrix)[:, 1]
    assert np.array_equal(CompiledForest(forest).positive(matrix), raw)
    # The nudged readings do reach many different leaves: the checks are not vacuous.
    assert len(np.unique(raw)) > 50


def test_single_reading_and_predict_bp(small_model: FaultModel, fleet: list[Reading]) -> None:
    compiled = compile_model(small_model.estimator)
    assert compiled is not None
    for reading in fleet[:50]:
        matrix = feature_matrix([reading])
        assert np.array_equal(compiled.positive(matrix), _sklearn_positive(small_model, matrix))
    with_sklearn = FaultModel(small_model.estimator, small_model.metadata)
    with_sklearn._compiled = None
    assert small_model.predict_bp(fleet[:300]) == with_sklearn.predict_bp(fleet[:300])


@pytest.mark.parametrize("name", ["extra_trees"])
def test_extra_trees_compile_and_match(name: str, fleet: list[Reading]) -> None:
    model = train(fleet, model_name=name, horizon=0, seed=7)
    compiled = compile_model(model.estimator)
    assert compiled is not None
    matrix = feature_matrix(simulate_fleet(machines=2, operations=400, seed=29))
    assert np.array_equal(compiled.positive(matrix), _sklearn_positive(model, matrix))


@pytest.mark.parametrize("name", ["logistic", "hist_gradient_boosting"])
def test_other_estimators_are_not_compiled(name: str, fleet: list[Reading]) -> None:
    model = train(fleet, model_name=name, horizon=0, seed=7)
    assert compile_model(model.estimator) is None
    # and the model predicts with sklearn itself
    matrix = feature_matrix(fleet[:20])
    assert model.predict_bp(fleet[:20]) == [
        int(v) for v in np.clip(np.rint(_sklearn_positive(model, matrix) * 10_000), 0, 10_000)
    ]


def test_nan_features_go_through_sklearn(
    small_model: FaultModel, fleet: list[Reading], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A walk through the compiled trees has no notion of missing values, so a matrix holding
    NaN is predicted by sklearn (which knows where each tree sends them)."""
    matrix = feature_matrix(fleet[:20])
    matrix[3, 0] = np.nan
    monkeypatch.setattr(fault_model, "feature_matrix", lambda readings: matrix.copy())

    class Refuses:
        def positive(self, matrix: np.ndarray) -> np.ndarray:
            raise AssertionError("the compiled forest was used on NaN")

    model = FaultModel(small_model.estimator, small_model.metadata)
    model._compiled = Refuses()  # type: ignore[assignment]
    assert np.array_equal(model.predict_proba(fleet[:20]), _sklearn_positive(model, matrix))


def test_unfitted_estimator_is_not_compiled() -> None:
    assert compile_model(build_estimator("random_forest", random_state=0)) is None
