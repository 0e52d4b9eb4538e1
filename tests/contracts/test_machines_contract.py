"""The machines contract: registration, readings, status, accounting and moving queued work."""

from __future__ import annotations

import pytest

from contracts.errors import QueryError
from contracts.machine_state import reading_key
from tests.contracts.conftest import Chain, place, state_except_nonces


def reading(seq: int, wear: int = 10, **fields: int) -> dict[str, int]:
    return {
        "seq": seq,
        "air_temp_dk": 2981,
        "process_temp_dk": 3087,
        "rpm": 1551,
        "torque_cnm": 4280,
        "tool_wear_min": wear,
        **fields,
    }


def queue_two_on_m1(chain: Chain) -> None:
    """Orders ord-1 and ord-2 (small brackets) queued on m1."""
    for _ in range(2):
        assert place(chain).ok
    for order_id in ("ord-1", "ord-2"):
        assert chain.call("pat", "orders", "accept", order=order_id).ok
        assert chain.call("pat", "orders", "schedule", order=order_id, machine="m1").ok


def test_register_starts_running_with_sorted_capabilities(factory: Chain) -> None:
    receipt = factory.call(
        "root", "machines", "register", machine="m9", type="press", capabilities=["bend", "cut"]
    )
    assert receipt.ok
    assert receipt.result["status"] == "running"
    assert receipt.result["capabilities"] == ["bend", "cut"]
    again = factory.call(
        "root", "machines", "register", machine="m9", type="press", capabilities=["bend"]
    )
    assert again.error == "machine m9 is already registered"


def test_readings_are_stored_by_machine_and_sequence(factory: Chain) -> None:
    receipt = factory.call(
        "mia", "machines", "report", machine="m1", readings=[reading(1), reading(2, wear=12)]
    )
    assert receipt.ok, receipt.error
    assert receipt.result == {"machine": "m1", "last_seq": 2, "count": 2}
    (event,) = receipt.events
    assert (event.kind, event.subject) == ("readings", "machine:m1")
    assert event.data == {"first_seq": 1, "last_seq": 2, "count": 2, "tool_wear_min": 12}
    assert factory.state.get(reading_key("m1", 2)) is not None
    stored = factory.query("machines", "m1", "readings", "2")
    assert stored["torque_cnm"] == 4280
    assert stored["seq"] == 2
    assert stored["height"] == factory.height
    assert [r["seq"] for r in factory.query("machines", "m1", "readings")] == [1, 2]
    with pytest.raises(QueryError, match="no reading 7"):
        factory.query("machines", "m1", "readings", "7")


def test_reading_sequence_numbers_must_rise(factory: Chain) -> None:
    assert factory.call("mia", "machines", "report", machine="m1", readings=[reading(5)]).ok
    before = state_except_nonces(factory)
    receipt = factory.call(
        "mia", "machines", "report", machine="m1", readings=[reading(6), reading(5)]
    )
    assert receipt.error == "reading 1 of machine m1 has seq 5; sequence numbers must rise past 6"
    assert state_except_nonces(factory) == before


def test_a_reading_with_a_missing_field_is_refused_naming_it(factory: Chain) -> None:
    bad = reading(1)
    del bad["rpm"]
    receipt = factory.call("mia", "machines", "report", machine="m1", readings=[bad])
    assert receipt.error is not None
    assert receipt.error.startswith(
        "machines.report: argument readings[0] is missing field rpm (an integer"
    )


def test_down_moves_queued_orders_to_the_least_loaded_capable_machine(factory: Chain) -> None:
    queue_two_on_m1(factory)
    receipt = factory.call("mia", "machines", "down", machine="m1", reason="spindle jam")
    assert receipt.ok, receipt.error
    assert receipt.result["moves"] == [
        {"order": "ord-1", "to": "m2"},
        {"order": "ord-2", "to": "m2"},
    ]
    moved = [e for e in receipt.events if e.subject == "order:ord-1"]
    assert [(e.contract, e.kind) for e in moved] == [("orders", "reassign")]
    assert moved[0].data["from_machine"] == "m1"
    assert moved[0].data["to_machine"] == "m2"
    assert moved[0].data["reason"] == "machine m1 down"
    machines = factory.query("machines")
    assert machines["m1"]["status"] == "down"
    assert machines["m1"]["queue"] == []
    assert machines["m2"]["queue"] == ["ord-1", "ord-2"]
    assert factory.query("orders", "ord-2")["machine"] == "m2"


