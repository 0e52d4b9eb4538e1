"""Signed transactions: creation, the wire form, verification and shape checks."""

from __future__ import annotations

import contextlib
import json
from dataclasses import replace
from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.crypto import Domain, KeyPair
from ledger.encoding import decode, encode
from ledger.errors import EncodingError, LedgerError, SignatureError, ValidationError
from ledger.hashing import sha256
from ledger.tx import NAME_LENGTH_MAX, NONCE_MAX, Transaction, jsonable

CHAIN = "test-chain"
KEYS = KeyPair.from_seed(bytes(range(32)))
OTHER_KEYS = KeyPair.from_seed(bytes(range(1, 33)))


def make_tx(nonce: int = 0, **changes: Any) -> Transaction:
    arguments: dict[str, Any] = {
        "chain_id": CHAIN,
        "nonce": nonce,
        "contract": "orders",
        "method": "place",
        "args": {"sku": "bolt-m6", "quantity": 40, "note": b"\x00\x01", "tags": ["a", "b"]},
    }
    arguments.update(changes)
    return Transaction.create(KEYS, **arguments)


def body_fields(**changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "chain_id": CHAIN,
        "sender": KEYS.public_key,
        "nonce": 1,
        "contract": "orders",
        "method": "place",
        "args": {"quantity": 3},
    }
    fields.update(changes)
    return fields


def wire_of(body: bytes, signature: bytes | None = None) -> bytes:
    if signature is None:
        signature = KEYS.sign(Domain.TRANSACTION, CHAIN, body)
    return encode({"body": body, "signature": signature})


# --- round trip and verification ----------------------------------------------------------------


def test_created_transaction_verifies() -> None:
    make_tx().verify()


def test_from_wire_round_trips() -> None:
    tx = make_tx(nonce=7)
    again = Transaction.from_wire(tx.to_wire())
    assert again == tx
    assert again.to_wire() == tx.to_wire()
    assert again.hash == tx.hash
    again.verify()


def test_created_transaction_equals_its_wire_form_when_args_hold_tuples() -> None:
    tx = make_tx(args={"pair": (1, 2), "nested": {"t": ("x",)}})
    assert tx.args == {"pair": [1, 2], "nested": {"t": ["x"]}}
    assert Transaction.from_wire(tx.to_wire()) == tx


def test_created_transaction_does_not_alias_callers_args() -> None:
    args: dict[str, Any] = {"quantity": 1}
    tx = make_tx(args=args)
    args["quantity"] = 999
    assert tx.args == {"quantity": 1}
    assert decode(tx.body)["args"] == tx.args


def test_fields_are_what_was_signed() -> None:
    tx = make_tx(nonce=3)
    assert tx.sender == KEYS.public_key
    assert decode(tx.body) == {
        "chain_id": tx.chain_id,
        "sender": tx.sender,
        "nonce": 3,
        "contract": tx.contract,
        "method": tx.method,
        "args": tx.args,
    }


def test_tampered_body_fails_verify() -> None:
    tx = make_tx()
    forged_body = encode(body_fields(nonce=tx.nonce + 1, args=tx.args))
    forged = Transaction.from_wire(wire_of(forged_body, signature=tx.signature))
    with pytest.raises(SignatureError):
        forged.verify()


def test_tampered_signature_fails_verify() -> None:
    tx = make_tx()
    signature = bytearray(tx.signature)
    signature[0] ^= 0x80
    forged = Transaction.from_wire(wire_of(tx.body, signature=bytes(signature)))
    with pytest.raises(SignatureError):
        forged.verify()


def test_signature_by_another_key_fails_verify() -> None:
    body = encode(body_fields())
    forged = Transaction.from_wire(wire_of(body, OTHER_KEYS.sign(Domain.TRANSACTION, CHAIN, body)))
    with pytest.raises(SignatureError):
        forged.verify()


def test_signature_for_another_domain_fails_verify() -> None:
    body = encode(body_fields())
    forged = Transaction.from_wire(wire_of(body, KEYS.sign(Domain.COMMIT, CHAIN, body)))
    with pytest.raises(SignatureError):
        forged.verify()


def test_transaction_for_another_chain_fails_verify() -> None:
    tx = make_tx()
    with pytest.raises(SignatureError):
        replace(tx, chain_id="other-chain").verify()


# --- hash ---------------------------------------------------------------------------------------


def test_hash_is_sha256_of_the_body() -> None:
    tx = make_tx()
    assert tx.hash == sha256(tx.body)


def test_hash_is_stable() -> None:
    assert make_tx(nonce=5).hash == make_tx(nonce=5).hash
    assert (
        make_tx(nonce=5).hash.hex() == Transaction.from_wire(make_tx(nonce=5).to_wire()).hash.hex()
    )


def test_hash_differs_per_nonce() -> None:
    hashes = {make_tx(nonce=nonce).hash for nonce in range(20)}
    assert len(hashes) == 20


