"""Shared fixtures for the oracle tests: a small simulated fleet and a model trained on it."""

from __future__ import annotations

from pathlib import Path

import pytest

from oracle.model import FaultModel, save_model, train
from oracle.telemetry import Reading, simulate_fleet


@pytest.fixture(scope="session")
def fleet() -> list[Reading]:
    return simulate_fleet(machines=3, operations=1000, seed=11)


@pytest.fixture(scope="session")
def small_model(fleet: list[Reading]) -> FaultModel:
    return train(fleet, model_name="random_forest", horizon=0, seed=5)


@pytest.fixture(scope="session")
def saved_model(
    small_model: FaultModel, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp("model") / "fault.skops"
    return path, save_model(small_model, path)
