"""A runner that the node starts again after it failed (node/service.py, `_oracle_supervised`)
still reports the readings of the batch it was working on when it failed.

`run()` takes the pending readings, then predicts and submits them; an exception in between
(the supervisor exists for exactly that) loses the batch. The restarted `run()` read nothing
from the chain of what it owed (`_sweep_due` was set only by a model load or a height gap), so
with the quorum needing this validator's report the reading was never decided. It now reads
what is owed again, as at a node's start.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from node import service
from node.oracle_runner import OracleRunner
from oracle.model import FaultModel
from tests.oracle.test_review_runner_liveness import (  # noqa: F401 (fixtures)
    ORACLES,
    Cluster,
    _keys,
    loads_take_turns,
    models,
    quorum4,
)


async def test_a_batch_lost_to_an_oracle_failure_is_reported_after_the_restart(
    quorum4: Cluster,  # noqa: F811
    models: list[tuple[Path, str, FaultModel]],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cluster = quorum4
    a_path, a_hex, _ = models[0]
    cluster.register((a_path, a_hex))
    monkeypatch.setattr(service, "ORACLE_RESTART_S", 0.01)
    for name in ORACLES[:3]:
        cluster.start(name)
    # The fourth validator's oracle runs under the node's supervisor; its first prediction
    # fails (a transient error in the worker thread), and the supervisor starts it again.
    flaky = OracleRunner(
        keys=_keys(ORACLES[3]),
        chain_id=cluster.genesis.chain_id,
        storage=cluster.storage,
        models_dir=cluster.models,
        next_nonce=cluster.next_nonce,
        submit=cluster._submit,
        busy=lambda: False,
    )
    cluster.runners[ORACLES[3]] = flaky
    cluster.live.add(ORACLES[3])
    cluster.tasks[ORACLES[3]] = asyncio.create_task(
        service.Node._oracle_supervised(SimpleNamespace(oracle=flaky))  # type: ignore[arg-type]
    )
    await cluster.wait(lambda: flaky._model is not None)
    model = flaky._model
    assert model is not None
    real_predict = model.predict_bp

    def predict_once_failing(readings: list[Any]) -> list[int]:
        monkeypatch.setattr(model, "predict_bp", real_predict)  # a transient failure
        raise MemoryError("transient")

    monkeypatch.setattr(model, "predict_bp", predict_once_failing)
    cluster.report_readings(1)
    await cluster.wait(lambda: flaky.restarts == 1)
    # The chain goes on: more readings, all reported by everyone.
    cluster.report_readings(2)
    await cluster.until(cluster.final(2))
    cluster.report_readings(3)
    await cluster.until(cluster.final(3))
    # Reading 1 still lacks the flaky validator's report, and with it the quorum.
    await cluster.until(cluster.final(1), timeout_s=5.0)