def test_hash_does_not_depend_on_args_insertion_order() -> None:
    first = make_tx(args={"a": 1, "b": 2})
    second = make_tx(args={"b": 2, "a": 1})
    assert first.hash == second.hash


# --- create rejects -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"nonce": -1}, id="negative-nonce"),
        pytest.param({"nonce": NONCE_MAX + 1}, id="nonce-too-large"),
        pytest.param({"nonce": True}, id="bool-nonce"),
        pytest.param({"chain_id": 5}, id="int-chain-id"),
        pytest.param({"contract": "c" * (NAME_LENGTH_MAX + 1)}, id="long-contract"),
        pytest.param({"method": None}, id="none-method"),
        pytest.param({"args": [1, 2]}, id="list-args"),
        pytest.param({"args": {"x": 1.5}}, id="float-args"),
        pytest.param({"args": {1: "x"}}, id="int-key-args"),
        pytest.param({"args": {"x": {1, 2}}}, id="set-args"),
    ],
)
def test_create_rejects_bad_fields(changes: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        make_tx(**changes)


def test_create_accepts_the_largest_nonce() -> None:
    assert make_tx(nonce=NONCE_MAX).nonce == NONCE_MAX


# --- from_wire rejects --------------------------------------------------------------------------


@pytest.mark.parametrize("missing", sorted(body_fields()))
def test_from_wire_rejects_missing_body_field(missing: str) -> None:
    fields = body_fields()
    del fields[missing]
    with pytest.raises(ValidationError, match="missing"):
        Transaction.from_wire(wire_of(encode(fields)))


def test_from_wire_rejects_extra_body_field() -> None:
    with pytest.raises(ValidationError, match="unknown"):
        Transaction.from_wire(wire_of(encode(body_fields(fee=1))))


def test_from_wire_rejects_missing_signature() -> None:
    with pytest.raises(ValidationError, match="missing"):
        Transaction.from_wire(encode({"body": encode(body_fields())}))


def test_from_wire_rejects_extra_outer_field() -> None:
    body = encode(body_fields())
    outer = {"body": body, "signature": bytes(64), "hash": sha256(body)}
    with pytest.raises(ValidationError, match="unknown"):
        Transaction.from_wire(encode(outer))


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"nonce": True}, id="bool-nonce"),
        pytest.param({"nonce": -1}, id="negative-nonce"),
        pytest.param({"nonce": NONCE_MAX + 1}, id="nonce-above-max"),
        pytest.param({"nonce": "1"}, id="str-nonce"),
        pytest.param({"sender": KEYS.public_key.hex()}, id="str-sender"),
        pytest.param({"sender": KEYS.public_key[:31]}, id="31-byte-sender"),
        pytest.param({"sender": KEYS.public_key + b"\x00"}, id="33-byte-sender"),
        pytest.param({"chain_id": b"test-chain"}, id="bytes-chain-id"),
        pytest.param({"contract": "c" * (NAME_LENGTH_MAX + 1)}, id="long-contract"),
        pytest.param({"method": 1}, id="int-method"),
        pytest.param({"args": [1]}, id="list-args"),
        pytest.param({"args": None}, id="none-args"),
        pytest.param({"args": "x"}, id="str-args"),
    ],
)
def test_from_wire_rejects_wrong_types(changes: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Transaction.from_wire(wire_of(encode(body_fields(**changes))))


@pytest.mark.parametrize("length", [0, 63, 65])
def test_from_wire_rejects_wrong_length_signature(length: int) -> None:
    with pytest.raises(ValidationError, match="signature"):
        Transaction.from_wire(wire_of(encode(body_fields()), signature=bytes(length)))


def test_from_wire_rejects_body_that_is_not_bytes() -> None:
    with pytest.raises(ValidationError, match="body"):
        Transaction.from_wire(encode({"body": body_fields(), "signature": bytes(64)}))


@pytest.mark.parametrize("outer", [[1, 2], "tx", 5, None])
def test_from_wire_rejects_outer_value_that_is_not_a_map(outer: Any) -> None:
    with pytest.raises(ValidationError, match="map"):
        Transaction.from_wire(encode(outer))


def test_from_wire_rejects_body_that_is_not_a_map() -> None:
    with pytest.raises(ValidationError, match="map"):
        Transaction.from_wire(wire_of(encode([1, 2, 3])))


def test_from_wire_rejects_floats_in_args() -> None:
    fields = body_fields(args={"quantity": 1.5})
    body = msgpack.packb(dict(sorted(fields.items())), use_bin_type=True)
    with pytest.raises(EncodingError, match="float"):
        Transaction.from_wire(wire_of(body, signature=bytes(64)))


def test_from_wire_rejects_non_canonical_body() -> None:
    body = msgpack.packb(dict(sorted(body_fields().items(), reverse=True)), use_bin_type=True)
    with pytest.raises(EncodingError, match="canonical"):
        Transaction.from_wire(wire_of(body, signature=bytes(64)))


def test_from_wire_rejects_oversized_input() -> None:
    tx = make_tx(args={"blob": b"x" * 2000})
    data = tx.to_wire()
    assert Transaction.from_wire(data, bytes_max=len(data)) == tx
    with pytest.raises(EncodingError, match="limit"):
        Transaction.from_wire(data, bytes_max=len(data) - 1)


def test_from_wire_default_limit_rejects_huge_transaction() -> None:
    tx = make_tx(args={"blob": b"x" * (64 * 1024)})
    with pytest.raises(EncodingError, match="limit"):
        Transaction.from_wire(tx.to_wire())


@pytest.mark.parametrize("data", [b"", b"\xc1", "text"])
def test_from_wire_rejects_garbage(data: Any) -> None:
    with pytest.raises(EncodingError):
        Transaction.from_wire(data)


# --- summary ------------------------------------------------------------------------------------


def test_summary_is_json_serialisable() -> None:
    tx = make_tx(args={"blob": b"\xff\x00", "nested": [{"k": b"\x01"}, None, True, -3]})
    summary = tx.summary()
    assert json.loads(json.dumps(summary)) == summary
    assert summary["hash"] == tx.hash.hex()
    assert summary["sender"] == KEYS.public_key.hex()
    assert summary["args"] == {"blob": "ff00", "nested": [{"k": "01"}, None, True, -3]}


def test_jsonable_turns_bytes_into_hex_everywhere() -> None:
    assert jsonable({"a": [b"\x0a", (b"\x0b",)]}) == {"a": ["0a", ["0b"]]}


# --- the fast wire path and the decoding memo ---------------------------------------------------


@pytest.mark.parametrize("body_bytes", [10, 255, 256, 65_535, 65_536])
def test_from_wire_reads_every_bin_header_width(body_bytes: int) -> None:
    fields = body_fields(args={"pad": b"x" * max(body_bytes - 90, 0)})
    body = encode(fields)
    tx = Transaction.from_wire(wire_of(body), bytes_max=1 << 20)
    assert tx.body == body
    assert tx.wire == wire_of(body)
    tx.verify()


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda w: w[:6] + b"\xc5\x00" + w[7:], id="bin16-header-for-a-short-body"),
        pytest.param(lambda w: w + b"\x00", id="trailing-byte"),
        pytest.param(lambda w: w[:-1], id="truncated-signature"),
        pytest.param(lambda w: w.replace(b"signature", b"signaturf"), id="wrong-key"),
        pytest.param(lambda w: b"\x83" + w[1:], id="three-entry-map-header"),
    ],
)
def test_from_wire_refuses_near_canonical_bytes(mangle: Any) -> None:
    wire = mangle(make_tx(nonce=77).to_wire())
    with pytest.raises((EncodingError, ValidationError)):
        Transaction.from_wire(wire)


