"""Evaluation of failure scores: threshold metrics, ranking metrics and per-mode recall.

Scores are basis points, as the chain sees them; a record is flagged when its score reaches the
threshold. `best_f1_threshold_bp` picks the threshold on validation data; among the thresholds
that flag exactly the same validation records it takes the middle one, so the choice does not
hug the last positive it saw.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.metrics import average_precision_score, roc_auc_score

from oracle.errors import TrainingError
from oracle.model.fault_model import BP_MAX, FaultModel
from oracle.model.labels import horizon_labels, target_labels
from oracle.telemetry.reading import FLAG_NAMES, Reading

BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True, kw_only=True)
class Evaluation:
    records: int
    positives: int
    threshold_bp: int
    precision: float
    recall: float
    f1: float
    pr_auc: float | None
    roc_auc: float | None
    brier: float
    confusion: dict[str, int]
    mode_positives: dict[str, int]
    mode_recall: dict[str, float | None]

    def to_map(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "positives": self.positives,
            "threshold_bp": self.threshold_bp,
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "pr_auc": self.pr_auc,
            "roc_auc": self.roc_auc,
            "brier": self.brier,
            "confusion": dict(self.confusion),
            "mode_positives": dict(self.mode_positives),
            "mode_recall": dict(self.mode_recall),
        }


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else 0.0


def _f1(tp: int, fp: int, fn: int) -> float:
    return _ratio(2 * tp, 2 * tp + fp + fn)


def evaluate_scores(
    labels: Sequence[bool] | BoolArray,
    scores_bp: Sequence[int] | IntArray,
    threshold_bp: int,
    modes: Mapping[str, BoolArray] | None = None,
) -> Evaluation:
    """Metrics of scores against labels; `modes` maps a failure mode to its records."""
    y = np.asarray(labels, dtype=np.bool_)
    bp = np.asarray(scores_bp, dtype=np.int64)
    if y.shape != bp.shape:
        raise TrainingError(f"{len(y)} labels but {len(bp)} scores")
    flagged = bp >= threshold_bp
    tp, fp = int(np.sum(flagged & y)), int(np.sum(flagged & ~y))
    fn, tn = int(np.sum(~flagged & y)), int(np.sum(~flagged & ~y))
    both_classes = 0 < int(y.sum()) < len(y)
    return Evaluation(
        records=len(y),
        positives=int(y.sum()),
        threshold_bp=threshold_bp,
        precision=_ratio(tp, tp + fp),
        recall=_ratio(tp, tp + fn),
        f1=_f1(tp, fp, fn),
        pr_auc=float(average_precision_score(y, bp)) if both_classes else None,
        roc_auc=float(roc_auc_score(y, bp)) if both_classes else None,
        brier=float(np.mean((bp / BP_MAX - y) ** 2)) if len(y) else 0.0,
        confusion={"tn": tn, "fp": fp, "fn": fn, "tp": tp},
        mode_positives={name: int(rows.sum()) for name, rows in (modes or {}).items()},
        mode_recall={name: _mode_recall(rows, flagged) for name, rows in (modes or {}).items()},
    )


def _mode_recall(rows: BoolArray, flagged: BoolArray) -> float | None:
    count = int(rows.sum())
    return int(np.sum(rows & flagged)) / count if count else None


def best_f1_threshold_bp(labels: BoolArray, scores_bp: IntArray) -> int:
    """The threshold (bp) that maximises F1 on these scores, centred in its tie range."""
    y = np.asarray(labels, dtype=np.bool_)
    bp = np.asarray(scores_bp, dtype=np.int64)
    if not y.any():
        raise TrainingError("validation data has no failures: cannot choose a threshold")
    candidates = np.unique(bp)[::-1]  # descending: each flags every score >= itself
    positives = int(y.sum())
    best_f1, best_index = -1.0, 0
    for index, threshold in enumerate(candidates):
        flagged = bp >= threshold
        tp = int(np.sum(flagged & y))
        f1 = _f1(tp, int(flagged.sum()) - tp, positives - tp)
        if f1 > best_f1:
            best_f1, best_index = f1, index
    chosen = int(candidates[best_index])
    below = int(candidates[best_index + 1]) if best_index + 1 < len(candidates) else -1
    return max(1, (below + 1 + chosen) // 2) if below >= 0 else chosen


def mode_labels(readings: Sequence[Reading], horizon: int) -> dict[str, BoolArray]:
    return {name: horizon_labels(readings, horizon, flag=name) for name in FLAG_NAMES}


def score(model: FaultModel, readings: Sequence[Reading]) -> tuple[BoolArray, IntArray]:
    """(labels at the model's horizon, the model's scores in bp) for `readings`."""
    labels = target_labels(readings, model.metadata.horizon, model.metadata.failure_modes)
    return labels, np.asarray(model.predict_bp(readings), dtype=np.int64)


def evaluate(
    model: FaultModel, readings: Sequence[Reading], scored: tuple[BoolArray, IntArray] | None = None
) -> Evaluation:
    """The model's metrics on `readings` (pass `scored` from `score` to skip inference)."""
    labels, scores = scored or score(model, readings)
    modes = mode_labels(readings, model.metadata.horizon)
    return evaluate_scores(labels, scores, model.threshold_bp, modes)
