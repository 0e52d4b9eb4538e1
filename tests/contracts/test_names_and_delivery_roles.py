"""Names an identity or a key could never hold are refused by the schema, and only a customer
or an admin confirms an order's delivery (a planner who is also a customer, not for others)."""

from __future__ import annotations

from ledger.genesis import Role
from tests.contracts.conftest import (
    MEMBER_ROLES,
    Chain,
    build_factory,
    make_genesis,
    place,
    state_except_nonces,
)


def test_schedule_refuses_a_machine_name_outside_the_name_pattern_by_schema(factory: Chain) -> None:
    # Every other machine argument is 1-64 of NAME_PATTERN; schedule's takes any string, so a
    # name with a key separator reaches machine_key() and fails only as "not found".
    place(factory)
    assert factory.call("pat", "orders", "accept", order="ord-1").ok
    receipt = factory.call("pat", "orders", "schedule", order="ord-1", machine="m1/x")
    assert not receipt.ok
    assert receipt.error is not None and "argument machine must be" in receipt.error, receipt.error


def test_register_refuses_an_operator_no_identity_can_be_named(factory: Chain) -> None:
    # Identity names match NAME_PATTERN, so an operator "mia/x" can never act for the machine.
    before = state_except_nonces(factory)
    receipt = factory.call(
        "root",
        "machines",
        "register",
        machine="m9",
        type="cell",
        capabilities=["bend"],
        operator="mia/x",
    )
    assert not receipt.ok, receipt.result
    assert state_except_nonces(factory) == before


def test_a_planner_who_is_also_a_customer_cannot_confirm_another_customers_delivery() -> None:
    # orders.deliver: "customer (its own)"; an admin may stand in, a planner is not named.
    chain = Chain(make_genesis({**MEMBER_ROLES, "cpl": (Role.CUSTOMER, Role.PLANNER)}))
    build_factory(chain)
    assert place(chain).ok  # alice's ord-1
    for who, method in (
        ("pat", "accept"),
        ("pat", "schedule"),
        ("mia", "start"),
        ("mia", "complete"),
        ("aud", "qc_pass"),
        ("pat", "ship"),
    ):
        assert chain.call(who, "orders", method, order="ord-1").ok, method
    receipt = chain.call("cpl", "orders", "deliver", order="ord-1")
    assert not receipt.ok
    assert chain.query("orders", "ord-1")["state"] == "shipped"