def test_reassignment_spreads_work_by_queued_duration(factory: Chain) -> None:
    factory.call(
        "root",
        "machines",
        "register",
        machine="m4",
        type="cell",
        capabilities=["laser-cut", "bend"],
    )
    queue_two_on_m1(factory)
    receipt = factory.call("mia", "machines", "down", machine="m1")
    assert receipt.result["moves"] == [
        {"order": "ord-1", "to": "m2"},
        {"order": "ord-2", "to": "m4"},
    ]


def test_an_order_no_machine_can_take_goes_back_to_accepted_saying_why(factory: Chain) -> None:
    place(factory, options={"finish": "galvanized"})
    factory.call("pat", "orders", "accept", order="ord-1")
    factory.call("pat", "orders", "schedule", order="ord-1")
    assert factory.query("orders", "ord-1")["machine"] == "m2"
    receipt = factory.call("root", "machines", "down", machine="m2")
    (event,) = [e for e in receipt.events if e.subject == "order:ord-1"]
    assert event.kind == "unschedule"
    assert event.data["reason"] == (
        "machine m2 down; no machine in service has bend, galvanize, laser-cut"
    )
    record = factory.query("orders", "ord-1")
    assert (record["state"], record["machine"]) == ("accepted", "")
    assert record["reservation"] is not None


def test_orders_in_production_stay_on_a_machine_that_goes_down(factory: Chain) -> None:
    queue_two_on_m1(factory)
    factory.call("mia", "orders", "start", order="ord-1")
    receipt = factory.call("mia", "machines", "down", machine="m1")
    assert receipt.result["moves"] == [{"order": "ord-2", "to": "m2"}]
    assert factory.query("orders", "ord-1")["machine"] == "m1"


def test_a_wear_counter_reset_counts_wherever_it_falls_in_a_batch(factory: Chain) -> None:
    # m1's tool was replaced at 200 min of wear (baseline 200) and it ran 50 min more; then
    # the machine changes its own tool, resets its counter (5) and wears the tool to 260. The
    # reset used to count only if it was the last reading of a batch.
    assert factory.call("mia", "machines", "report", machine="m1", readings=[reading(1, 200)]).ok
    assert factory.call("max", "maintenance", "open", machine="m1", reason="wear").ok
    assert factory.call("max", "maintenance", "take", work_order="wo-1").ok
    closed = factory.call(
        "max", "maintenance", "close", work_order="wo-1", actions=["tool_replaced"]
    )
    assert closed.ok, closed.error
    assert factory.call("mia", "machines", "report", machine="m1", readings=[reading(2, 250)]).ok
    assert factory.query("machines", "m1")["tool_wear_min"] == 50
    later = [reading(3, 5), reading(4, 260)]
    assert factory.call("mia", "machines", "report", machine="m1", readings=later).ok
    assert factory.query("machines", "m1")["tool_wear_min"] == 260


def test_production_pauses_while_its_machine_is_down_and_resumes_when_it_is_back(
    factory: Chain,
) -> None:
    # Blocks are 1 s apart. The time a machine is down used to count as production too, and
    # the order could be completed on the down machine.
    queue_two_on_m1(factory)
    started = factory.call("mia", "orders", "start", order="ord-1")
    assert started.ok
    start_ms = 1_000 * factory.height
    factory.run()  # 1 s of production
    down = factory.call("mia", "machines", "down", machine="m1", reason="jam")
    pause = [e for e in down.events if e.kind == "production_pause"]
    assert [(e.data["order"], e.data["worked_ms"]) for e in pause] == [("ord-1", 2_000)]
    refused = factory.call("mia", "orders", "complete", order="ord-1")
    assert (
        refused.error
        == "order ord-1 is paused: machine m1 is down (jam); it resumes when the machine is back"
    )
    factory.run()
    back = factory.call("max", "machines", "up", machine="m1")
    assert [e.kind for e in back.events if e.kind.startswith("production_")] == [
        "production_resume"
    ]
    factory.run()
    assert factory.call("mia", "orders", "complete", order="ord-1").ok
    m1 = factory.query("machines", "m1")
    elapsed = 1_000 * factory.height - start_ms
    assert m1["downtime_ms"] == 3_000
    assert m1["production_ms"] == 2_000 + 2_000
    assert m1["production_ms"] + m1["downtime_ms"] == elapsed


