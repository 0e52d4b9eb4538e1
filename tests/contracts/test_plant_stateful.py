"""Random programs over the whole plant, oracle included, keep every contract's books straight.

Next to `test_factory_stateful`, this machine adds what acts on orders from outside the orders
contract: machine readings, validators' oracle reports that finalize predictions (and flag
machines, open work orders and move queued work), work orders closed with a new tool, supplier
deliveries, transfers between two locations, and members suspended and reinstated. It keeps a
model of the units that entered and left the plant and checks after every block:

- conservation: per item, on hand over all locations == received + delivered - consumed;
  0 <= held by orders <= reserved <= on hand; what orders hold adds up to the held counts and
  each order holds exactly its bill of materials while (and only while) it should;
- queues: a machine's queue is exactly the scheduled orders naming it, at most QUEUE_MAX, and
  only a machine in service has one; a machine produces exactly the order in production on it;
- maintenance: a machine is under maintenance exactly when one taken work order names it and
  its `work_order` is that one; a degraded machine carries its at-risk flag;
- the oracle: every machine it flags gets exactly one work order in the same transaction, never
  two, and it flags only on a reading reported after the machine last came back into service
  (not one committed before, nor beside, the repair);
- failure: a transaction that fails alone in its block changes nothing but its sender's nonce.

It runs twice: with the real QUEUE_MAX, and with room for two orders a machine, so that moving
work off a machine meets full queues (and the orders no machine can take go back to accepted).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from contracts import scheduling
from contracts.machine_state import MachineStatus, all_machines
from contracts.maintenance import all_work_orders
from contracts.oracle import prediction_key
from contracts.order_state import HOLDS_MATERIALS, LEGAL_MOVES, ON_MACHINE, OrderState, all_orders
from contracts.receipt import Receipt
from contracts.state import read_map
from contracts.stock import read_allocated, read_order_reservation, stock_records
from ledger.genesis import Role
from tests.contracts.conftest import (
    FACTORY_STOCK,
    MEMBER_ROLES,
    Chain,
    build_factory,
    make_genesis,
    state_except_nonces,
)

MODEL = bytes(range(32))
ORACLES = ("ora1", "ora2", "ora3", "ora4")
MACHINES = ("m1", "m2", "m3")
RESTOCK = {
    "steel-sheet": 40,
    "bolt-m8": 120,
    "zinc-bath": 10,
    "powder-black": 10,
    "housing-g50": 12,
    "shaft": 24,
    "bearing-6204": 48,
    "gear-set-r5": 12,
}
LOCATIONS = ("main", "east")
ITEMS = ("steel-sheet", "bolt-m8", "shaft", "zinc-bath", "bearing-6204")
SPECS = (
    {"product": "bracket", "variant": "small", "options": {}},
    {"product": "bracket", "variant": "large", "options": {"finish": "galvanized"}},
    {"product": "bracket", "variant": "small", "options": {"finish": "powder-coat"}},
    {"product": "gearbox", "variant": "g50", "options": {"ratio": "r5"}},
)
# The member who owns each order move; customers act on their own orders (or try others').
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
    OrderState.ACCEPTED: ("schedule", "cancel"),
    OrderState.SCHEDULED: ("start", "cancel"),
    OrderState.IN_PRODUCTION: ("complete",),
    OrderState.QUALITY_CHECK: ("qc_pass", "qc_fail"),
    OrderState.PASSED: ("ship",),
    OrderState.SHIPPED: ("deliver",),
}

Call = tuple[str, str, str, dict[str, Any]]

machine_ids = st.sampled_from(MACHINES)
order_ids = st.integers(min_value=1, max_value=10).map(lambda n: f"ord-{n}")
work_order_ids = st.integers(min_value=1, max_value=5).map(lambda n: f"wo-{n}")
quantities = st.integers(min_value=1, max_value=12)
# Mostly healthy readings (the threshold is 6,000 bp), sometimes a risky one.
probabilities = st.one_of(
    st.integers(min_value=0, max_value=5_999),
    st.integers(min_value=0, max_value=5_999),
    st.integers(min_value=6_000, max_value=10_000),
)

calls: st.SearchStrategy[Call] = st.one_of(
    st.builds(
        lambda move, order, who: (who or ORDER_MOVES[move], "orders", move, {"order": order}),
        st.sampled_from(sorted(ORDER_MOVES)),
        order_ids,
        st.sampled_from((None, None, None, "bob", "root")),
    ),
    st.builds(
        lambda order, location: ("pat", "orders", "accept", {"order": order, "location": location}),
        order_ids,
        st.sampled_from(("main", "main", "east")),
    ),
    st.builds(
        lambda order, machine: ("pat", "orders", "schedule", {"order": order, "machine": machine}),
        order_ids,
        machine_ids,
    ),
    # Readings, numbered when the block is built (see PlantMachine._run).
    st.builds(
        lambda m, count: ("mia", "machines", "report", {"machine": m, "count": count}),
        machine_ids,
        st.integers(min_value=1, max_value=3),
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
    st.builds(lambda w: ("max", "maintenance", "take", {"work_order": w}), work_order_ids),
    st.builds(
        lambda w, actions: ("max", "maintenance", "close", {"work_order": w, "actions": actions}),
        work_order_ids,
        st.sampled_from((["repaired"], ["tool_replaced"], ["inspected", "tool_replaced"])),
    ),
    st.builds(
        lambda method, item, location, qty: (
            {"reserve": "pat", "release": "pat", "consume": "mia", "receive": "sam"}[method],
            "inventory",
            method,
            {"item": item, "location": location, "qty": qty},
        ),
        st.sampled_from(("reserve", "release", "consume", "receive")),
        st.sampled_from(ITEMS),
        st.sampled_from(LOCATIONS),
        quantities,
    ),
    st.builds(
        lambda item, source, qty: (
            "pat",
            "inventory",
            "transfer",
            {"item": item, "location": source, "to": LOCATIONS[source == "main"], "qty": qty},
        ),
        st.sampled_from(ITEMS),
        st.sampled_from(LOCATIONS),
        quantities,
    ),
    st.builds(
        lambda ref, item, location, qty: (
            "sam",
            "inventory",
            "deliver",
            {"reference": f"d{ref}", "item": item, "location": location, "qty": qty},
        ),
        st.integers(min_value=1, max_value=4),
        st.sampled_from(ITEMS),
        st.sampled_from(LOCATIONS),
        quantities,
    ),
    st.builds(
        lambda method, who: ("root", "identity", method, {"name": who}),
        st.sampled_from(("suspend", "reinstate")),
        st.sampled_from(("bob", "mia", "ora4")),
    ),
    st.builds(
        lambda spec, qty, who: (who, "orders", "place", {**spec, "quantity": qty}),
        st.sampled_from(SPECS),
        st.integers(min_value=1, max_value=3),
        st.sampled_from(("alice", "alice", "bob")),
    ),
)


def _reading(seq: int, wear: int) -> dict[str, Any]:
    return {
        "seq": seq,
        "air_temp_dk": 2981,
        "process_temp_dk": 3087,
        "rpm": 1400,
        "torque_cnm": 6500,
        "tool_wear_min": wear,
        "quality": "L",
    }


class PlantMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        members = {**MEMBER_ROLES, **{name: (Role.ORACLE,) for name in ORACLES}}
        self.chain = build_factory(Chain(make_genesis(members)))
        self.units: Counter[str] = Counter(FACTORY_STOCK)  # per item, all locations
        self.next_seq = dict.fromkeys(MACHINES, 1)
        self.last_seq = dict.fromkeys(MACHINES, 0)  # the last reading committed
        self.service_seq = dict.fromkeys(MACHINES, 0)  # last_seq when it last came back
        self.risk_bp: dict[tuple[str, int], int] = {}  # what the model says of each reading

    @initialize()
    def register_model(self) -> None:
        receipt = self.chain.call(
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
        # Parts for a dozen orders of each spec, so that queues grow long.
        restock = [
            ("sam", "inventory", "receive", {"item": item, "location": "main", "qty": qty})
            for item, qty in sorted(RESTOCK.items())
        ]
        assert all(receipt.ok for receipt in self._run(restock))

    def _run(self, batch: list[Call]) -> list[Receipt]:
        before = state_except_nonces(self.chain)
        txs = [
            self.chain.tx(who, contract, name, **self._numbered(args))
            for who, contract, name, args in batch
        ]
        receipts = list(self.chain.run(*txs).receipts)
        for receipt in receipts:
            assert receipt.ok or receipt.error  # a refusal always says why
            self._account(receipt)
        if len(receipts) == 1 and not receipts[0].ok:
            assert state_except_nonces(self.chain) == before, receipts[0].error
        return receipts

    def _numbered(self, args: dict[str, Any]) -> dict[str, Any]:
        """Args, with a reading count turned into that many readings numbered from the next."""
        if "count" not in args:
            return args
        machine, first = args["machine"], self.next_seq[args["machine"]]
        self.next_seq[machine] = first + args["count"]
        readings = [_reading(seq, 100 + seq) for seq in range(first, first + args["count"])]
        return {"machine": machine, "readings": readings}

    def _account(self, receipt: Receipt) -> None:
        """Follow the units, readings and returns to service in a receipt's events, and check
        each order move and each flag the oracle raises."""
        flagged: list[str] = []
        opened_by_oracle: list[str] = []
        decided = -1  # the reading of the prediction decided last in this receipt
        for event in receipt.events:
            key = (event.contract, event.kind)
            machine = event.subject.removeprefix("machine:")
            if key in (
                ("inventory", "receive"),
                ("inventory", "deliver"),
                ("inventory", "consume"),
            ):
                if event.subject.startswith("item:"):  # not the delivery's own event
                    sign = -1 if event.kind == "consume" else 1
                    self.units[event.subject[5:].split("@")[0]] += sign * event.data["qty"]
            elif event.subject.startswith("order:") and "from" in event.data:
                move = (OrderState(event.data["from"]), OrderState(event.data["to"]))
                assert move in LEGAL_MOVES, (event, receipt)
            elif key == ("machines", "readings"):
                self.last_seq[machine] = event.data["last_seq"]
            elif key == ("machines", "status") and event.data["to"] == "running":
                self.service_seq[machine] = self.last_seq[machine]
            elif key == ("oracle", "prediction"):
                decided = event.data["seq"]
            elif key == ("machines", "at_risk") and event.data["source"] == "oracle":
                flagged.append(event.subject)
                # Acted on only for a reading taken since the machine last came back.
                assert decided > self.service_seq[machine], (decided, receipt)
            elif key == ("maintenance", "open") and event.data["source"] == "oracle":
                opened_by_oracle.append(f"machine:{event.data['machine']}")
        # One work order per machine the oracle flags, never two for one machine.
        assert sorted(flagged) == sorted(opened_by_oracle), receipt
        assert len(set(flagged)) == len(flagged), receipt

    @rule(call=calls)
    def one_call(self, call: Call) -> None:
        self._run([call])

    @rule(machine=machine_ids, count=st.integers(1, 3), up_first=st.booleans())
    def readings_beside_a_return_to_service(self, machine: str, count: int, up_first: bool) -> None:
        # A machine keeps reporting while it is repaired: readings from before its return and
        # the return itself often land in one block.
        report = ("mia", "machines", "report", {"machine": machine, "count": count})
        back: Call = ("max", "machines", "up", {"machine": machine})
        for record in all_work_orders(self.chain.state):
            if record["state"] == "taken" and record["machine"] == machine:
                close = {"work_order": record["id"], "actions": ["tool_replaced"]}
                back = ("max", "maintenance", "close", close)
        self._run([back, report] if up_first else [report, back])

    @rule(batch=st.lists(calls, min_size=2, max_size=5))
    def several_calls_in_one_block(self, batch: list[Call]) -> None:
        self._run(batch)

    @rule(
        spec=st.sampled_from(SPECS),
        quantity=st.integers(min_value=1, max_value=2),
        who=st.sampled_from(("alice", "bob")),
    )
    def place_and_accept(self, spec: dict[str, Any], quantity: int, who: str) -> None:
        placed = self._run([(who, "orders", "place", {**spec, "quantity": quantity})])[0]
        if placed.ok:
            self._run([("pat", "orders", "accept", {"order": placed.result["id"]})])

    @rule(machine=st.sampled_from(("", *MACHINES)))
    def schedule_every_accepted_order(self, machine: str) -> None:
        # A planner's morning: the whole backlog queued in one block, on one machine or by
        # the rule, until queues fill.
        accepted = [o.id for o in all_orders(self.chain.state) if o.state is OrderState.ACCEPTED]
        if accepted:
            self._run(
                [("pat", "orders", "schedule", {"order": o, "machine": machine}) for o in accepted]
            )

    @rule(data=st.data(), count=st.integers(min_value=1, max_value=4))
    def advance_more_orders(self, data: st.DataObject, count: int) -> None:
        self.advance_orders(data, count)

    @rule(data=st.data(), count=st.integers(min_value=1, max_value=4))
    def advance_orders(self, data: st.DataObject, count: int) -> None:
        # Random moves rarely take an order far; these follow the orders' own paths.
        for _ in range(count):
            orders = [o for o in all_orders(self.chain.state) if o.state in NEXT_MOVES]
            placed = [o for o in orders if o.state is not OrderState.CREATED]
            prefer_placed: bool = data.draw(st.booleans())
            if placed and prefer_placed:
                orders = placed  # else orders pile up as created
            if not orders:
                return
            order = data.draw(st.sampled_from(orders))
            move = data.draw(st.sampled_from(NEXT_MOVES[order.state]))
            self._run([(ORDER_MOVES[move], "orders", move, {"order": order.id})])

    @rule(data=st.data())
    def service_machines(self, data: st.DataObject) -> None:
        # Brings machines back, so that orders find machines in service again.
        for record in all_work_orders(self.chain.state):
            if record["state"] == "open" and data.draw(st.booleans()):
                self._run([("max", "maintenance", "take", {"work_order": record["id"]})])
            elif record["state"] == "taken":
                actions = data.draw(st.sampled_from((["repaired"], ["tool_replaced"])))
                close = {"work_order": record["id"], "actions": actions}
                self._run([("max", "maintenance", "close", close)])
        for machine in all_machines(self.chain.state):
            if machine.status in (MachineStatus.DOWN, MachineStatus.DEGRADED):
                self._run([("max", "machines", "up", {"machine": machine.id})])

    @rule(machine=machine_ids, count=st.integers(1, 3))
    def report_readings(self, machine: str, count: int) -> None:
        self._run([("mia", "machines", "report", {"machine": machine, "count": count})])

    @rule(
        data=st.data(),
        oracles=st.lists(st.sampled_from(ORACLES), min_size=2, max_size=4, unique=True),
        one_block=st.booleans(),
    )
    def oracles_report(self, data: st.DataObject, oracles: list[str], one_block: bool) -> None:
        reported = [(m, seq) for m in MACHINES for seq in range(1, self.last_seq[m] + 1)]
        if not reported:
            return
        # Mostly readings still undecided, as the validators report readings as they commit;
        # sometimes any (a late report).
        undecided = [(m, seq) for m, seq in reported if not self._final(m, seq)][-4:]
        late = data.draw(st.lists(st.sampled_from(reported), max_size=1))
        targets = undecided + late
        batch: list[Call] = []
        for who in oracles:
            # The validators run one model: they mostly agree, with an odd one out. Each
            # reports a reading once (a second report fails the whole transaction).
            reports = [
                {"machine": m, "seq": seq, "probability_bp": self._risk(data, m, seq)}
                for m, seq in dict.fromkeys(targets)
                if data.draw(st.integers(0, 9)) == 0 or not self._reported(who, m, seq)
            ]
            if not reports:
                continue
            batch.append((who, "oracle", "report", {"model_hash": MODEL, "reports": reports}))
        if not batch:
            return
        if one_block:
            self._run(batch)
        else:
            for call in batch:
                self._run([call])

    def _final(self, machine: str, seq: int) -> bool:
        record = read_map(self.chain.state, prediction_key(machine, seq))
        return record is not None and bool(record["final"])

    def _reported(self, who: str, machine: str, seq: int) -> bool:
        record = read_map(self.chain.state, prediction_key(machine, seq))
        return record is not None and who in record["reports"]

    def _risk(self, data: st.DataObject, machine: str, seq: int) -> int:
        if (machine, seq) not in self.risk_bp:
            self.risk_bp[(machine, seq)] = data.draw(probabilities)
        if data.draw(st.integers(0, 4)) == 0:
            return data.draw(st.integers(0, 10_000))
        return self.risk_bp[(machine, seq)]

    @invariant()
    def units_are_conserved_and_held_exactly_by_orders(self) -> None:
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
                assert reservation["location"] == order.location
                for item, qty in reservation["lines"].items():
                    held[(item, reservation["location"])] += qty
        on_hand: Counter[str] = Counter()
        for item, location, stock in stock_records(state):
            allocated = read_allocated(state, item, location)
            assert 0 <= allocated <= stock.reserved <= stock.on_hand
            assert allocated == held[(item, location)]
            on_hand[item] += stock.on_hand
        assert +on_hand == +self.units

    @invariant()
    def queues_machines_and_work_orders_agree(self) -> None:
        state = self.chain.state
        orders = all_orders(state)
        taken = Counter(
            (w["machine"], w["id"]) for w in all_work_orders(state) if w["state"] == "taken"
        )
        for order in orders:
            assert bool(order.machine) == (order.state in ON_MACHINE), order
        for machine in all_machines(state):
            queue = self.chain.query("machines", machine.id)["queue"]
            scheduled = [
                o.id for o in orders if o.state is OrderState.SCHEDULED and o.machine == machine.id
            ]
            assert queue == scheduled
            assert len(queue) <= scheduling.QUEUE_MAX
            if queue:
                assert machine.in_service, machine
            producing = [
                o.id
                for o in orders
                if o.state is OrderState.IN_PRODUCTION and o.machine == machine.id
            ]
            assert producing == ([machine.producing] if machine.producing else [])
            mine = [wo for m, wo in taken if m == machine.id]
            if machine.status is MachineStatus.MAINTENANCE:
                assert mine == [machine.work_order], machine
            else:
                assert mine == [] and machine.work_order == "", machine
            if machine.status is MachineStatus.DEGRADED:
                assert machine.at_risk is not None, machine


@pytest.mark.parametrize("queue_max", [scheduling.QUEUE_MAX, 2])
def test_random_plant_programs_keep_the_books_straight(
    queue_max: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With room for two orders a machine, moving work away hits full queues all the time.
    monkeypatch.setattr(scheduling, "QUEUE_MAX", queue_max)
    run_state_machine_as_test(
        PlantMachine,
        settings=settings(
            max_examples=30,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
