"""Training: features and horizon labels, a stratified split, a calibrated fit, a threshold.

The validation share is held out of the fit; the threshold that maximises F1 on it becomes the
model's `threshold_bp`, and its metrics are kept in the metadata. One seed drives the split and
the estimator's own randomness, so the same data and seed give the same model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np
import numpy.typing as npt
import sklearn

from oracle.errors import TrainingError
from oracle.model.estimators import DEFAULT_MODEL, build_estimator, single_threaded
from oracle.model.evaluation import best_f1_threshold_bp, evaluate_scores
from oracle.model.fault_model import FaultModel, ModelMetadata, to_bp
from oracle.model.features import FEATURE_NAMES, feature_matrix
from oracle.model.labels import target_labels
from oracle.telemetry.ai4i_csv import readings_sha256
from oracle.telemetry.reading import Reading

VALIDATION_SHARE: Final = 0.25
POSITIVES_MIN: Final = 8
IntArray = npt.NDArray[np.int64]


def stratified_split(
    labels: npt.NDArray[np.bool_], share: float, rng: np.random.Generator
) -> tuple[IntArray, IntArray]:
    """(fit, validation) indices; each class contributes `share` of its records to validation."""
    fit_parts, validation_parts = [], []
    for value in (False, True):
        indices = rng.permutation(np.flatnonzero(labels == value))
        cut = round(len(indices) * share)
        validation_parts.append(indices[:cut])
        fit_parts.append(indices[cut:])
    return np.sort(np.concatenate(fit_parts)), np.sort(np.concatenate(validation_parts))


def train(
    readings: Sequence[Reading],
    *,
    model_name: str = DEFAULT_MODEL,
    horizon: int = 0,
    seed: int = 0,
    data_sha256: str | None = None,
    failure_modes: Sequence[str] = (),
) -> FaultModel:
    """A calibrated fault model of `model_name` for `horizon`, reproducible from `seed`;
    it predicts any machine failure, or only `failure_modes` when some are named."""
    labels = target_labels(readings, horizon, failure_modes)
    _check_positives(labels, horizon)
    features = feature_matrix(readings)
    rng = np.random.default_rng(seed)
    fit_rows, validation_rows = stratified_split(labels, VALIDATION_SHARE, rng)
    estimator = build_estimator(model_name, random_state=int(rng.integers(2**31 - 1)))
    with single_threaded():
        estimator.fit(features[fit_rows], labels[fit_rows])
        proba = estimator.predict_proba(features[validation_rows])[:, 1]
    scores = np.asarray(to_bp(np.asarray(proba, dtype=np.float64)), dtype=np.int64)
    threshold_bp = best_f1_threshold_bp(labels[validation_rows], scores)
    validation = evaluate_scores(labels[validation_rows], scores, threshold_bp)
    metadata = ModelMetadata(
        name=model_name,
        features=FEATURE_NAMES,
        threshold_bp=threshold_bp,
        horizon=horizon,
        failure_modes=tuple(failure_modes),
        seed=seed,
        data_sha256=data_sha256 or readings_sha256(readings),
        sklearn_version=sklearn.__version__,
        validation={
            "records": float(validation.records),
            "positives": float(validation.positives),
            "precision": validation.precision,
            "recall": validation.recall,
            "f1": validation.f1,
            "pr_auc": validation.pr_auc or 0.0,
        },
    )
    return FaultModel(estimator, metadata)


def _check_positives(labels: npt.NDArray[np.bool_], horizon: int) -> None:
    positives = int(labels.sum())
    if positives < POSITIVES_MIN or positives > len(labels) - POSITIVES_MIN:
        raise TrainingError(
            f"{positives} of {len(labels)} records are positive at horizon {horizon}: "
            f"need at least {POSITIVES_MIN} of each class"
        )