def test_a_down_machine_taken_for_maintenance_books_no_more_production(factory: Chain) -> None:
    queue_two_on_m1(factory)
    assert factory.call("mia", "orders", "start", order="ord-1").ok
    assert factory.call("mia", "machines", "down", machine="m1", reason="jam").ok
    worked = factory.query("machines", "m1")["production_ms"]
    factory.run()
    assert factory.call("max", "maintenance", "open", machine="m1", reason="jam").ok
    taken = factory.call("max", "maintenance", "take", work_order="wo-1")
    assert taken.ok and not [e for e in taken.events if e.kind == "production_pause"]
    assert factory.query("machines", "m1")["production_ms"] == worked


def test_flag_at_risk_degrades_the_machine_and_moves_its_queue(factory: Chain) -> None:
    queue_two_on_m1(factory)
    receipt = factory.call(
        "root", "machines", "flag_at_risk", machine="m1", probability_bp=8_700, reason="torque"
    )
    assert receipt.ok, receipt.error
    m1 = factory.query("machines", "m1")
    assert m1["status"] == "degraded"
    assert m1["at_risk"]["probability_bp"] == 8_700
    assert m1["at_risk"]["source"] == "root"
    assert factory.query("machines", "m2")["queue"] == ["ord-1", "ord-2"]
    reasons = {e.data["reason"] for e in receipt.events if e.kind == "reassign"}
    assert reasons == {"machine m1 at risk (8700 bp)"}
    # A degraded machine takes no new work until it is back up.
    place(factory)
    factory.call("pat", "orders", "accept", order="ord-3")
    refused = factory.call("pat", "orders", "schedule", order="ord-3", machine="m1")
    assert refused.error == "machine m1 is degraded, not in service"
    assert factory.call("max", "machines", "up", machine="m1").ok
    assert factory.query("machines", "m1")["at_risk"] is None


def test_flag_at_risk_needs_the_admin_not_one_oracle(factory: Chain) -> None:
    # One oracle key flagging a machine by itself would bypass the oracle's quorum.
    receipt = factory.call("max", "machines", "flag_at_risk", machine="m1", probability_bp=1)
    assert receipt.error == "machines.flag_at_risk needs role admin; sender max has maintainer"
    receipt = factory.call("ora", "machines", "flag_at_risk", machine="m1", probability_bp=9_999)
    assert receipt.error == "machines.flag_at_risk needs role admin; sender ora has oracle"
    assert factory.query("machines", "m1")["status"] == "running"


def test_downtime_is_accounted_from_block_timestamps(factory: Chain) -> None:
    factory.call("mia", "machines", "down", machine="m1")  # block 2, t = 2000
    factory.call("pat", "orders", "place")  # an unrelated block: fails, time passes
    factory.call("max", "machines", "up", machine="m1")  # block 4, t = 4000
    assert factory.query("machines", "m1")["downtime_ms"] == 2_000
    assert factory.query("machines", "m1")["status_reason"] == "back in service"


def test_a_named_operator_is_the_only_machine_identity_acting_for_it(chain: Chain) -> None:
    chain.call(
        "root",
        "machines",
        "register",
        machine="m1",
        type="cell",
        capabilities=["x"],
        operator="mia",
    )
    chain.call(
        "root",
        "identity",
        "add",
        name="mo",
        public_key=chain.keys("mo").public_key,
        roles=["machine"],
    )
    receipt = chain.call("mo", "machines", "report", machine="m1", readings=[reading(1)])
    assert receipt.error == "machine m1 is operated by mia; mo may not act for it"


def test_a_removed_members_name_cannot_be_named_operator_but_a_future_one_can(chain: Chain) -> None:
    removal = chain.call("root", "identity", "remove", name="mia")
    assert removal.ok
    before = state_except_nonces(chain)
    register = {"type": "cell", "capabilities": ["x"]}
    receipt = chain.call("root", "machines", "register", machine="m1", operator="mia", **register)
    assert receipt.error == (
        "operator 'mia' is retired: the identity of that name was removed at height "
        f"{removal.height}, and a removed name is never given to another member, so nobody "
        "inherits what it owned; choose another name"
    )
    assert state_except_nonces(chain) == before
    assert chain.call("root", "machines", "register", machine="m1", operator="mo", **register).ok


def test_status_changes_are_refused_when_they_make_no_sense(factory: Chain) -> None:
    assert factory.call("max", "machines", "up", machine="m1").error == (
        "machine m1 is already running"
    )
    factory.call("mia", "machines", "down", machine="m1")
    assert factory.call("mia", "machines", "down", machine="m1").error == (
        "machine m1 is already down"
    )
    assert factory.call("mia", "machines", "down", machine="m7").error == (
        "no machine 'm7'; machines: m1, m2, m3"
    )
