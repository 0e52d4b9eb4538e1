"""Every denial and invalid argument of the factory contracts: a failing receipt naming the
problem, and no change to state (only the sender's nonce moves)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.contracts.conftest import Chain, place, state_except_nonces

R1 = {
    "seq": 1,
    "air_temp_dk": 2981,
    "process_temp_dk": 3087,
    "rpm": 1551,
    "torque_cnm": 4280,
    "tool_wear_min": 0,
}

CASES = [
    # (who, contract, method, args, the error message or its start)
    (
        "alice",
        "catalog",
        "publish",
        {"product": "x", "variants": {}},
        "catalog.publish needs role admin",
    ),
    (
        "root",
        "catalog",
        "publish",
        {"product": "x", "variants": {}},
        "product x needs at least one variant",
    ),
    (
        "root",
        "catalog",
        "publish",
        {"product": "a/b", "variants": {}},
        "catalog.publish: argument product must be",
    ),
    ("root", "catalog", "retire", {"product": "sprocket"}, "no product 'sprocket' in the catalog"),
    (
        "alice",
        "orders",
        "place",
        {"product": "bracket", "variant": "small", "quantity": 0},
        "orders.place: argument quantity must be at least 1, got 0",
    ),
    (
        "alice",
        "orders",
        "place",
        {"product": "bracket", "variant": "small", "quantity": 1, "colour": "red"},
        "orders.place: unexpected argument colour",
    ),
    (
        "alice",
        "orders",
        "place",
        {"product": "bracket", "variant": "tiny", "quantity": 1},
        "product bracket has no variant 'tiny'; variants: large, small",
    ),
    ("pat", "orders", "accept", {"order": "ord-99"}, "no order ord-99"),
    (
        "pat",
        "orders",
        "accept",
        {"order": "order-1"},
        "orders.accept: argument order must be a string of 5 to 16 characters matching",
    ),
    (
        "pat",
        "orders",
        "accept",
        {"order": "ord-2"},
        "cannot accept order ord-2: it is accepted, accept needs created",
    ),
    (
        "pat",
        "orders",
        "schedule",
        {"order": "ord-1"},
        "cannot schedule order ord-1: it is created, schedule needs accepted",
    ),
    (
        "pat",
        "orders",
        "schedule",
        {"order": "ord-2", "machine": "m3"},
        "machine m3 lacks bend, laser-cut needed by order ord-2",
    ),
    (
        "pat",
        "orders",
        "schedule",
        {"order": "ord-2", "machine": "m9"},
        "no machine 'm9'; machines: m1, m2, m3",
    ),
    (
        "mia",
        "orders",
        "start",
        {"order": "ord-2"},
        "cannot start order ord-2: it is accepted, start needs scheduled",
    ),
    (
        "aud",
        "orders",
        "qc_pass",
        {"order": "ord-1"},
        "cannot qc-pass order ord-1: it is created, qc-pass needs quality_check",
    ),
    (
        "pat",
        "orders",
        "ship",
        {"order": "ord-1"},
        "cannot ship order ord-1: it is created, ship needs passed",
    ),
    (
        "bob",
        "orders",
        "deliver",
        {"order": "ord-1"},
        "order ord-1 belongs to alice; bob may not confirm delivery of it",
    ),
    (
        "sam",
        "orders",
        "cancel",
        {"order": "ord-1"},
        "orders.cancel needs role customer or planner or admin; sender sam has supplier",
    ),
    (
        "alice",
        "machines",
        "register",
        {"machine": "m5", "type": "t", "capabilities": ["x"]},
        "machines.register needs role admin",
    ),
    (
        "root",
        "machines",
        "register",
        {"machine": "m5", "type": "t", "capabilities": []},
        "machines.register: argument capabilities must be a list of 1 to 32",
    ),
    (
        "root",
        "machines",
        "register",
        {"machine": "m5", "type": "t", "capabilities": ["x", "x"]},
        "machines.register: argument capabilities[1] repeats an earlier item",
    ),
    (
        "mia",
        "machines",
        "report",
        {"machine": "m1", "readings": []},
        "machines.report: argument readings must be a list of 1 to 200",
    ),
    (
        "mia",
        "machines",
        "report",
        {"machine": "m1", "readings": [{**R1, "rpm": -1}]},
        "machines.report: argument readings[0].rpm must be at least 0, got -1",
    ),
    (
        "mia",
        "machines",
        "report",
        {"machine": "m1", "readings": [{**R1, "vibration": 3}]},
        "machines.report: argument readings[0] has unexpected field vibration",
    ),
    (
        "sam",
        "machines",
        "report",
        {"machine": "m1", "readings": [R1]},
        "machines.report needs role machine or admin; sender sam has supplier",
    ),
    (
        "mia",
        "machines",
        "up",
        {"machine": "m1"},
        "machines.up needs role maintainer or admin; sender mia has machine",
    ),
    (
        "root",
        "machines",
        "flag_at_risk",
        {"machine": "m1", "probability_bp": 10_001},
        "machines.flag_at_risk: argument probability_bp must be at most 10000, got 10001",
    ),
    (
        "root",
        "machines",
        "flag_at_risk",
        {"machine": "m8", "probability_bp": 100},
        "no machine 'm8'; machines: m1, m2, m3",
    ),
    (
        "alice",
        "maintenance",
        "open",
        {"machine": "m1", "reason": "x"},
        "maintenance.open needs role maintainer or planner or admin",
    ),
    (
        "max",
        "maintenance",
        "open",
        {"machine": "m1", "reason": ""},
        "maintenance.open: argument reason must be a string of 1 to 256",
    ),
    ("max", "maintenance", "take", {"work_order": "wo-9"}, "no work order wo-9"),
    (
        "max",
        "maintenance",
        "close",
        {"work_order": "wo-1", "actions": ["prayed"]},
        "maintenance.close: argument actions[0] must be one of tool_replaced",
    ),
    (
        "alice",
        "inventory",
        "deliver",
        {"reference": "PO-1", "item": "a", "location": "main", "qty": 1},
        "inventory.deliver needs role supplier or admin",
    ),
    (
        "pat",
        "inventory",
        "set_reorder_point",
        {"item": "a", "location": "main", "point": -1},
        "inventory.set_reorder_point: argument point must be at least 0, got -1",
    ),
    (
        "pat",
        "inventory",
        "release",
        {"item": "steel-sheet", "location": "main", "qty": 1},
        "cannot release 1 steel-sheet at main: only 2 reserved (2 of them held by orders)",
    ),
]


@pytest.mark.parametrize(
    ("who", "contract", "method_name", "args", "message"),
    CASES,
    ids=[f"{c[1]}.{c[2]}-{i}" for i, c in enumerate(CASES)],
)
def test_a_refused_call_names_the_problem_and_changes_nothing(
    factory: Chain, who: str, contract: str, method_name: str, args: dict[str, Any], message: str
) -> None:
    place(factory)  # ord-1, created
    place(factory)  # ord-2, accepted below
    assert factory.call("pat", "orders", "accept", order="ord-2").ok
    assert factory.call("max", "maintenance", "open", machine="m2", reason="check").ok
    before = state_except_nonces(factory)
    receipt = factory.call(who, contract, method_name, **args)
    assert not receipt.ok
    assert receipt.error is not None and receipt.error.startswith(message), receipt.error
    assert receipt.events == ()
    assert state_except_nonces(factory) == before


def test_a_refusal_quotes_what_it_was_given_in_ascii(factory: Chain) -> None:
    # Receipts are hashed into the state digest. repr() escapes characters by the interpreter's
    # Unicode tables, which differ between Python versions (3.11 prints U+1FAE8 escaped, 3.12
    # as it is); ascii() escapes every non-ASCII character, so every validator writes the same.
    for machine in ("m\u00e9", "m\U0001fae8"):
        receipt = factory.call(
            "root", "machines", "flag_at_risk", machine=machine, probability_bp=1
        )
        assert receipt.error is not None and receipt.error.isascii(), receipt.error
    assert receipt.error is not None
    assert receipt.error.endswith("got 'm\\U0001fae8'")
