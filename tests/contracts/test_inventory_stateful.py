"""Random inventory programs run through Runtime.execute_block agree with a simple model.

Hypothesis drives receive/reserve/release/consume/transfer calls, sometimes several per block, and
after every block checks the invariants (on_hand >= 0, 0 <= reserved <= on_hand) and that every
record and every receipt's success matches the model's prediction.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from contracts.inventory import stock_records
from tests.contracts.conftest import Chain

ITEMS = ("steel", "bolts")
LOCATIONS = ("main", "annex", "dock")
# Who sends each method: a holder of one of its roles.
SENDERS = {
    "receive": "sam",
    "reserve": "pat",
    "release": "pat",
    "consume": "mia",
    "transfer": "pat",
}

items = st.sampled_from(ITEMS)
locations = st.sampled_from(LOCATIONS)
quantities = st.integers(min_value=1, max_value=60)

Key = tuple[str, str]
Record = tuple[int, int]  # (on_hand, reserved)
# One contract call: "method", "item", "location", "qty" and, for a transfer, "to".
Op = dict[str, Any]


def model_apply(model: dict[Key, Record], op: Op) -> bool:
    """Apply `op` to the model if it should succeed; returns whether it should."""
    key = (op["item"], op["location"])
    on_hand, reserved = model.get(key, (0, 0))
    qty = op["qty"]
    kind = op["method"]
    if kind == "receive":
        model[key] = (on_hand + qty, reserved)
    elif kind == "reserve":
        if on_hand - reserved < qty:
            return False
        model[key] = (on_hand, reserved + qty)
    elif kind == "release":
        if reserved < qty:
            return False
        model[key] = (on_hand, reserved - qty)
    elif kind == "consume":
        if reserved < qty:
            return False
        model[key] = (on_hand - qty, reserved - qty)
    else:
        target = (op["item"], op["to"])
        if op["to"] == op["location"] or on_hand - reserved < qty:
            return False
        model[key] = (on_hand - qty, reserved)
        target_on_hand, target_reserved = model.get(target, (0, 0))
        model[target] = (target_on_hand + qty, target_reserved)
    return True


operations = st.one_of(
    st.fixed_dictionaries(
        {
            "method": st.sampled_from(["receive", "reserve", "release", "consume"]),
            "item": items,
            "location": locations,
            "qty": quantities,
        }
    ),
    st.fixed_dictionaries(
        {
            "method": st.just("transfer"),
            "item": items,
            "location": locations,
            "to": locations,
            "qty": quantities,
        }
    ),
)


class InventoryMachine(RuleBasedStateMachine):
    make_chain: Callable[[], Chain]

    def __init__(self) -> None:
        super().__init__()
        self.chain = type(self).make_chain()
        self.model: dict[Key, Record] = {}

    def _run_block(self, ops: list[Op]) -> None:
        txs = []
        for op in ops:
            args = {name: value for name, value in op.items() if name != "method"}
            txs.append(self.chain.tx(SENDERS[op["method"]], "inventory", op["method"], **args))
        result = self.chain.run(*txs)
        for op, receipt in zip(ops, result.receipts, strict=True):
            expected = model_apply(self.model, op)
            assert receipt.ok == expected, (op, receipt.error)

    @rule(op=operations)
    def one_call(self, op: Op) -> None:
        self._run_block([op])

    @rule(ops=st.lists(operations, min_size=2, max_size=6))
    def several_calls_in_one_block(self, ops: list[Op]) -> None:
        self._run_block(ops)

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data())
    def reserve_everything_available(self, data: st.DataObject) -> None:
        # Random quantities rarely hit a boundary exactly; this rule aims at it.
        item, location = data.draw(st.sampled_from(sorted(self.model)))
        on_hand, reserved = self.model[(item, location)]
        if on_hand > reserved:
            op = {"method": "reserve", "item": item, "location": location}
            self._run_block([{**op, "qty": on_hand - reserved}])

    @invariant()
    def stock_matches_the_model_and_keeps_its_invariants(self) -> None:
        records = stock_records(self.chain.state)
        for _, _, stock in records:
            assert stock.on_hand >= 0
            assert 0 <= stock.reserved <= stock.on_hand
        actual = {(item, location): (s.on_hand, s.reserved) for item, location, s in records}
        assert actual == self.model


def test_inventory_matches_model_under_random_operations(make_chain: Callable[..., Chain]) -> None:
    machine = type("BoundInventoryMachine", (InventoryMachine,), {"make_chain": make_chain})
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=60,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture],
        ),
    )
