"""The candidate classifiers, each wrapped so its probabilities are calibrated.

Tree ensembles vote in coarse, over-confident steps, so they are calibrated isotonically with
three-fold cross-validation; the SVM has no probabilities of its own and gets Platt's sigmoid
(also three-fold). Logistic regression is calibrated by construction and stays a baseline. Every
estimator runs single-threaded (see `single_threaded`): the results do not depend on the machine's
core count, and a fit does not fight other processes for a shared CPU.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Final

from sklearn.base import ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import (
    ExtraTreesClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from threadpoolctl import threadpool_limits

from oracle.errors import TrainingError

CALIBRATION_FOLDS: Final = 3


def _svm(random_state: int) -> Any:
    svc = SVC(C=10.0, gamma="scale", random_state=random_state)
    return CalibratedClassifierCV(
        make_pipeline(StandardScaler(), svc), method="sigmoid", cv=CALIBRATION_FOLDS
    )


def _logistic(random_state: int) -> Any:
    return make_pipeline(
        StandardScaler(), LogisticRegression(max_iter=2000, random_state=random_state)
    )


def _random_forest(random_state: int) -> Any:
    forest = RandomForestClassifier(n_estimators=100, random_state=random_state, n_jobs=1)
    return CalibratedClassifierCV(forest, method="isotonic", cv=CALIBRATION_FOLDS)


def _extra_trees(random_state: int) -> Any:
    trees = ExtraTreesClassifier(n_estimators=200, random_state=random_state, n_jobs=1)
    return CalibratedClassifierCV(trees, method="isotonic", cv=CALIBRATION_FOLDS)


def _hist_gradient_boosting(random_state: int) -> Any:
    boosting = HistGradientBoostingClassifier(
        max_iter=200, learning_rate=0.1, early_stopping=False, random_state=random_state
    )
    return CalibratedClassifierCV(boosting, method="isotonic", cv=CALIBRATION_FOLDS)


BUILDERS: Final[dict[str, Callable[[int], Any]]] = {
    "random_forest": _random_forest,
    "extra_trees": _extra_trees,
    "hist_gradient_boosting": _hist_gradient_boosting,
    "svm": _svm,
    "logistic": _logistic,
}
MODEL_NAMES: Final = tuple(BUILDERS)
DEFAULT_MODEL: Final = "random_forest"


def build_estimator(name: str, random_state: int) -> ClassifierMixin:
    builder = BUILDERS.get(name)
    if builder is None:
        raise TrainingError(f"unknown model {name!r}, expected one of {', '.join(MODEL_NAMES)}")
    estimator: ClassifierMixin = builder(random_state)
    return estimator


@contextmanager
def single_threaded() -> Iterator[None]:
    with threadpool_limits(limits=1):
        yield
