"""The identity contract: genesis members, add/suspend/reinstate/remove, the last-admin rule."""

from __future__ import annotations

import pytest

from contracts.errors import QueryError
from contracts.identity import IdentityStatus, canonical_roles
from ledger.genesis import Role
from tests.contracts.conftest import MEMBER_ROLES


def test_genesis_registers_every_identity_active_with_its_roles(chain, genesis):
    for member in genesis.identities:
        record = chain.runtime.identity_of(chain.state, member.public_key)
        assert record is not None
        assert (record.name, record.roles, record.status) == (
            member.name,
            member.roles,
            IdentityStatus.ACTIVE,
        )
    assert chain.runtime.identity_of(chain.state, bytes(32)) is None


def test_add_registers_a_member_who_can_then_transact(chain):
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


def test_add_refuses_a_taken_name_or_key(chain):
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


def test_add_validates_roles_and_key_length(chain):
    bad_role = chain.call("root", "identity", "add", name="x", public_key=bytes(32), roles=["boss"])
    assert bad_role.error.startswith("identity.add: argument roles[0] must be one of admin, ")
    no_roles = chain.call("root", "identity", "add", name="x", public_key=bytes(32), roles=[])
    assert "got 0 items" in no_roles.error
    short_key = chain.call(
        "root", "identity", "add", name="x", public_key=bytes(31), roles=["admin"]
    )
    assert short_key.error == (
        "identity.add: argument public_key must be exactly 32 bytes, got 31 bytes"
    )


def test_only_admins_manage_identities(chain):
    receipt = chain.call("pat", "identity", "suspend", name="sam")
    assert receipt.error == "identity.suspend needs role admin; sender pat has planner"


def test_suspend_and_reinstate_toggle_whether_a_member_may_transact(chain):
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


def test_unknown_names_fail_clearly(chain):
    for action in ("suspend", "reinstate", "remove"):
        assert chain.call("root", "identity", action, name="ghost").error == (
            "no identity named 'ghost'"
        )


def test_the_last_active_admin_cannot_be_suspended_or_removed(chain):
    assert chain.call("root", "identity", "suspend", name="root").error == (
        "cannot suspend root: it is the last active admin"
    )
    assert chain.call("root", "identity", "remove", name="root").error == (
        "cannot remove root: it is the last active admin"
    )


def test_an_admin_can_step_down_once_another_admin_is_active(chain):
    deputy = chain.keys("deputy").public_key
    assert chain.call(
        "root", "identity", "add", name="deputy", public_key=deputy, roles=["admin"]
    ).ok
    assert chain.call("root", "identity", "suspend", name="deputy").ok
    # A suspended admin does not count: root is still the last active one.
    assert not chain.call("root", "identity", "remove", name="root").ok
    assert chain.call("root", "identity", "reinstate", name="deputy").ok
    assert chain.call("root", "identity", "remove", name="root").ok
    assert chain.call(
        "root", "inventory", "receive", item="a", location="b", qty=1
    ).error.startswith("unknown sender ")


def test_removed_member_re_added_keeps_its_nonce_so_old_txs_cannot_replay(chain):
    old = chain.tx("sam", "inventory", "receive", item="a", location="b", qty=1)
    assert chain.run(old).receipts[0].ok
    assert chain.call("root", "identity", "remove", name="sam").ok
    assert chain.query("identity").keys() == set(MEMBER_ROLES) - {"sam"}
    assert chain.call(
        "root",
        "identity",
        "add",
        name="sam",
        public_key=chain.keys("sam").public_key,
        roles=["supplier"],
    ).ok
    assert chain.run(old).receipts[0].error == "nonce 0 already used (next is 1)"


def test_query_lists_identities_by_name_with_hex_keys(chain):
    listed = chain.query("identity")
    assert list(listed) == sorted(MEMBER_ROLES)
    assert listed["sam"] == {
        "name": "sam",
        "public_key": chain.keys("sam").public_key.hex(),
        "roles": ["supplier"],
        "status": "active",
    }
    assert chain.query("identity", "pat")["roles"] == ["planner"]


def test_query_of_unknown_name_or_path_raises_query_error(chain):
    with pytest.raises(QueryError, match="no identity named 'ghost'"):
        chain.query("identity", "ghost")
    with pytest.raises(QueryError, match=r"take \[\] or \[name\]"):
        chain.query("identity", "a", "b")


def test_canonical_roles_dedupes_in_declaration_order():
    assert canonical_roles(["machine", Role.ADMIN, "machine"]) == (Role.ADMIN, Role.MACHINE)
