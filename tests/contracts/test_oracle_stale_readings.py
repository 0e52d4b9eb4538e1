"""The oracle acts only on readings taken since a machine last came back into service.

A machine reports readings while it is repaired, so a batch of readings from the worn tool and
the transaction that returns the machine often commit in one block (or in blocks that carry the
same time: block times never decrease). A prediction on such a reading describes the machine
before its repair: it is recorded, but must neither flag the repaired machine nor open a work
order on it.
"""

from __future__ import annotations

from typing import Any

from contracts.runtime import BlockContext
from tests.contracts.conftest import Chain
from tests.contracts.test_oracle_contract import ORACLES, _reading, _report, _values, plant

__all__ = ["plant"]  # the fixture, shared with the oracle contract's tests


def _take_wo_1(plant: Chain) -> None:
    assert plant.call("max", "maintenance", "open", machine="m1", reason="wear").ok
    assert plant.call("max", "maintenance", "take", work_order="wo-1").ok


def _assert_repaired_machine_left_alone(plant: Chain, seq: int) -> None:
    for who in ORACLES[:3]:
        assert _report(plant, who, seq, 9500).ok
    prediction = plant.query("oracle", "prediction", "m1", str(seq))
    assert (prediction["final"], prediction["at_risk"]) == (True, True)
    assert plant.query("machines", "m1")["status"] == "running"
    assert [w["state"] for w in _values(plant.query("maintenance"))] == ["closed"]


def test_a_reading_committed_beside_the_repair_does_not_flag_the_repaired_machine(
    plant: Chain,
) -> None:
    _take_wo_1(plant)
    result = plant.run(
        plant.tx("mia", "machines", "report", machine="m1", readings=[_reading(4)]),
        plant.tx("max", "maintenance", "close", work_order="wo-1", actions=["tool_replaced"]),
    )
    assert all(receipt.ok for receipt in result.receipts)
    _assert_repaired_machine_left_alone(plant, 4)


def test_a_reading_in_an_earlier_block_of_the_same_time_does_not_flag_either(
    plant: Chain, monkeypatch: Any
) -> None:
    # A primary whose clock lags its parent's stamps its block with the parent's time.
    _take_wo_1(plant)
    assert plant.call("mia", "machines", "report", machine="m1", readings=[_reading(4)]).ok
    same_time = plant.context().timestamp_ms - 1_000

    def lagging_context() -> BlockContext:
        height = plant.height + 1
        return BlockContext(
            chain_id=plant.genesis.chain_id, height=height, timestamp_ms=same_time, proposer=0
        )

    monkeypatch.setattr(plant, "context", lagging_context)
    closed = plant.call("max", "maintenance", "close", work_order="wo-1", actions=["repaired"])
    assert closed.ok, closed.error
    monkeypatch.undo()
    _assert_repaired_machine_left_alone(plant, 4)


def test_a_reading_from_a_later_block_is_acted_on(plant: Chain) -> None:
    _take_wo_1(plant)
    closed = plant.call("max", "maintenance", "close", work_order="wo-1", actions=["repaired"])
    assert closed.ok, closed.error
    assert plant.call("mia", "machines", "report", machine="m1", readings=[_reading(4)]).ok
    for who in ORACLES[:3]:
        assert _report(plant, who, 4, 9500).ok
    assert plant.query("machines", "m1")["status"] == "degraded"
    opened = [w for w in _values(plant.query("maintenance")) if w["source"] == "oracle"]
    assert [w["state"] for w in opened] == ["open"]
