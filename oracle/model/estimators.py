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
from functools import cache
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
from threadpoolctl import ThreadpoolController

from oracle.errors import TrainingError

CALIBRATION_FOLDS: Final = 3
# The calibrator is fitted on out-of-fold predictions and one forest is refitted on all the
# data, rather than keeping one forest per fold: the same F1 within 0.005 on held-out data and
# a third of the inference time, which is what lets every validator report on a block's
# readings before the next block or two are agreed.
ENSEMBLE_FOLDS: Final = False


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
    return CalibratedClassifierCV(
        forest, method="isotonic", cv=CALIBRATION_FOLDS, ensemble=ENSEMBLE_FOLDS
    )


def _extra_trees(random_state: int) -> Any:
    trees = ExtraTreesClassifier(n_estimators=200, random_state=random_state, n_jobs=1)
    return CalibratedClassifierCV(
        trees, method="isotonic", cv=CALIBRATION_FOLDS, ensemble=ENSEMBLE_FOLDS
    )


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


@cache
def _thread_pools() -> ThreadpoolController:
    """The native thread pools loaded in this process, found once (finding them scans every
    loaded library, which costs more than a small prediction)."""
    return ThreadpoolController()


@contextmanager
def single_threaded() -> Iterator[None]:
    with _thread_pools().limit(limits=1):
        yield
