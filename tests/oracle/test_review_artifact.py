"""Review: a model artifact a validator must not run is refused when it is loaded, with a clear
error, instead of predicting numbers no other validator (or sklearn itself) would compute."""

from __future__ import annotations

import hashlib
import io
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import sklearn
from sklearn.base import clone

from oracle.errors import ArtifactError
from oracle.model import FaultModel, feature_matrix, load_model, save_model
from oracle.model.compiled import compile_model
from oracle.model.labels import target_labels
from oracle.telemetry import Reading

OTHER_SKLEARN = "1.3.2"


def _as_saved_by(data: bytes, version: str) -> bytes:
    """The artifact `data` as scikit-learn `version` would have stamped it: every estimator's
    `_sklearn_version` and the metadata's `sklearn_version`."""
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            blob = source.read(info.filename)
            if info.filename == "schema.json":
                text = blob.decode()
                assert f'\\"{sklearn.__version__}\\"' in text
                blob = text.replace(f'\\"{sklearn.__version__}\\"', f'\\"{version}\\"').encode()
            target.writestr(info, blob)
    return out.getvalue()


def test_an_artifact_made_with_another_scikit_learn_is_refused(
    saved_model: tuple[Path, str], tmp_path: Path
) -> None:
    # Validators on different scikit-learn versions may compute different numbers from one
    # artifact (sklearn itself only warns that results may be invalid); the metadata records the
    # version the model was made with, and it must be the one this node runs.
    path, _ = saved_model
    old = tmp_path / "old.skops"
    old.write_bytes(_as_saved_by(path.read_bytes(), OTHER_SKLEARN))
    digest = hashlib.sha256(old.read_bytes()).hexdigest()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn's InconsistentVersionWarning
        with pytest.raises(ArtifactError) as raised:
            load_model(old, digest)
    assert OTHER_SKLEARN in str(raised.value) and sklearn.__version__ in str(raised.value)


def _narrow_model(small_model: FaultModel, fleet: list[Reading]) -> FaultModel:
    """The fault model's estimator fitted on all features but the first, with metadata that
    names all of them: an artifact whose estimator does not take what the metadata says."""
    estimator = clone(small_model.estimator)
    estimator.fit(feature_matrix(fleet)[:, 1:], target_labels(fleet, 0, ()))
    return FaultModel(estimator, small_model.metadata)


def test_an_artifact_whose_estimator_takes_other_features_is_refused(
    small_model: FaultModel, fleet: list[Reading], tmp_path: Path
) -> None:
    narrow = _narrow_model(small_model, fleet)
    path = tmp_path / "narrow.skops"
    digest = save_model(narrow, path)
    with pytest.raises(ArtifactError) as raised:
        load_model(path, digest)
    assert "12 features" in str(raised.value) and "13" in str(raised.value)


def test_the_compiled_forest_refuses_a_matrix_of_other_width_as_sklearn_does(
    small_model: FaultModel, fleet: list[Reading]
) -> None:
    # sklearn raises on such a matrix; the compiled forest (the path every validator takes)
    # used to read the features at the wrong offsets and return confident numbers.
    narrow = _narrow_model(small_model, fleet)
    with pytest.raises(ValueError, match="13 features"):
        narrow.estimator.predict_proba(feature_matrix(fleet[:5]))
    with pytest.raises(ValueError, match="13 features"):
        narrow.predict_bp(fleet[:5])
    compiled = compile_model(narrow.estimator)
    assert compiled is not None
    matrix = feature_matrix(fleet[:50])[:, 1:]  # the width it was fitted on: sklearn's numbers
    assert np.array_equal(compiled.positive(matrix), narrow.estimator.predict_proba(matrix)[:, 1])
