"""Model artifacts: skops files that are hash-checked before a byte of them is interpreted.

`save_model` writes the estimator and its metadata with skops (no pickle, so loading runs no code
from the file) and returns the file's sha256. skops names objects and array entries after their
`id()` and stamps entries with the current time; the archive is rewritten with ids numbered in
order of first use and a fixed timestamp, so the same model always gives the same bytes and the
same hash.
`load_model` reads the bytes once, refuses them unless their sha256 is the expected one, and then
lets skops build only the types in TRUSTED_TYPES. It refuses a model made with another
scikit-learn than the one running (estimators' internals and numerics change between versions,
so validators on two versions could report different numbers for one artifact, and sklearn only
warns), and an estimator that is not a fitted binary classifier over FEATURE_NAMES (the compiled
forest would read such a model's features at the wrong offsets without an error).
"""

from __future__ import annotations

import hmac
import io
import json
import re
import zipfile
from pathlib import Path
from typing import Any, Final

import numpy as np
import sklearn
import skops.io as sio

from ledger.hashing import sha256
from oracle.errors import ArtifactError
from oracle.model.fault_model import FaultModel, ModelMetadata
from oracle.model.features import FEATURE_NAMES

FORMAT: Final = "millchain-fault-model/1"
_ZIP_EPOCH: Final = (1980, 1, 1, 0, 0, 0)
# skops writes id() values as "__id__" fields and as array entry names ("<id>.npy").
_OBJECT_ID = re.compile(r'("__id__": )([0-9]+)|"([0-9]+)\.npy"')
# What skops raises for a malformed or untrusted archive (UntrustedTypesFoundException is a
# TypeError; a broken zip, schema or array surfaces as one of the others).
_LOAD_ERRORS: Final = (
    TypeError,
    ValueError,
    KeyError,
    AttributeError,
    ImportError,
    OSError,
    EOFError,
    zipfile.BadZipFile,
)

# Every non-builtin type a saved candidate model contains (from skops.io.get_untrusted_types on
# each model in estimators.BUILDERS). Anything else in a file makes loading fail.
TRUSTED_TYPES: Final = [
    "numpy.dtype",
    "numpy.ndarray",
    "numpy.float64",
    "numpy.int64",
    "numpy.random._generator.Generator",
    "numpy.random.mtrand.RandomState",
    "sklearn.calibration.CalibratedClassifierCV",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.isotonic.IsotonicRegression",
    "sklearn.ensemble._forest.RandomForestClassifier",
    "sklearn.ensemble._forest.ExtraTreesClassifier",
    "sklearn.tree._classes.DecisionTreeClassifier",
    "sklearn.tree._classes.ExtraTreeClassifier",
    "sklearn.tree._tree.Tree",
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier",
    "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn._loss.loss.HalfBinomialLoss",
    "sklearn._loss.link.LogitLink",
    "sklearn._loss.link.Interval",
    "sklearn.pipeline.Pipeline",
    "sklearn.preprocessing._data.StandardScaler",
    "sklearn.svm._classes.SVC",
    "sklearn.linear_model._logistic.LogisticRegression",
]


def save_model(model: FaultModel, path: Path) -> str:
    """Write `model` to `path`; returns the artifact's sha256 (hex)."""
    metadata = model.metadata.to_map()
    del metadata["artifact_sha256"]
    payload = {"format": FORMAT, "estimator": model.estimator, "metadata": metadata}
    data = _canonical_archive(sio.dumps(payload))
    path.write_bytes(data)
    return sha256(data).hex()


_SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")


def load_model(path: Path, expected_sha256: str) -> FaultModel:
    """Load the artifact at `path` only if its sha256 is `expected_sha256` (hex)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ArtifactError(f"cannot read model artifact {path}: {exc}") from exc
    actual = sha256(data).hex()
    if not _SHA256_HEX.fullmatch(expected_sha256):
        raise ArtifactError(
            f"expected sha256 {expected_sha256[:80]!a} is not 64 hexadecimal characters"
        )
    if not hmac.compare_digest(actual, expected_sha256.lower()):
        raise ArtifactError(
            f"model artifact {path} has sha256 {actual}, expected {expected_sha256}: refusing it"
        )
    payload = _trusted_load(data, path)
    metadata = ModelMetadata.from_map({**payload["metadata"], "artifact_sha256": actual})
    if metadata.sklearn_version != sklearn.__version__:
        raise ArtifactError(
            f"model artifact {path} was made with scikit-learn {metadata.sklearn_version}, this "
            f"node runs {sklearn.__version__}: validators on other versions may compute other "
            f"numbers; install scikit-learn {metadata.sklearn_version} or train the model again"
        )
    _check_estimator(payload["estimator"], path)
    return FaultModel(payload["estimator"], metadata)


def _check_estimator(estimator: Any, path: Path) -> None:
    """A fitted binary classifier taking FEATURE_NAMES, or an ArtifactError."""
    if not callable(getattr(estimator, "predict_proba", None)):
        raise ArtifactError(
            f"model artifact {path} holds a {type(estimator).__name__}, expected a classifier"
        )
    features = getattr(estimator, "n_features_in_", None)
    classes = getattr(estimator, "classes_", None)
    if features is None or classes is None:
        raise ArtifactError(f"model artifact {path} holds an estimator that was never fitted")
    if features != len(FEATURE_NAMES):
        raise ArtifactError(
            f"model artifact {path} holds an estimator fitted on {features} features, expected "
            f"the {len(FEATURE_NAMES)} its metadata names"
        )
    if np.asarray(classes).shape != (2,):
        raise ArtifactError(
            f"model artifact {path} holds a classifier of classes {list(classes)[:8]!a}, "
            "expected two (healthy, failing)"
        )


def _trusted_load(data: bytes, path: Path) -> dict[str, Any]:
    try:
        payload = sio.loads(data, trusted=TRUSTED_TYPES)
    except _LOAD_ERRORS as exc:
        raise ArtifactError(f"model artifact {path} cannot be loaded safely: {exc}") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ArtifactError(f"model artifact {path} is not a {FORMAT} file")
    if not isinstance(payload.get("metadata"), dict):
        raise ArtifactError(f"model artifact {path} has no metadata map")
    return payload


def _canonical_archive(data: bytes) -> bytes:
    """The same archive with stable ids and entry names, fixed timestamps and sorted entries."""
    with zipfile.ZipFile(io.BytesIO(data)) as source:
        schema = source.read("schema.json").decode("utf-8")
        arrays = {name: source.read(name) for name in source.namelist() if name != "schema.json"}
    renames: dict[str, str] = {}
    for match in _OBJECT_ID.finditer(schema):
        renames.setdefault(match.group(2) or match.group(3), str(len(renames) + 1))
    schema = _OBJECT_ID.sub(lambda m: _renamed(m, renames), schema)
    json.loads(schema)  # the rewrite must leave valid JSON behind
    entries = {_renamed_entry(name, renames): blob for name, blob in arrays.items()}
    entries["schema.json"] = schema.encode("utf-8")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as target:
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            target.writestr(info, entries[name])
    return buffer.getvalue()


def _renamed(match: re.Match[str], renames: dict[str, str]) -> str:
    if match.group(2) is not None:
        return f"{match.group(1)}{renames[match.group(2)]}"
    return f'"{renames[match.group(3)]}.npy"'


def _renamed_entry(name: str, renames: dict[str, str]) -> str:
    stem, dot, suffix = name.partition(".")
    if stem not in renames:
        raise ArtifactError(f"skops archive entry {name!r} is not referenced by its schema")
    return f"{renames[stem]}{dot}{suffix}"