def test_from_wire_returns_the_remembered_transaction_for_the_same_bytes() -> None:
    wire = make_tx(nonce=78).to_wire()
    first = Transaction.from_wire(bytes(wire))
    again = Transaction.from_wire(bytes(wire))
    assert again is first


def test_from_wire_applies_the_size_limit_to_remembered_bytes_too() -> None:
    wire = make_tx(nonce=79).to_wire()
    Transaction.from_wire(wire)
    with pytest.raises(EncodingError, match="limit"):
        Transaction.from_wire(wire, bytes_max=len(wire) - 1)


# --- cut and garbled wire forms: always a LedgerError, never another exception -------------------

_WIRE_HEAD = b"\x82\xa4body"


def _wires_cut_short() -> list[bytes]:
    """Every prefix of real wire forms whose body takes each bin header (8, 16 and 32-bit
    lengths), and heads with each marker followed by too few length bytes."""
    small = make_tx().to_wire()
    medium = make_tx(args={"blob": bytes(300)}).to_wire()
    large = make_tx(args={"blob": bytes(70_000)}).to_wire()
    prefixes = [wire[:cut] for wire in (small, medium) for cut in range(len(wire))]
    prefixes += [large[:cut] for cut in range(0, 40)]
    heads = [
        _WIRE_HEAD + marker + bytes(n) for marker in (b"\xc4", b"\xc5", b"\xc6") for n in range(5)
    ]
    return prefixes + heads


def test_a_cut_wire_form_is_a_ledger_error() -> None:
    # A client's bytes reach this first: another exception would be a 500, or end the task
    # that admits forwarded transactions.
    for wire in _wires_cut_short():
        with pytest.raises((EncodingError, ValidationError)):
            Transaction.from_wire(wire, bytes_max=100_000)


@given(tail=st.binary(max_size=80))
def test_any_bytes_after_the_wire_head_decode_or_are_a_ledger_error(tail: bytes) -> None:
    with contextlib.suppress(LedgerError):
        Transaction.from_wire(_WIRE_HEAD + tail)
