"""The identity contract: genesis members, add/suspend/reinstate/remove, the last-admin rule,
and removed names retired for good."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from contracts.errors import QueryError, StateError
from contracts.identity import IdentityStatus, canonical_roles, removed_key
from contracts.receipt import Receipt
from ledger.encoding import decode, encode
from ledger.genesis import Genesis, Role
from tests.contracts.conftest import MEMBER_ROLES, Chain, place, state_except_nonces
from tests.contracts.test_machines_contract import reading


def test_genesis_registers_every_identity_active_with_its_roles(
    chain: Chain, genesis: Genesis
) -> None:
    for member in genesis.identities:
        record = chain.runtime.identity_of(chain.state, member.public_key)
        assert record is not None
        assert (record.name, record.roles, record.status) == (
            member.name,
            member.roles,
            IdentityStatus.ACTIVE,
        )
    assert chain.runtime.identity_of(chain.state, bytes(32)) is None


def test_add_registers_a_member_who_can_then_transact(chain: Chain) -> None:
    newbie = chain.keys("nina").public_key
    receipt = chain.call(
        "root", "identity", "add", name="nina", public_key=newbie, roles=["supplier", "planner"]
    )
    assert receipt.ok, receipt.error
    assert receipt.events[0].kind == "add"
    assert receipt.events[0].subject == "identity:nina"
    record = chain.runtime.identity_of(chain.state, newbie)
    assert record is not None
    assert record.roles == (Role.PLANNER, Role.SUPPLIER)  # stored in Role's order
    assert chain.call("nina", "inventory", "receive", item="a", location="b", qty=1).ok


def test_add_refuses_a_taken_name_or_key(chain: Chain) -> None:
    taken_name = chain.call(
        "root", "identity", "add", name="sam", public_key=bytes(32), roles=["admin"]
    )
    assert taken_name.error == "an identity named 'sam' already exists"
    taken_key = chain.call(
        "root",
        "identity",
        "add",
        name="sam2",
        public_key=chain.keys("sam").public_key,
        roles=["admin"],
    )
    assert (
        taken_key.error == f"public key {chain.keys('sam').public_key.hex()} already belongs to sam"
    )


def test_add_validates_roles_and_key_length(chain: Chain) -> None:
    bad_role = chain.call("root", "identity", "add", name="x", public_key=bytes(32), roles=["boss"])
    assert bad_role.error is not None
    assert bad_role.error.startswith("identity.add: argument roles[0] must be one of admin, ")
    no_roles = chain.call("root", "identity", "add", name="x", public_key=bytes(32), roles=[])
    assert no_roles.error is not None
    assert "got 0 items" in no_roles.error
    short_key = chain.call(
        "root", "identity", "add", name="x", public_key=bytes(31), roles=["admin"]
    )
    assert short_key.error == (
        "identity.add: argument public_key must be exactly 32 bytes, got 31 bytes"
    )


def test_only_admins_manage_identities(chain: Chain) -> None:
    receipt = chain.call("pat", "identity", "suspend", name="sam")
    assert receipt.error == "identity.suspend needs role admin; sender pat has planner"


def test_suspend_and_reinstate_toggle_whether_a_member_may_transact(chain: Chain) -> None:
    assert chain.call("root", "identity", "suspend", name="sam").ok
    assert chain.query("identity", "sam")["status"] == "suspended"
    blocked = chain.call("sam", "inventory", "receive", item="a", location="b", qty=1)
    assert blocked.error == "identity sam is suspended"
    assert chain.call("root", "identity", "suspend", name="sam").error == (
        "identity sam is already suspended"
    )
    assert chain.call("root", "identity", "reinstate", name="sam").ok
    assert chain.call("sam", "inventory", "receive", item="a", location="b", qty=1).ok
    assert chain.call("root", "identity", "reinstate", name="sam").error == (
        "identity sam is not suspended"
    )


def test_unknown_names_fail_clearly(chain: Chain) -> None:
    for action in ("suspend", "reinstate", "remove"):
        assert chain.call("root", "identity", action, name="ghost").error == (
            "no identity named 'ghost'"
        )


def test_the_last_active_admin_cannot_be_suspended_or_removed(chain: Chain) -> None:
    assert chain.call("root", "identity", "suspend", name="root").error == (
        "cannot suspend root: it is the last active admin"
    )
    assert chain.call("root", "identity", "remove", name="root").error == (
        "cannot remove root: it is the last active admin"
    )


def test_an_admin_can_step_down_once_another_admin_is_active(chain: Chain) -> None:
    deputy = chain.keys("deputy").public_key
    assert chain.call(
        "root", "identity", "add", name="deputy", public_key=deputy, roles=["admin"]
    ).ok
    assert chain.call("root", "identity", "suspend", name="deputy").ok
    # A suspended admin does not count: root is still the last active one.
    assert not chain.call("root", "identity", "remove", name="root").ok
    assert chain.call("root", "identity", "reinstate", name="deputy").ok
    assert chain.call("root", "identity", "remove", name="root").ok
    unknown = chain.call("root", "inventory", "receive", item="a", location="b", qty=1)
    assert unknown.error is not None
    assert unknown.error.startswith("unknown sender ")


def test_removed_key_re_added_under_a_new_name_keeps_its_nonce_so_old_txs_cannot_replay(
    chain: Chain,
) -> None:
    old = chain.tx("sam", "inventory", "receive", item="a", location="b", qty=1)
    assert chain.run(old).receipts[0].ok
    assert chain.call("root", "identity", "remove", name="sam").ok
    assert chain.query("identity").keys() == set(MEMBER_ROLES) - {"sam"}
    assert chain.call(
        "root",
        "identity",
        "add",
        name="sam2",
        public_key=chain.keys("sam").public_key,
        roles=["supplier"],
    ).ok
    assert chain.run(old).receipts[0].error == "nonce 0 already used (next is 1)"


def test_query_lists_identities_by_name_with_hex_keys(chain: Chain) -> None:
    listed = chain.query("identity")
    assert list(listed) == sorted(MEMBER_ROLES)
    assert listed["sam"] == {
        "name": "sam",
        "public_key": chain.keys("sam").public_key.hex(),
        "roles": ["supplier"],
        "status": "active",
    }
    assert chain.query("identity", "pat")["roles"] == ["planner"]


def test_query_of_unknown_name_or_path_raises_query_error(chain: Chain) -> None:
    with pytest.raises(QueryError, match="no identity named 'ghost'"):
        chain.query("identity", "ghost")
    with pytest.raises(QueryError, match=r"take \[\] or \[name\]"):
        chain.query("identity", "a", "b")


def test_canonical_roles_dedupes_in_declaration_order() -> None:
    assert canonical_roles(["machine", Role.ADMIN, "machine"]) == (Role.ADMIN, Role.MACHINE)


# A removed name is retired: orders, machines and work orders name their members, so a name
# given to a new key would hand it everything the removed member had.


def _order_placed_by_alice(chain: Chain) -> Callable[[str], Receipt]:
    assert place(chain, "alice").ok
    return lambda who: chain.call(who, "orders", "cancel", order="ord-1")


def _work_order_taken_by_max(chain: Chain) -> Callable[[str], Receipt]:
    assert chain.call("max", "maintenance", "open", machine="m1", reason="noisy").ok
    assert chain.call("max", "maintenance", "take", work_order="wo-1").ok
    return lambda who: chain.call(
        who, "maintenance", "close", work_order="wo-1", actions=["inspected"]
    )


def _machine_operated_by_mia(chain: Chain) -> Callable[[str], Receipt]:
    registered = chain.call(
        "root",
        "machines",
        "register",
        machine="m9",
        type="cell",
        capabilities=["x"],
        operator="mia",
    )
    assert registered.ok, registered.error
    return lambda who: chain.call(who, "machines", "report", machine="m9", readings=[reading(1)])


@pytest.mark.parametrize(
    ("name", "roles", "holding"),
    [
        ("alice", ["customer"], _order_placed_by_alice),
        ("max", ["maintainer"], _work_order_taken_by_max),
        ("mia", ["machine"], _machine_operated_by_mia),
    ],
)
def test_a_removed_name_is_refused_to_a_new_key_which_inherits_nothing(
    factory: Chain,
    name: str,
    roles: list[str],
    holding: Callable[[Chain], Callable[[str], Receipt]],
) -> None:
    act_on_holding = holding(factory)
    removal = factory.call("root", "identity", "remove", name=name)
    assert removal.ok, removal.error
    before = state_except_nonces(factory)
    added = factory.call(
        "root",
        "identity",
        "add",
        name=name,
        public_key=factory.keys("impostor").public_key,
        roles=roles,
    )
    assert added.error == (
        f"name '{name}' is retired: the identity of that name was removed at height "
        f"{removal.height}, and a removed name is never given to another member, so nobody "
        "inherits what it owned; choose another name"
    )
    assert state_except_nonces(factory) == before
    # The new key is no member, so it cannot act on what the removed member held.
    acted = act_on_holding("impostor")
    assert acted.error is not None and acted.error.startswith("unknown sender ")


def test_a_removed_members_own_key_does_not_take_its_name_back(chain: Chain) -> None:
    assert chain.call("root", "identity", "remove", name="sam").ok
    added = chain.call(
        "root",
        "identity",
        "add",
        name="sam",
        public_key=chain.keys("sam").public_key,
        roles=["supplier"],
    )
    assert added.error is not None and added.error.startswith("name 'sam' is retired: ")


def test_a_removed_key_under_a_new_name_leaves_the_old_names_orders_alone(factory: Chain) -> None:
    assert place(factory, "alice").ok
    assert factory.call("root", "identity", "remove", name="alice").ok
    key = factory.keys("alice").public_key
    assert factory.call(
        "root", "identity", "add", name="alice2", public_key=key, roles=["customer"]
    ).ok
    receipt = factory.call("alice", "orders", "cancel", order="ord-1")  # signed as alice2 now
    assert receipt.error == "order ord-1 belongs to alice; alice2 may not cancel it"


def test_query_of_a_removed_name_says_it_was_removed_and_the_list_leaves_it_out(
    chain: Chain,
) -> None:
    removal = chain.call("root", "identity", "remove", name="sam")
    assert removal.ok
    assert chain.query("identity", "sam") == {
        "name": "sam",
        "public_key": chain.keys("sam").public_key.hex(),
        "roles": ["supplier"],
        "status": "removed",
        "removed_height": removal.height,
    }
    assert "sam" not in chain.query("identity")


def test_managing_a_removed_name_says_it_was_removed(chain: Chain) -> None:
    removal = chain.call("root", "identity", "remove", name="sam")
    for action in ("suspend", "reinstate", "remove"):
        assert chain.call("root", "identity", action, name="sam").error == (
            f"identity 'sam' was removed at height {removal.height}; "
            "a removed name is retired for good"
        )


def test_the_removal_record_is_canonical_state_written_with_the_removal(chain: Chain) -> None:
    before = chain.digest
    result = chain.run(chain.tx("root", "identity", "remove", name="sam"))
    assert result.receipts[0].ok
    expected = {
        "name": "sam",
        "public_key": chain.keys("sam").public_key,
        "roles": ["supplier"],
        "removed_height": 1,
    }
    assert result.writes[removed_key("sam")] == encode(expected)
    stored = chain.state.get(removed_key("sam"))
    assert stored is not None
    assert decode(stored) == expected
    # Every node hashes the same removal into the same digest.
    twin = Chain(chain.genesis)
    assert twin.digest == before
    assert twin.run(twin.tx("root", "identity", "remove", name="sam")).state_digest == (
        chain.digest
    )


def test_a_malformed_removal_record_is_a_state_error(chain: Chain) -> None:
    chain.state.apply({removed_key("gone"): encode({"name": "gone", "removed_height": "soon"})})
    with pytest.raises(StateError, match=r"removed identity at .* is malformed"):
        chain.query("identity", "gone")
