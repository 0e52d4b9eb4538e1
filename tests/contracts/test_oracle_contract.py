"""The oracle contract: registered model, quorum of distinct reporters, median, and action."""

from __future__ import annotations

from typing import Any

import pytest

from contracts import oracle
from contracts.oracle import median_bp, prediction_key
from ledger.encoding import decode, encode
from ledger.genesis import Role
from tests.contracts.conftest import MEMBER_ROLES, Chain, build_factory, make_genesis, place

MODEL = bytes(range(32))
OTHER_MODEL = bytes(32)
ORACLES = ("ora1", "ora2", "ora3", "ora4")


@pytest.fixture
def plant() -> Chain:
    """The factory with four oracle identities, a registered model and readings on m1."""
    members = {**MEMBER_ROLES, **{name: (Role.ORACLE,) for name in ORACLES}}
    chain = build_factory(Chain(make_genesis(members)))
    receipt = chain.call(
        "root",
        "oracle",
        "register_model",
        model_hash=MODEL,
        name="rf",
        features=["torque_nm", "wear_min"],
        threshold_bp=6000,
        horizon=5,
    )
    assert receipt.ok, receipt.error
    readings = [_reading(seq) for seq in range(1, 4)]
    assert chain.call("mia", "machines", "report", machine="m1", readings=readings).ok
    return chain


def _reading(seq: int) -> dict[str, Any]:
    return {
        "seq": seq,
        "air_temp_dk": 2981,
        "process_temp_dk": 3087,
        "rpm": 1400,
        "torque_cnm": 6500,
        "tool_wear_min": 190,
        "quality": "L",
    }


def _report(chain: Chain, who: str, seq: int, bp: int, model: bytes = MODEL) -> Any:
    return chain.call(
        who,
        "oracle",
        "report",
        model_hash=model,
        reports=[{"machine": "m1", "seq": seq, "probability_bp": bp}],
    )


def test_a_single_validator_cannot_finalize_a_prediction(plant: Chain) -> None:
    assert _report(plant, "ora1", 1, 9000).ok
    prediction = plant.query("oracle", "prediction", "m1", "1")
    assert prediction["final"] is False
    assert plant.query("machines", "m1")["status"] == "running"


def test_quorum_of_distinct_reporters_finalizes_with_the_median(plant: Chain) -> None:
    assert _report(plant, "ora1", 1, 1200).ok
    assert _report(plant, "ora2", 1, 1000).ok
    assert plant.query("oracle", "prediction", "m1", "1")["final"] is False
    assert _report(plant, "ora3", 1, 1100).ok  # quorum is 2f + 1 = 3 at n = 4
    prediction = plant.query("oracle", "prediction", "m1", "1")
    assert prediction["final"] is True
    assert prediction["value_bp"] == 1100
    assert prediction["at_risk"] is False


@pytest.mark.parametrize(
    ("reports", "value", "at_risk"),
    [
        ((0, 9500, 9400), 9400, True),  # one oracle reporting 0 first cannot hold a flag back
        ((10000, 100, 200), 200, False),  # nor one reporting certain failure raise one
    ],
)
def test_one_faulty_oracle_cannot_decide_a_prediction(
    plant: Chain, reports: tuple[int, int, int], value: int, at_risk: bool
) -> None:
    for who, bp in zip(ORACLES, reports, strict=False):
        assert _report(plant, who, 1, bp).ok
    prediction = plant.query("oracle", "prediction", "m1", "1")
    assert (prediction["final"], prediction["value_bp"]) == (True, value)
    assert prediction["at_risk"] is at_risk
    assert plant.query("machines", "m1")["status"] == ("degraded" if at_risk else "running")


def test_a_reporter_cannot_report_twice_on_one_reading(plant: Chain) -> None:
    assert _report(plant, "ora1", 1, 1200).ok
    receipt = _report(plant, "ora1", 1, 1300)
    assert receipt.error is not None and "already reported" in receipt.error
    assert plant.query("oracle", "prediction", "m1", "1")["reports"] == {"ora1": 1200}


@pytest.mark.parametrize(
    ("who", "seq", "model", "fragment"),
    [
        ("mia", 1, MODEL, "needs role oracle"),
        ("ora1", 99, MODEL, "no committed reading 99"),
        ("ora1", 1, OTHER_MODEL, "the registered model is"),
    ],
)
def test_reports_from_non_oracles_for_unknown_readings_or_models_are_rejected(
    plant: Chain, who: str, seq: int, model: bytes, fragment: str
) -> None:
    before = plant.query("oracle", "predictions", "m1")
    receipt = _report(plant, who, seq, 5000, model)
    assert receipt.error is not None and fragment in receipt.error
    assert plant.query("oracle", "predictions", "m1") == before


