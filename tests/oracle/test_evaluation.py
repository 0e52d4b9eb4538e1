"""Evaluation metrics on hand-made cases, and the F1-maximising threshold."""

from __future__ import annotations

import numpy as np
import pytest

from oracle.errors import TrainingError
from oracle.model.evaluation import best_f1_threshold_bp, evaluate_scores

LABELS = [True, True, True, False, False, False, False, False]
SCORES = [9000, 7000, 2000, 6000, 1000, 500, 300, 100]


def test_threshold_metrics_on_a_tiny_case() -> None:
    result = evaluate_scores(LABELS, SCORES, threshold_bp=5000)
    assert result.confusion == {"tn": 4, "fp": 1, "fn": 1, "tp": 2}
    assert result.precision == pytest.approx(2 / 3)
    assert result.recall == pytest.approx(2 / 3)
    assert result.f1 == pytest.approx(2 / 3)


def test_ranking_metrics_on_a_tiny_case() -> None:
    result = evaluate_scores(LABELS, SCORES, threshold_bp=5000)
    # 15 positive/negative pairs; only (2000, 6000) is ranked the wrong way round.
    assert result.roc_auc == pytest.approx(14 / 15)
    # precision at each positive's rank: 1/1, 2/2, 3/4.
    assert result.pr_auc == pytest.approx((1 + 1 + 3 / 4) / 3)
    expected_brier = np.mean((np.array(SCORES) / 10_000 - np.array(LABELS)) ** 2)
    assert result.brier == pytest.approx(expected_brier)


def test_per_mode_recall_counts_flagged_records_of_each_mode() -> None:
    modes = {
        "hdf": np.array([True, False, True, False, False, False, False, False]),
        "twf": np.array([False, True, False, False, False, False, False, False]),
        "rnf": np.zeros(8, dtype=bool),
    }
    result = evaluate_scores(LABELS, SCORES, threshold_bp=5000, modes=modes)
    assert result.mode_recall == {"hdf": 0.5, "twf": 1.0, "rnf": None}
    assert result.mode_positives == {"hdf": 2, "twf": 1, "rnf": 0}


def test_one_class_data_has_no_ranking_metrics() -> None:
    result = evaluate_scores([False, False], [10, 20], threshold_bp=15)
    assert result.roc_auc is None and result.pr_auc is None
    assert result.f1 == 0.0


def test_best_threshold_maximises_f1_and_sits_mid_gap() -> None:
    labels = np.array(LABELS)
    scores = np.array(SCORES, dtype=np.int64)
    # Flagging >= 2000 gives F1 6/7 (>= 7000: 0.8); any threshold in 1001..2000 does the same.
    assert best_f1_threshold_bp(labels, scores) == (1001 + 2000) // 2


def test_best_threshold_needs_a_failure() -> None:
    with pytest.raises(TrainingError, match="no failures"):
        best_f1_threshold_bp(np.zeros(3, dtype=bool), np.array([1, 2, 3], dtype=np.int64))
