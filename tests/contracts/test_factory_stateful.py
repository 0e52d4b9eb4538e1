"""Random programs over the factory contracts keep stock and orders consistent.

Hypothesis sends order moves (legal or not, by the role that owns each), machine failures,
at-risk flags, work orders, deliveries and plain stock moves, sometimes several in one block, and
after every block checks: on-hand stock is never negative; 0 <= held by orders <= reserved <=
on hand; what orders hold adds up to the held counts; every order is in a known state whose
machine, queue entry and reservation agree with it; a machine produces exactly the order in
production on it; and every order event in a receipt is a legal move of the transition table.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from contracts.machine_state import all_machines
from contracts.order_state import HOLDS_MATERIALS, LEGAL_MOVES, ON_MACHINE, OrderState, all_orders
from contracts.stock import read_allocated, read_order_reservation, stock_records
from tests.contracts.conftest import Chain, build_factory, make_genesis

SPECS = (
    {"product": "bracket", "variant": "small", "options": {}},
    {"product": "bracket", "variant": "large", "options": {"finish": "galvanized"}},
    {"product": "bracket", "variant": "small", "options": {"finish": "powder-coat"}},
    {"product": "gearbox", "variant": "g50", "options": {"ratio": "r5"}},
    {"product": "gearbox", "variant": "g100", "options": {"ratio": "r10", "seal": "viton"}},
)
# Each order method with the member who owns it (alice's and bob's are owners of their orders).
ORDER_MOVES = {
    "accept": "pat",
    "schedule": "pat",
    "start": "mia",
    "complete": "mia",
    "qc_pass": "aud",
    "qc_fail": "aud",
    "ship": "pat",
    "deliver": "alice",
    "cancel": "alice",
}
NEXT_MOVES = {
    OrderState.CREATED: ("accept",),
    OrderState.ACCEPTED: ("schedule", "schedule", "cancel"),
    OrderState.SCHEDULED: ("start", "start", "cancel"),
    OrderState.IN_PRODUCTION: ("complete",),
    OrderState.QUALITY_CHECK: ("qc_pass", "qc_fail"),
    OrderState.PASSED: ("ship",),
    OrderState.SHIPPED: ("deliver",),
}
MACHINES = ("m1", "m2", "m3")
# (who, contract, method, args): one transaction to send.
ContractCall = tuple[str, str, str, dict[str, Any]]
ITEMS = ("steel-sheet", "bolt-m8", "shaft", "zinc-bath")

order_numbers = st.integers(min_value=1, max_value=8)
machine_ids = st.sampled_from(MACHINES)

calls = st.one_of(
    st.builds(
        lambda spec, qty, who: (who, "orders", "place", {**spec, "quantity": qty}),
        st.sampled_from(SPECS),
        st.integers(min_value=1, max_value=4),
        st.sampled_from(["alice", "alice", "bob"]),
    ),
    st.builds(
        lambda move, number: (ORDER_MOVES[move], "orders", move, {"order": f"ord-{number}"}),
        st.sampled_from(sorted(ORDER_MOVES)),
        order_numbers,
    ),
    st.builds(
        lambda number, machine: (
            "pat",
            "orders",
            "schedule",
            {"order": f"ord-{number}", "machine": machine},
        ),
        order_numbers,
        machine_ids,
    ),
    st.builds(lambda m: ("mia", "machines", "down", {"machine": m}), machine_ids),
    st.builds(lambda m: ("max", "machines", "up", {"machine": m}), machine_ids),
    st.builds(
        lambda m, bp: ("root", "machines", "flag_at_risk", {"machine": m, "probability_bp": bp}),
        machine_ids,
        st.integers(min_value=0, max_value=10_000),
    ),
    st.builds(
        lambda m: ("max", "maintenance", "open", {"machine": m, "reason": "check"}), machine_ids
    ),
    st.builds(
        lambda n: ("max", "maintenance", "take", {"work_order": f"wo-{n}"}), st.integers(1, 4)
    ),
    st.builds(
        lambda n: (
            "max",
            "maintenance",
            "close",
            {"work_order": f"wo-{n}", "actions": ["repaired"]},
        ),
        st.integers(1, 4),
    ),
    st.builds(
        lambda method, item, qty: (
            {"reserve": "pat", "release": "pat", "consume": "mia", "receive": "sam"}[method],
            "inventory",
            method,
            {"item": item, "location": "main", "qty": qty},
        ),
        st.sampled_from(["reserve", "release", "consume", "receive"]),
        st.sampled_from(ITEMS),
        st.integers(min_value=1, max_value=12),
    ),
)


class FactoryMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.chain = build_factory(Chain(make_genesis()))

    def _run(self, batch: list[ContractCall]) -> None:
        txs = [self.chain.tx(who, contract, name, **args) for who, contract, name, args in batch]
        result = self.chain.run(*txs)
        for receipt in result.receipts:
            assert receipt.ok or receipt.error  # a refusal always says why
            for event in receipt.events:
                if event.subject.startswith("order:") and "from" in event.data:
                    move = (OrderState(event.data["from"]), OrderState(event.data["to"]))
                    assert move in LEGAL_MOVES, (event, receipt)

    @rule(call=calls)
    def one_call(self, call: ContractCall) -> None:
        self._run([call])

    @rule(data=st.data())
    def advance_an_order(self, data: st.DataObject) -> None:
        # Random moves rarely take an order far; this one follows the order's own path.
        orders = [o for o in all_orders(self.chain.state) if o.state in NEXT_MOVES]
        if not orders:
            return
        order = data.draw(st.sampled_from(orders))
        move = data.draw(st.sampled_from(NEXT_MOVES[order.state]))
        self._run([(ORDER_MOVES[move], "orders", move, {"order": order.id})])

    @rule(batch=st.lists(calls, min_size=2, max_size=6))
    def several_calls_in_one_block(self, batch: list[ContractCall]) -> None:
        self._run(batch)

    @invariant()
    def stock_never_negative_and_reserved_never_above_on_hand(self) -> None:
        state = self.chain.state
        held: Counter[tuple[str, str]] = Counter()
        for order in all_orders(state):
            reservation = read_order_reservation(state, order.id)
            holds = order.state in HOLDS_MATERIALS and not (
                order.state is OrderState.IN_PRODUCTION and order.qc_failures
            )
            assert (reservation is not None) == holds, order
            if reservation is not None:
                assert reservation["lines"] == order.bom
                for item, qty in reservation["lines"].items():
                    held[(item, reservation["location"])] += qty
        for item, location, stock in stock_records(state):
            allocated = read_allocated(state, item, location)
            assert stock.on_hand >= 0
            assert 0 <= allocated <= stock.reserved <= stock.on_hand
            assert allocated == held[(item, location)]

    @invariant()
    def orders_only_in_legal_states_consistent_with_machines(self) -> None:
        state = self.chain.state
        orders = all_orders(state)
        machines = {m.id: m for m in all_machines(state)}
        for order in orders:
            assert order.state in OrderState
            assert bool(order.machine) == (order.state in ON_MACHINE), order
        for machine_id, machine in machines.items():
            queue = self.chain.query("machines", machine_id)["queue"]
            scheduled = [
                o.id for o in orders if o.state is OrderState.SCHEDULED and o.machine == machine_id
            ]
            assert queue == scheduled
            if queue:
                assert machine.in_service, machine
            producing = [
                o.id
                for o in orders
                if o.state is OrderState.IN_PRODUCTION and o.machine == machine_id
            ]
            assert producing == ([machine.producing] if machine.producing else [])


def test_random_factory_programs_keep_stock_and_orders_consistent() -> None:
    run_state_machine_as_test(
        FactoryMachine,
        settings=settings(
            max_examples=60,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
