"""The fault model: physics features, calibrated classifiers, artifacts and evaluation.

`train` fits a model from readings; `save_model`/`load_model` keep it as a hash-checked skops
artifact; `FaultModel.predict_bp` is the integer entry point for the chain; `evaluate` and
`compare` measure it.
"""

from oracle.model.artifact import TRUSTED_TYPES, load_model, save_model
from oracle.model.compare import Comparison, compare
from oracle.model.estimators import DEFAULT_MODEL, MODEL_NAMES
from oracle.model.evaluation import Evaluation, evaluate, evaluate_scores
from oracle.model.fault_model import FaultModel, ModelMetadata
from oracle.model.features import FEATURE_NAMES, feature_matrix
from oracle.model.labels import horizon_labels
from oracle.model.training import train

__all__ = [
    "DEFAULT_MODEL",
    "FEATURE_NAMES",
    "MODEL_NAMES",
    "TRUSTED_TYPES",
    "Comparison",
    "Evaluation",
    "FaultModel",
    "ModelMetadata",
    "compare",
    "evaluate",
    "evaluate_scores",
    "feature_matrix",
    "horizon_labels",
    "load_model",
    "save_model",
    "train",
]
