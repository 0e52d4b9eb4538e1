"""Training: determinism for a seed, integer inference, metadata, refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from oracle.errors import TrainingError
from oracle.model import FEATURE_NAMES, MODEL_NAMES, FaultModel, save_model, train
from oracle.telemetry import Reading, simulate_fleet
from oracle.telemetry.ai4i_csv import readings_sha256


def test_same_seed_gives_the_same_artifact(
    fleet: list[Reading], saved_model: tuple[Path, str], tmp_path: Path
) -> None:
    _, digest = saved_model
    again = train(fleet, model_name="random_forest", horizon=0, seed=5)
    assert save_model(again, tmp_path / "again.skops") == digest


def test_another_seed_gives_another_model(fleet: list[Reading], small_model: FaultModel) -> None:
    other = train(fleet, model_name="random_forest", horizon=0, seed=6)
    assert other.predict_bp(fleet) != small_model.predict_bp(fleet)


def test_predict_bp_is_in_range_and_deterministic(
    small_model: FaultModel, fleet: list[Reading]
) -> None:
    scores = small_model.predict_bp(fleet)
    assert all(isinstance(bp, int) and 0 <= bp <= 10_000 for bp in scores)
    assert small_model.predict_bp(fleet) == scores
    # one reading at a time gives what the batch gives
    assert [small_model.predict_bp([r])[0] for r in fleet[:50]] == scores[:50]


def test_predict_bp_of_nothing_is_empty(small_model: FaultModel) -> None:
    assert small_model.predict_bp([]) == []


def test_model_separates_failures_from_healthy_readings(
    small_model: FaultModel, fleet: list[Reading]
) -> None:
    flagged = small_model.predict(fleet)
    hits = sum(f and r.machine_failure for f, r in zip(flagged, fleet, strict=True))
    false_alarms = sum(f and not r.machine_failure for f, r in zip(flagged, fleet, strict=True))
    assert hits >= 0.6 * sum(r.machine_failure for r in fleet)
    assert false_alarms <= 0.01 * len(fleet)


def test_metadata_names_what_the_model_was_made_from(
    small_model: FaultModel, fleet: list[Reading]
) -> None:
    meta = small_model.metadata
    assert meta.name == "random_forest"
    assert meta.features == FEATURE_NAMES
    assert meta.horizon == 0 and meta.seed == 5
    assert meta.data_sha256 == readings_sha256(fleet)
    assert 0 < meta.threshold_bp <= 10_000
    assert meta.artifact_sha256 == ""
    assert 0.0 <= meta.validation["f1"] <= 1.0


@pytest.mark.parametrize("name", [n for n in MODEL_NAMES if n != "random_forest"])
def test_every_candidate_model_trains(name: str) -> None:
    readings = simulate_fleet(2, 700, seed=21)
    model = train(readings, model_name=name, seed=1)
    assert len(model.predict_bp(readings[:10])) == 10


def test_horizon_widens_the_positive_class() -> None:
    readings = simulate_fleet(2, 700, seed=21)
    model = train(readings, model_name="logistic", horizon=5, seed=1)
    assert model.metadata.horizon == 5
    assert (
        model.metadata.validation["positives"]
        > train(readings, model_name="logistic").metadata.validation["positives"]
    )


def test_unknown_model_is_refused(fleet: list[Reading]) -> None:
    with pytest.raises(TrainingError, match="unknown model"):
        train(fleet, model_name="oracle_of_delphi")


def test_data_without_failures_is_refused(fleet: list[Reading]) -> None:
    healthy = [r for r in fleet if not r.machine_failure]
    with pytest.raises(TrainingError, match="positive"):
        train(healthy)
