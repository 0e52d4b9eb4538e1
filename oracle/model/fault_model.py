"""The trained fault model: a calibrated classifier, its threshold, and what it was made from.

`predict_bp` is the entry point the on-chain reporter uses: integer readings in, integer
probabilities in basis points out (round half to even of p x 10000, clamped to 0..10000). A
reading is flagged when its probability reaches `threshold_bp`. The estimator runs
single-threaded, so the same artifact gives the same basis points on every node of one platform.

A reading's basis points must not depend on the readings predicted with it: each validator
predicts what was committed since its last report in one call, and `millchain oracle verify`
predicts each reading alone. Trees, kernels and calibrators compute row by row; a linear model's
dot product goes to BLAS, which sums a row's terms in an order that depends on the batch, and a
last-bit difference rounds to another basis point on the edge between two (5000.5 -> 5000 or
5001). Models holding one are evaluated one reading at a time (about 0.5 ms a reading).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from sklearn.calibration import CalibratedClassifierCV
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from oracle.errors import ArtifactError
from oracle.model.compiled import CompiledCalibratedForest, compile_model
from oracle.model.estimators import single_threaded
from oracle.model.features import FEATURE_NAMES, feature_matrix
from oracle.telemetry.reading import Reading

BP_MAX: Final = 10_000


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelMetadata:
    name: str
    features: tuple[str, ...]
    threshold_bp: int
    horizon: int
    seed: int
    data_sha256: str
    sklearn_version: str
    validation: dict[str, float]
    # The failure modes it predicts (flags such as "twf"); empty for any machine failure.
    failure_modes: tuple[str, ...] = ()
    # sha256 of the saved artifact: "" until the model is saved or loaded (a file cannot hold
    # its own hash).
    artifact_sha256: str = ""

    def to_map(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "features": list(self.features),
            "threshold_bp": self.threshold_bp,
            "horizon": self.horizon,
            "seed": self.seed,
            "data_sha256": self.data_sha256,
            "sklearn_version": self.sklearn_version,
            "validation": dict(self.validation),
            "failure_modes": list(self.failure_modes),
            "artifact_sha256": self.artifact_sha256,
        }

    @classmethod
    def from_map(cls, value: dict[str, Any]) -> ModelMetadata:
        try:
            metadata = cls(
                name=str(value["name"]),
                features=tuple(str(f) for f in value["features"]),
                threshold_bp=int(value["threshold_bp"]),
                horizon=int(value["horizon"]),
                seed=int(value["seed"]),
                data_sha256=str(value["data_sha256"]),
                sklearn_version=str(value["sklearn_version"]),
                validation={str(k): float(v) for k, v in value["validation"].items()},
                failure_modes=tuple(str(m) for m in value.get("failure_modes", ())),
                artifact_sha256=str(value.get("artifact_sha256", "")),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ArtifactError(f"model metadata is malformed: {exc!r}") from exc
        if metadata.features != FEATURE_NAMES:
            raise ArtifactError(
                f"model features {metadata.features} differ from this build's {FEATURE_NAMES}"
            )
        return metadata


class FaultModel:
    """A calibrated classifier over FEATURE_NAMES with a decision threshold in basis points."""

    def __init__(self, estimator: Any, metadata: ModelMetadata) -> None:
        self._estimator = estimator
        self._metadata = metadata
        self._compiled: CompiledCalibratedForest | None = compile_model(estimator)
        self._row_by_row = _has_linear_model(estimator)

    @property
    def metadata(self) -> ModelMetadata:
        return self._metadata

    @property
    def estimator(self) -> Any:
        return self._estimator

    @property
    def threshold_bp(self) -> int:
        return self._metadata.threshold_bp

    def with_artifact_sha256(self, sha256_hex: str) -> FaultModel:
        metadata = dataclasses.replace(self._metadata, artifact_sha256=sha256_hex)
        return FaultModel(self._estimator, metadata)

    def predict_proba(self, readings: Sequence[Reading]) -> npt.NDArray[np.float64]:
        if not readings:
            return np.zeros(0, dtype=np.float64)
        matrix = feature_matrix(readings)
        if self._compiled is not None and not np.isnan(matrix).any():
            return self._compiled.positive(matrix)  # sklearn's numbers, ~50x cheaper
        with single_threaded():
            if self._row_by_row:
                rows = [
                    self._estimator.predict_proba(matrix[i : i + 1]) for i in range(len(matrix))
                ]
                proba = np.concatenate(rows)
            else:
                proba = self._estimator.predict_proba(matrix)
        return np.asarray(proba[:, 1], dtype=np.float64)

    def predict_bp(self, readings: Sequence[Reading]) -> list[int]:
        """Failure probability of each reading in basis points, 0..10000."""
        return to_bp(self.predict_proba(readings))

    def predict(self, readings: Sequence[Reading]) -> list[bool]:
        return [bp >= self.threshold_bp for bp in self.predict_bp(readings)]


def _has_linear_model(estimator: Any) -> bool:
    """Whether `estimator` is, or holds, a linear classifier (see the module's docstring):
    logistic regression is the only one an artifact may hold (artifact.TRUSTED_TYPES)."""
    if isinstance(estimator, Pipeline):
        return any(_has_linear_model(step) for _, step in estimator.steps)
    if isinstance(estimator, CalibratedClassifierCV):
        return _has_linear_model(estimator.estimator)
    return isinstance(estimator, LogisticRegression)


def to_bp(proba: npt.NDArray[np.float64]) -> list[int]:
    scaled = np.clip(np.rint(proba * BP_MAX), 0, BP_MAX).astype(np.int64)
    return [int(bp) for bp in scaled]