def test_the_predictions_query_answers_the_newest(
    plant: Chain, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A machine reporting for years has millions of predictions; a query answers the newest.
    monkeypatch.setattr(oracle, "PREDICTIONS_QUERY_MAX", 2)
    for seq in (1, 2, 3):
        assert _report(plant, "ora1", seq, 100 * seq).ok
    assert [p["seq"] for p in plant.query("oracle", "predictions", "m1")] == [2, 3]


def test_reports_without_a_registered_model_are_rejected() -> None:
    members = {**MEMBER_ROLES, "ora1": (Role.ORACLE,)}
    chain = build_factory(Chain(make_genesis(members)))
    assert chain.call("mia", "machines", "report", machine="m1", readings=[_reading(1)]).ok
    receipt = _report(chain, "ora1", 1, 100)
    assert receipt.error is not None and "no model is registered" in receipt.error


def test_an_at_risk_prediction_flags_the_machine_opens_a_work_order_and_moves_work(
    plant: Chain,
) -> None:
    order = place(plant)
    assert order.ok
    order_id = order.result["id"]
    assert plant.call("pat", "orders", "accept", order=order_id).ok
    assert plant.call("pat", "orders", "schedule", order=order_id, machine="m1").ok
    assert _report(plant, "ora1", 2, 8000).ok
    assert _report(plant, "ora2", 2, 7000).ok
    assert _report(plant, "ora3", 2, 7500).ok
    prediction = plant.query("oracle", "prediction", "m1", "2")
    assert (prediction["value_bp"], prediction["at_risk"]) == (7500, True)
    assert plant.query("machines", "m1")["status"] == "degraded"
    work_orders = plant.query("maintenance")
    assert any(w["machine"] == "m1" and w["source"] == "oracle" for w in _values(work_orders))
    assert plant.query("orders", order_id)["machine"] == "m2"
    # A second risky reading on the already-degraded machine opens no second work order.
    for who in ORACLES[:3]:
        assert _report(plant, who, 3, 9000).ok
    assert sum(1 for w in _values(plant.query("maintenance")) if w["machine"] == "m1") == 1


def test_a_prediction_on_a_reading_from_before_a_repair_flags_nothing(plant: Chain) -> None:
    # Reading 1 (in the fixture) had a worn tool; one oracle reported it at risk. A work
    # order replaces the tool and m1 is back in service. When the quorum on reading 1
    # completes afterwards, the prediction is recorded, but the repaired machine is not flagged
    # again nor does it get a second work order.
    assert _report(plant, "ora1", 1, 9500).ok
    assert plant.call("max", "maintenance", "open", machine="m1", reason="wear").ok
    assert plant.call("max", "maintenance", "take", work_order="wo-1").ok
    closed = plant.call("max", "maintenance", "close", work_order="wo-1", actions=["tool_replaced"])
    assert closed.ok, closed.error
    for who in ("ora2", "ora3"):
        assert _report(plant, who, 1, 9500).ok
    prediction = plant.query("oracle", "prediction", "m1", "1")
    assert (prediction["final"], prediction["at_risk"]) == (True, True)
    assert plant.query("machines", "m1")["status"] == "running"
    assert [w["state"] for w in _values(plant.query("maintenance"))] == ["closed"]
    # A reading taken since is acted on as before.
    assert plant.call("mia", "machines", "report", machine="m1", readings=[_reading(4)]).ok
    for who in ORACLES[:3]:
        assert _report(plant, who, 4, 9500).ok
    assert plant.query("machines", "m1")["status"] == "degraded"


def test_late_and_disagreeing_reports_are_recorded_and_visible(plant: Chain) -> None:
    assert _report(plant, "ora1", 1, 1000).ok
    assert _report(plant, "ora2", 1, 1100).ok
    assert _report(plant, "ora3", 1, 1050).ok
    assert _report(plant, "ora4", 1, 4000).ok  # after the decision, far from the median
    prediction = plant.query("oracle", "prediction", "m1", "1")
    assert prediction["value_bp"] == 1050
    assert prediction["late"] == ["ora4"]
    assert prediction["outliers"] == ["ora4"]
    assert prediction["reports"] == {"ora1": 1000, "ora2": 1100, "ora3": 1050, "ora4": 4000}


def test_reports_are_events_only_once_a_prediction_is_decided(plant: Chain) -> None:
    for who in ORACLES[:2]:
        undecided = _report(plant, who, 1, 1000)
        assert undecided.ok and undecided.events == ()
    decided = _report(plant, "ora3", 1, 1100)
    assert [(e.kind, e.subject) for e in decided.events] == [
        ("final", "prediction:m1/1"),
        ("prediction", "machine:m1"),
    ]
    assert decided.events[0].data["reporters"] == ["ora1", "ora2", "ora3"]
    late = _report(plant, "ora4", 1, 1050)
    assert late.ok and late.events == ()


def _register(chain: Chain, model: bytes, threshold_bp: int) -> None:
    receipt = chain.call(
        "root",
        "oracle",
        "register_model",
        model_hash=model,
        name="rf2",
        features=["torque_nm", "wear_min"],
        threshold_bp=threshold_bp,
        horizon=5,
    )
    assert receipt.ok, receipt.error


def test_reports_of_a_replaced_model_do_not_count_toward_the_new_ones_quorum(
    plant: Chain,
) -> None:
    assert _report(plant, "ora1", 1, 9000).ok  # with MODEL
    _register(plant, OTHER_MODEL, 6000)
    assert _report(plant, "ora2", 1, 7000, OTHER_MODEL).ok
    prediction = plant.query("oracle", "prediction", "m1", "1")
    assert (prediction["final"], prediction["reports"]) == (False, {"ora2": 7000})
    assert prediction["model"] == OTHER_MODEL.hex()
    assert _report(plant, "ora3", 1, 6500, OTHER_MODEL).ok
    assert plant.query("oracle", "prediction", "m1", "1")["final"] is False
    assert _report(plant, "ora4", 1, 6000, OTHER_MODEL).ok
    prediction = plant.query("oracle", "prediction", "m1", "1")
    assert (prediction["final"], prediction["value_bp"]) == (True, 6500)


def test_a_prediction_decided_with_one_model_takes_no_report_of_another(plant: Chain) -> None:
    assert _report(plant, "ora1", 1, 1200).ok
    assert _report(plant, "ora2", 1, 1000).ok
    assert _report(plant, "ora3", 1, 1100).ok
    _register(plant, OTHER_MODEL, 6000)
    receipt = _report(plant, "ora4", 1, 9000, OTHER_MODEL)
    assert receipt.error is not None and "was decided with model" in receipt.error
    prediction = plant.query("oracle", "prediction", "m1", "1")
    assert (prediction["value_bp"], prediction["model"]) == (1100, MODEL.hex())


def test_a_key_renamed_by_the_admin_is_still_one_reporter(plant: Chain) -> None:
    assert _report(plant, "ora1", 1, 9000).ok
    key = plant.keys("ora1").public_key
    assert plant.call("root", "identity", "remove", name="ora1").ok
    added = plant.call("root", "identity", "add", name="ora9", public_key=key, roles=["oracle"])
    assert added.ok, added.error
    receipt = _report(plant, "ora1", 1, 9000)  # signed with the same key, now named ora9
    assert receipt.error is not None and "ora9 already reported" in receipt.error
    prediction = plant.query("oracle", "prediction", "m1", "1")
    assert (prediction["final"], prediction["reports"]) == (False, {"ora1": 9000})
    assert prediction["reporter_keys"] == [key.hex()]


def test_a_prediction_recorded_before_reporter_keys_were_kept_still_takes_reports(
    plant: Chain,
) -> None:
    # A cluster's state from before: the record has no reporter_keys. It must go on, not fail
    # the block on every validator.
    assert _report(plant, "ora1", 1, 1200).ok
    key = prediction_key("m1", 1)
    stored = plant.state.get(key)
    assert stored is not None
    record = decode(stored)
    del record["reporter_keys"]
    plant.state.apply({key: encode(record)})
    rewritten = plant.state.get(key)
    assert rewritten is not None
    assert "reporter_keys" not in decode(rewritten)
    assert plant.query("oracle", "prediction", "m1", "1")["reporter_keys"] == []
    assert _report(plant, "ora2", 1, 1000).ok
    prediction = plant.query("oracle", "prediction", "m1", "1")
    assert prediction["final"] is False
    assert prediction["reporter_keys"] == [plant.keys("ora2").public_key.hex()]
    assert _report(plant, "ora3", 1, 1100).ok
    prediction = plant.query("oracle", "prediction", "m1", "1")
    assert (prediction["final"], prediction["value_bp"]) == (True, 1100)


def test_only_the_admin_registers_a_model(plant: Chain) -> None:
    receipt = plant.call(
        "ora1",
        "oracle",
        "register_model",
        model_hash=OTHER_MODEL,
        name="x",
        features=["a"],
        threshold_bp=1,
        horizon=0,
    )
    assert receipt.error is not None and "needs role admin" in receipt.error
    assert plant.query("oracle", "model")["hash"] == MODEL.hex()


def test_median_is_the_lower_middle_value() -> None:
    assert median_bp([5]) == 5
    assert median_bp([9, 1]) == 1
    assert median_bp([3, 9, 1]) == 3
    assert median_bp([4, 1, 3, 2]) == 2


def _values(result: Any) -> list[dict[str, Any]]:
    if isinstance(result, dict):
        return [v for v in result.values() if isinstance(v, dict)]
    return list(result)
