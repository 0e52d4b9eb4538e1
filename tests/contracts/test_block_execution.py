"""Runtime.execute_block: admission gates, nonces, roles, args, failure isolation, determinism."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from contracts import accounts
from contracts.contract import Call, Contract, method
from contracts.errors import ExecutionError, QueryError
from contracts.identity import IdentityContract
from contracts.inventory import InventoryContract, stock_key
from contracts.receipt import Receipt
from contracts.runtime import Runtime
from contracts.schema import Int, Str
from contracts.state import DIGEST_DOMAIN, GENESIS_PREV_DIGEST, next_digest
from ledger.encoding import encode
from ledger.errors import EncodingError
from ledger.genesis import Genesis, Role
from ledger.hashing import sha256
from ledger.tx import Transaction
from tests.contracts.conftest import Chain


def receive(chain: Chain, who: str = "sam", **overrides: Any) -> Transaction:
    args = {"item": "steel", "location": "main", "qty": 10, **overrides}
    return chain.tx(who, "inventory", "receive", **args)


# Nonces


def test_new_account_starts_at_nonce_zero(chain: Chain) -> None:
    assert chain.nonce("sam") == 0
    assert chain.runtime.account_nonce(chain.state, bytes(32)) == 0


def test_successful_tx_consumes_its_nonce(chain: Chain) -> None:
    assert chain.run(receive(chain)).receipts[0].ok
    assert chain.nonce("sam") == 1


def test_used_nonce_fails_and_is_not_consumed(chain: Chain) -> None:
    chain.run(receive(chain), receive(chain))
    result = chain.run(receive(chain, nonce=0))
    receipt = result.receipts[0]
    assert not receipt.ok
    assert receipt.error == "nonce 0 already used (next is 2)"
    assert result.writes == {}
    assert chain.nonce("sam") == 2


def test_nonce_ahead_fails_and_is_not_consumed(chain: Chain) -> None:
    result = chain.run(receive(chain, nonce=9))
    assert result.receipts[0].error == "nonce 9 is ahead of the next nonce 0"
    assert result.writes == {}
    assert chain.nonce("sam") == 0


def test_consecutive_nonces_in_one_block_all_run(chain: Chain) -> None:
    result = chain.run(receive(chain), receive(chain), receive(chain))
    assert [receipt.ok for receipt in result.receipts] == [True, True, True]
    assert chain.nonce("sam") == 3
    assert chain.query("inventory", "steel", "main")["on_hand"] == 30


def test_replayed_tx_in_the_same_block_fails_on_its_nonce(chain: Chain) -> None:
    tx = receive(chain)
    result = chain.run(tx, tx)
    assert result.receipts[0].ok
    assert result.receipts[1].error == "nonce 0 already used (next is 1)"
    assert chain.query("inventory", "steel", "main")["on_hand"] == 10


def test_nonce_gap_inside_a_block_fails_only_the_early_tx(chain: Chain) -> None:
    result = chain.run(receive(chain, nonce=1), receive(chain, nonce=0))
    assert result.receipts[0].error == "nonce 1 is ahead of the next nonce 0"
    assert result.receipts[1].ok


# Senders and chain


def test_unknown_sender_fails_and_writes_nothing(chain: Chain) -> None:
    result = chain.run(receive(chain, who="mallory"))
    receipt = result.receipts[0]
    assert not receipt.ok
    assert receipt.error is not None
    assert receipt.error.startswith("unknown sender ")
    assert chain.keys("mallory").public_key.hex() in receipt.error
    assert result.writes == {}


def test_suspended_identity_fails_and_keeps_its_nonce(chain: Chain) -> None:
    assert chain.call("root", "identity", "suspend", name="sam").ok
    result = chain.run(receive(chain))
    assert result.receipts[0].error == "identity sam is suspended"
    assert result.writes == {}
    assert chain.nonce("sam") == 0


def test_tx_for_another_chain_fails_and_writes_nothing(chain: Chain) -> None:
    result = chain.run(receive(chain, chain_id="other-chain"))
    assert result.receipts[0].error == (
        "transaction is for chain 'other-chain', this chain is 'mill-test'"
    )
    assert result.writes == {}


# Routing and roles


def test_unknown_contract_fails_naming_the_known_ones_and_consumes_nonce(chain: Chain) -> None:
    receipt = chain.call("sam", "warehouse", "receive")
    assert receipt.error == (
        "unknown contract 'warehouse'; known contracts: "
        "catalog, identity, inventory, machines, maintenance, oracle, orders"
    )
    assert chain.nonce("sam") == 1


def test_unknown_method_fails_naming_the_known_ones(chain: Chain) -> None:
    receipt = chain.call("sam", "inventory", "steal", item="steel")
    assert receipt.error == (
        "contract inventory has no method 'steal'; "
        "its methods: consume, deliver, receive, release, reserve, set_reorder_point, transfer"
    )


def test_role_denial_names_method_needed_roles_and_sender_roles(chain: Chain) -> None:
    receipt = chain.run(receive(chain, who="alice")).receipts[0]
    assert (
        receipt.error == "inventory.receive needs role supplier or admin; sender alice has customer"
    )
    assert chain.nonce("alice") == 1


def test_any_one_of_the_roles_is_enough(chain: Chain) -> None:
    assert chain.run(receive(chain, who="root")).receipts[0].ok


# Arguments


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (
            {"item": "steel", "location": "main"},
            "inventory.receive: missing argument qty (an integer from 1 to 1000000000000)",
        ),
        (
            {"item": "steel", "location": "main", "qty": 1, "colour": "red"},
            "inventory.receive: unexpected argument colour; it takes item, location, qty",
        ),
        (
            {"item": "steel", "location": "main", "qty": "10"},
            "inventory.receive: argument qty must be an integer from 1 to 1000000000000, "
            "got a string",
        ),
        (
            {"item": "steel", "location": "main", "qty": True},
            "inventory.receive: argument qty must be an integer from 1 to 1000000000000, "
            "got a bool (true)",
        ),
        (
            {"item": "steel", "location": "main", "qty": -5},
            "inventory.receive: argument qty must be at least 1, got -5",
        ),
        (
            {"item": "steel", "location": "main", "qty": 10**13},
            "inventory.receive: argument qty must be at most 1000000000000, got 10000000000000",
        ),
        (
            {"item": "steel/x", "location": "main", "qty": 1},
            "inventory.receive: argument item must be a string of 1 to 64 characters "
            "matching [A-Za-z0-9_-][A-Za-z0-9_.-]*, got 'steel/x'",
        ),
        (
            {"item": "", "location": "main", "qty": 1},
            "inventory.receive: argument item must be a string of 1 to 64 characters "
            "matching [A-Za-z0-9_-][A-Za-z0-9_.-]*, got 0 characters",
        ),
    ],
    ids=["missing", "extra", "wrong-type", "bool-as-int", "negative", "too-big", "slash", "empty"],
)
def test_bad_arguments_fail_with_a_message_naming_the_argument(
    chain: Chain, args: dict[str, Any], error: str
) -> None:
    result = chain.run(chain.tx("sam", "inventory", "receive", **args))
    assert result.receipts[0].error == error
    # Only the nonce moved.
    assert result.writes.keys() == {accounts.nonce_key(chain.keys("sam").public_key)}


# Failure isolation


class Scratch(Contract):
    """A test contract that writes, emits and then fails or misbehaves on request."""

    name = "scratch"

    @method(roles=(Role.CUSTOMER,), args={"key": Str(max_len=16), "mode": Str(default="ok")})
    def write(self, call: Call, *, key: str, mode: str) -> Any:
        call.state.put(b"scratch/" + key.encode(), b"\xc0")
        call.emit("write", f"key:{key}", {"key": key})
        if mode == "fail":
            raise ExecutionError(f"asked to fail after writing {key}")
        if mode == "bug":
            raise KeyError(key)
        if mode == "float":
            return 1.5
        return (key, call.block.height, call.sender_name)

    @method(roles=(Role.CUSTOMER,), args={"n": Int(min=0, max=5000)})
    def spam(self, call: Call, *, n: int) -> int:
        for index in range(n):
            call.emit("spam", "spam", {"index": index})
        return n

    @method(roles=(Role.CUSTOMER,), args={"n": Int(min=0, max=3)})
    def count(self, call: Call, *, n: int) -> int:
        return sum(1 for _ in call.state.scan(b"scratch/")) + n


@pytest.fixture
def scratch_chain(make_chain: Callable[..., Chain]) -> Chain:
    return make_chain(Runtime([IdentityContract(), InventoryContract(), Scratch()]))


def test_failing_method_discards_its_writes_and_events_but_consumes_nonce(
    scratch_chain: Chain,
) -> None:
    chain = scratch_chain
    result = chain.run(chain.tx("alice", "scratch", "write", key="a", mode="fail"))
    receipt = result.receipts[0]
    assert receipt == Receipt.failure(
        tx_hash=receipt.tx_hash, height=1, index=0, error="asked to fail after writing a"
    )
    assert result.writes.keys() == {accounts.nonce_key(chain.keys("alice").public_key)}
    assert chain.nonce("alice") == 1


def test_a_failure_does_not_undo_earlier_txs_of_the_block(scratch_chain: Chain) -> None:
    chain = scratch_chain
    result = chain.run(
        chain.tx("alice", "scratch", "write", key="a"),
        chain.tx("alice", "scratch", "write", key="b", mode="fail"),
        chain.tx("alice", "scratch", "count", n=0),
    )
    assert [r.ok for r in result.receipts] == [True, False, True]
    assert b"scratch/a" in result.writes
    assert b"scratch/b" not in result.writes
    assert result.receipts[2].result == 1  # the later tx sees the earlier one's write


def test_successful_receipt_carries_canonical_result_and_events(scratch_chain: Chain) -> None:
    chain = scratch_chain
    receipt = chain.call("alice", "scratch", "write", key="a")
    assert receipt.ok and receipt.error is None
    assert receipt.result == ["a", 1, "alice"]  # the tuple came back in canonical form
    assert [(e.contract, e.kind, e.subject, e.data) for e in receipt.events] == [
        ("scratch", "write", "key:a", {"key": "a"})
    ]


def test_too_many_events_fail_the_transaction(scratch_chain: Chain) -> None:
    chain = scratch_chain
    assert chain.call("alice", "scratch", "spam", n=1024).ok
    receipt = chain.call("alice", "scratch", "spam", n=1025)
    assert receipt.error == "a transaction may emit at most 1024 events"


def test_unexpected_exception_in_a_contract_propagates(scratch_chain: Chain) -> None:
    chain = scratch_chain
    with pytest.raises(KeyError):
        chain.execute(chain.tx("alice", "scratch", "write", key="a", mode="bug"))


def test_result_that_cannot_be_encoded_is_a_bug_that_propagates(scratch_chain: Chain) -> None:
    chain = scratch_chain
    with pytest.raises(EncodingError):
        chain.execute(chain.tx("alice", "scratch", "write", key="a", mode="float"))


def test_execute_block_leaves_the_given_state_untouched(chain: Chain) -> None:
    before = chain.state.items()
    chain.execute(receive(chain), receive(chain))
    assert chain.state.items() == before


def test_receipts_record_height_and_position(chain: Chain) -> None:
    result = chain.run(receive(chain), receive(chain, who="alice"))
    assert [(r.height, r.index) for r in result.receipts] == [(1, 0), (1, 1)]
    assert len({r.tx_hash for r in result.receipts}) == 2


# Determinism and the digest


def _block(chain: Chain) -> list[Transaction]:
    return [
        chain.tx("sam", "inventory", "receive", item="steel", location="main", qty=50),
        chain.tx("pat", "inventory", "reserve", item="steel", location="main", qty=20),
        chain.tx("alice", "inventory", "receive", item="steel", location="main", qty=1),
        chain.tx("pat", "inventory", "transfer", item="steel", location="main", to="b", qty=5),
        chain.tx("mia", "inventory", "consume", item="steel", location="main", qty=7),
    ]


def test_same_block_on_two_nodes_gives_same_digest_writes_and_receipts(
    make_chain: Callable[..., Chain],
) -> None:
    one, two = make_chain(), make_chain()
    first, second = one.run(*_block(one)), two.run(*_block(two))
    assert first.state_digest == second.state_digest
    assert first.receipts == second.receipts
    assert first.writes == second.writes
    assert one.state.items() == two.state.items()


def test_executing_a_block_twice_gives_the_same_result(chain: Chain) -> None:
    txs = _block(chain)
    assert chain.execute(*txs) == chain.execute(*txs)


def test_digest_chains_from_the_previous_digest(chain: Chain) -> None:
    txs = _block(chain)
    result = chain.execute(*txs)
    assert result.state_digest == next_digest(chain.digest, 1, result.writes, result.receipts)
    other = chain.runtime.execute_block(chain.state, chain.context(), txs, bytes(32))
    assert other.state_digest != result.state_digest


def test_digest_hashes_the_canonical_encoding_of_its_inputs(chain: Chain) -> None:
    receipts = chain.execute(receive(chain), receive(chain, qty=2)).receipts
    writes: dict[bytes, bytes | None] = {b"b": b"2", b"a": None}
    whole = encode(
        [
            DIGEST_DOMAIN,
            GENESIS_PREV_DIGEST,
            7,
            [[b"a", None], [b"b", b"2"]],
            [receipt.to_map() for receipt in receipts],
        ]
    )
    assert next_digest(GENESIS_PREV_DIGEST, 7, writes, receipts) == sha256(whole)
    assert all(receipt.encoded() == encode(receipt.to_map()) for receipt in receipts)


def test_a_sender_is_read_afresh_after_a_write_to_its_record(chain: Chain) -> None:
    sender = chain.keys("sam").public_key
    before = accounts.next_nonce(chain.state, sender)
    chain.run(receive(chain))
    assert accounts.next_nonce(chain.state, sender) == before + 1
    active = chain.runtime.identity_of(chain.state, sender)
    assert active is not None
    assert active.active
    chain.run(chain.tx("root", "identity", "suspend", name="sam"))
    suspended = chain.runtime.identity_of(chain.state, sender)
    assert suspended is not None
    assert not suspended.active


def test_digest_changes_with_any_write_or_receipt(chain: Chain) -> None:
    receipt = chain.execute(receive(chain)).receipts[0]
    writes: dict[bytes, bytes | None] = {b"a": b"1", b"b": None}
    base = next_digest(GENESIS_PREV_DIGEST, 1, writes, [receipt])
    variants = [
        next_digest(GENESIS_PREV_DIGEST, 1, {**writes, b"a": b"2"}, [receipt]),
        next_digest(GENESIS_PREV_DIGEST, 1, {**writes, b"c": b"1"}, [receipt]),
        next_digest(GENESIS_PREV_DIGEST, 1, {**writes, b"b": b""}, [receipt]),
        next_digest(GENESIS_PREV_DIGEST, 1, {b"a": b"1"}, [receipt]),
        next_digest(GENESIS_PREV_DIGEST, 1, writes, []),
        next_digest(GENESIS_PREV_DIGEST, 2, writes, [receipt]),
        next_digest(b"\x01" * 32, 1, writes, [receipt]),
    ]
    assert len({base, *variants}) == len(variants) + 1


def test_digest_does_not_depend_on_the_order_writes_were_made(chain: Chain) -> None:
    forward = {b"a": b"1", b"b": b"2", b"c": None}
    backward = dict(reversed(list(forward.items())))
    assert next_digest(bytes(32), 3, forward, []) == next_digest(bytes(32), 3, backward, [])


def test_genesis_digest_is_stable_and_depends_on_identities(genesis: Genesis) -> None:
    runtime = Runtime.default()
    assert runtime.genesis_digest(genesis) == Runtime.default().genesis_digest(genesis)
    assert runtime.genesis_digest(genesis) == next_digest(
        GENESIS_PREV_DIGEST, 0, runtime.genesis_writes(genesis), []
    )
    fewer = replace(genesis, identities=genesis.identities[:-1])
    assert runtime.genesis_digest(fewer) != runtime.genesis_digest(genesis)


# Admission pre-check, queries, describe


def test_admission_accepts_future_nonces_but_not_used_ones(chain: Chain) -> None:
    chain.run(receive(chain))
    runtime, state = chain.runtime, chain.state
    assert runtime.admission_error(state, "mill-test", receive(chain, nonce=5)) is None
    assert runtime.admission_error(state, "mill-test", receive(chain, nonce=0)) == (
        "nonce 0 already used (next is 1)"
    )
    assert runtime.admission_error(state, "mill-test", receive(chain, who="alice")) == (
        "inventory.receive needs role supplier or admin; sender alice has customer"
    )
    missing_qty = runtime.admission_error(
        state, "mill-test", chain.tx("sam", "inventory", "receive", item="a", location="b")
    )
    assert missing_qty is not None
    assert "missing argument qty" in missing_qty


def test_query_of_unknown_contract_names_the_known_ones(chain: Chain) -> None:
    with pytest.raises(QueryError, match="unknown contract 'payroll'; known contracts: catalog"):
        chain.query("payroll")


def test_describe_lists_contracts_methods_roles_and_args_as_json(chain: Chain) -> None:
    described = chain.runtime.describe()
    json.dumps(described)
    receive_spec = described["contracts"]["inventory"]["methods"]["receive"]
    assert receive_spec["roles"] == ["supplier", "admin"]
    assert receive_spec["args"]["qty"] == {
        "type": "int",
        "min": 1,
        "max": 10**12,
        "required": True,
    }
    assert receive_spec["doc"]
    assert set(described["contracts"]["identity"]["methods"]) == {
        "add",
        "suspend",
        "reinstate",
        "remove",
    }


def test_stock_keys_are_in_the_inventory_namespace() -> None:
    assert stock_key("steel", "main") == b"inventory/stock/steel/main"
