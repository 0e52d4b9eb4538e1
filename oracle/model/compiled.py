"""The fault model's forests evaluated as a few array operations, with sklearn's exact numbers.

scikit-learn predicts with a forest one tree at a time: each of the 100-200 trees costs a Python
call, input validation and a joblib dispatch, about 0.2 ms, so a prediction costs ~20 ms of CPU
whatever its size. A validator predicts on every committed batch of readings, so at a few
batches a second on each node that was most of what the oracle cost the cluster.

`CompiledCalibratedForest` lays all trees' nodes out in flat arrays once, then walks every
(tree, reading) pair down one level per step until all reach a leaf: one numpy step per level of
the deepest tree, about 0.3 ms for a batch of readings. The result is bit for bit what sklearn
computes, because every step is the same arithmetic in the same order:

- the readings are rounded to float32 before comparison, as sklearn's trees do, and compared with
  the float64 thresholds (`x <= threshold` goes left);
- a tree's probability is its leaf's class fractions, and the forest adds the trees' values in
  tree order to a float64 zero before dividing by their number;
- each calibrated copy's isotonic calibrator (sklearn's own object) maps the forest's positive
  class probability, and the copies are averaged as `CalibratedClassifierCV` averages them.

Only the structure the trainer builds compiles: a binary `CalibratedClassifierCV` (isotonic or
sigmoid) over `RandomForestClassifier` or `ExtraTreesClassifier`. `compile_model` returns None for
anything else, and the caller predicts with sklearn itself; so does it for a matrix holding NaN,
whose path through a tree depends on what the tree learned about missing values.
tests/oracle/test_compiled.py holds the compiled output equal to sklearn's on random readings and
on readings placed exactly on the trees' thresholds.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]

_LEAF = -1  # sklearn's TREE_LEAF
_LEAF_CHECK_EVERY = 4  # levels between checks whether every walk has reached its leaf


class CompiledForest:
    """One fitted binary forest's trees as flat arrays: `positive(X)` equals
    `forest.predict_proba(X)[:, 1]` exactly."""

    def __init__(self, forest: RandomForestClassifier | ExtraTreesClassifier) -> None:
        trees = [estimator.tree_ for estimator in forest.estimators_]
        sizes = [tree.node_count for tree in trees]
        offsets = np.cumsum([0, *sizes[:-1]], dtype=np.intp)
        children: list[IntArray] = []
        for tree, offset in zip(trees, offsets, strict=True):
            own = np.arange(tree.node_count, dtype=np.intp) + offset
            leaf = tree.children_left == _LEAF
            # A leaf points at itself both ways, so a walk that reached it stays there while
            # deeper trees take their remaining steps. Node i's children are at 2i (left) and
            # 2i + 1 (right).
            left = np.where(leaf, own, tree.children_left + offset)
            right = np.where(leaf, own, tree.children_right + offset)
            children.append(np.stack([left, right], axis=1).ravel())
        self._children = np.concatenate(children)
        self._is_leaf = np.concatenate([tree.children_left == _LEAF for tree in trees])
        self._feature = np.concatenate([np.maximum(tree.feature, 0) for tree in trees]).astype(
            np.intp
        )
        self._threshold = np.concatenate([tree.threshold for tree in trees]).astype(np.float64)
        # value: (nodes, outputs = 1, classes) of class fractions; the positive class is column 1.
        self._positive = np.concatenate([tree.value[:, 0, 1] for tree in trees]).astype(np.float64)
        self._roots = offsets
        self._depth = max(int(tree.max_depth) for tree in trees)
        self._n_features = int(forest.n_features_in_)

    def positive(self, matrix: FloatArray) -> FloatArray:
        x = np.asarray(matrix, dtype=np.float32).astype(np.float64)
        if x.ndim != 2 or x.shape[1] != self._n_features:
            # sklearn refuses it too; the walk below would read features at the wrong offsets.
            raise ValueError(
                f"X has {x.shape[-1]} features, but the forest is expecting "
                f"{self._n_features} features as input"
            )
        n = x.shape[0]
        nodes = np.repeat(self._roots[:, np.newaxis], n, axis=1)  # (trees, readings)
        flat = x.ravel()
        row_start = (np.arange(n, dtype=np.intp) * self._n_features)[np.newaxis, :]
        for level in range(self._depth):
            if level % _LEAF_CHECK_EVERY == 0 and level and self._is_leaf[nodes].all():
                break
            values = flat[row_start + self._feature[nodes]]
            right = values > self._threshold[nodes]  # sklearn goes left when x <= threshold
            nodes = self._children[2 * nodes + right]
        leaf_values = self._positive[nodes]
        total = np.zeros(n, dtype=np.float64)
        for tree_values in leaf_values:  # in tree order, as sklearn accumulates them
            total += tree_values
        total /= len(self._roots)
        return total


class CompiledCalibratedForest:
    """A binary `CalibratedClassifierCV` over forests: `positive(X)` equals
    `calibrated.predict_proba(X)[:, 1]` exactly."""

    def __init__(self, calibrated: CalibratedClassifierCV) -> None:
        self._parts = [
            (CompiledForest(part.estimator), part.calibrators[0])
            for part in calibrated.calibrated_classifiers_
        ]

    def positive(self, matrix: FloatArray) -> FloatArray:
        total = np.zeros(matrix.shape[0], dtype=np.float64)
        for forest, calibrator in self._parts:
            total += calibrator.predict(forest.positive(matrix))
        total /= len(self._parts)
        return total


def compile_model(estimator: Any) -> CompiledCalibratedForest | None:
    """The compiled form of `estimator`, or None when its structure is not one compiled here."""
    if not isinstance(estimator, CalibratedClassifierCV):
        return None
    if not hasattr(estimator, "calibrated_classifiers_"):
        return None  # not fitted
    if estimator.method not in ("isotonic", "sigmoid") or len(estimator.classes_) != 2:
        return None
    for part in estimator.calibrated_classifiers_:
        forest = part.estimator
        if not isinstance(forest, RandomForestClassifier | ExtraTreesClassifier):
            return None
        if forest.n_outputs_ != 1 or len(forest.classes_) != 2 or len(part.calibrators) != 1:
            return None
    return CompiledCalibratedForest(estimator)
