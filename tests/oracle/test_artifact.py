"""Model artifacts: hash-checked loading, tamper refusal, untrusted types, stable bytes."""

from __future__ import annotations

from pathlib import Path

import pytest
import skops.io as sio

from ledger.hashing import sha256
from oracle.errors import ArtifactError
from oracle.model import FaultModel, load_model, save_model
from oracle.model.artifact import FORMAT
from oracle.telemetry import Reading


class Gadget:
    """A type no artifact may contain."""

    def __init__(self) -> None:
        self.payload = "run me"


def test_loaded_model_predicts_like_the_saved_one(
    saved_model: tuple[Path, str], small_model: FaultModel, fleet: list[Reading]
) -> None:
    path, digest = saved_model
    loaded = load_model(path, digest)
    assert loaded.predict_bp(fleet[:200]) == small_model.predict_bp(fleet[:200])
    assert loaded.metadata.artifact_sha256 == digest
    assert loaded.metadata.threshold_bp == small_model.metadata.threshold_bp


def test_tampered_artifact_is_refused(saved_model: tuple[Path, str], tmp_path: Path) -> None:
    path, digest = saved_model
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    tampered = tmp_path / "tampered.skops"
    tampered.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="expected"):
        load_model(tampered, digest)


def test_wrong_expected_hash_is_refused(saved_model: tuple[Path, str]) -> None:
    path, _ = saved_model
    with pytest.raises(ArtifactError, match="refusing"):
        load_model(path, "00" * 32)


@pytest.mark.parametrize("text", ["\u00e9", "00" * 31, "zz" * 32, ""])
def test_an_expected_hash_that_is_no_sha256_is_refused_as_such(
    saved_model: tuple[Path, str], text: str
) -> None:
    path, _ = saved_model
    with pytest.raises(ArtifactError, match="not 64 hexadecimal characters"):
        load_model(path, text)


def test_untrusted_type_is_refused_even_with_a_matching_hash(tmp_path: Path) -> None:
    path = tmp_path / "gadget.skops"
    path.write_bytes(sio.dumps({"format": FORMAT, "estimator": Gadget(), "metadata": {}}))
    with pytest.raises(ArtifactError, match="cannot be loaded safely"):
        load_model(path, sha256(path.read_bytes()).hex())


def test_foreign_skops_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "foreign.skops"
    path.write_bytes(sio.dumps({"hello": [1, 2, 3]}))
    with pytest.raises(ArtifactError, match="not a"):
        load_model(path, sha256(path.read_bytes()).hex())


def test_same_model_saves_to_the_same_bytes(
    small_model: FaultModel, saved_model: tuple[Path, str], tmp_path: Path
) -> None:
    path, digest = saved_model
    assert save_model(small_model, tmp_path / "again.skops") == digest
    assert (tmp_path / "again.skops").read_bytes() == path.read_bytes()


def test_missing_file_is_an_artifact_error(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="cannot read"):
        load_model(tmp_path / "absent.skops", "00" * 32)
