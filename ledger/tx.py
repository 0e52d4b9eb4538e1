"""Signed transactions.

On the wire a transaction is the canonical encoding of {"body": BODY, "signature": SIG}, where BODY
is itself the canonical encoding of the transaction's fields. Keeping the signed bytes as they were
received means hashing and verifying never re-encode, and a transaction's id is sha256(BODY).

A node meets each transaction several times (a client or a peer forwards it, then a pre-prepare
carries it again), so decoding is memoised by the wire bytes: a transaction is immutable and its
wire bytes determine it, so the second meeting costs a dictionary lookup.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

from ledger import crypto
from ledger.cache import WeighedFifoCache
from ledger.crypto import Domain, KeyPair
from ledger.encoding import decode, encode
from ledger.errors import EncodingError, ValidationError
from ledger.fields import expect_bytes, expect_int, expect_map, expect_str
from ledger.hashing import sha256

NAME_LENGTH_MAX = 64
TX_BYTES_MAX_DEFAULT = 64 * 1024
NONCE_MAX = 2**63 - 1

DECODED_CACHE_MAX = 16_384  # more than a full mempool and the blocks in flight

_WIRE_KEYS = frozenset({"body", "signature"})
# The canonical wire form around the body: {"body": <bin>, "signature": <bin 64>}, keys sorted.
_WIRE_HEAD = b"\x82\xa4body"
_WIRE_SIGNATURE = b"\xa9signature\xc4\x40"
# Bytes of wire form the decoded transactions kept were decoded from (their decoded forms take
# about as much again twice): what a flood of large transactions, refused or not, can pin.
DECODED_CACHE_BYTES_MAX = 16 * 1024 * 1024
_decoded: WeighedFifoCache[bytes, Transaction] = WeighedFifoCache(
    DECODED_CACHE_MAX, weight_max=DECODED_CACHE_BYTES_MAX, weigh=len
)
_BODY_KEYS = frozenset({"chain_id", "sender", "nonce", "contract", "method", "args"})


@dataclass(frozen=True, slots=True, kw_only=True)
class Transaction:
    chain_id: str
    sender: bytes
    nonce: int
    contract: str
    method: str
    args: dict[str, Any]
    signature: bytes
    body: bytes = field(repr=False)
    hash: bytes = field(repr=False)
    wire: bytes = field(repr=False)  # the canonical wire encoding (see `to_wire`)

    @classmethod
    def create(
        cls,
        keys: KeyPair,
        *,
        chain_id: str,
        nonce: int,
        contract: str,
        method: str,
        args: dict[str, Any],
    ) -> Transaction:
        fields = {
            "chain_id": chain_id,
            "sender": keys.public_key,
            "nonce": nonce,
            "contract": contract,
            "method": method,
            "args": args,
        }
        _check_body(fields)
        body = encode(fields)
        signature = keys.sign(Domain.TRANSACTION, chain_id, body)
        # Keep the decoded body, not the caller's objects: tuples become lists and the args are
        # a private copy, so a created transaction equals the same one read back from the wire.
        wire = encode({"body": body, "signature": signature})
        return cls._from_parts(decode(body), body, signature, wire)

    @classmethod
    def _from_parts(
        cls, fields: dict[str, Any], body: bytes, signature: bytes, wire: bytes
    ) -> Transaction:
        return cls(
            chain_id=fields["chain_id"],
            sender=fields["sender"],
            nonce=fields["nonce"],
            contract=fields["contract"],
            method=fields["method"],
            args=fields["args"],
            signature=signature,
            body=body,
            hash=sha256(body),
            wire=wire,
        )

    @classmethod
    def from_wire(cls, data: bytes, *, bytes_max: int = TX_BYTES_MAX_DEFAULT) -> Transaction:
        """Decode and check the shape of a transaction (not its signature: see `verify`)."""
        if isinstance(data, bytes) and len(data) <= bytes_max:
            known = _decoded.get(data)
            if known is not None:
                return known
        wire = bytes(data) if isinstance(data, (bytearray, memoryview)) else data
        parts = _split_wire(wire) if isinstance(wire, bytes) else None
        if parts is None or len(wire) > bytes_max:
            # Not the canonical shape (or too long): the generic decoder says precisely why.
            outer = expect_map(decode(data, bytes_max=bytes_max), "transaction", _WIRE_KEYS)
            body = expect_bytes(outer["body"], "transaction body")
            signature = expect_bytes(outer["signature"], "signature", length=crypto.SIGNATURE_BYTES)
        else:
            body, signature = parts
        fields = expect_map(decode(body), "transaction body", _BODY_KEYS)
        # The args came out of canonical bytes, so they encode canonically: shapes only here.
        _check_fields(fields)
        tx = cls._from_parts(fields, body, signature, wire)
        _decoded.remember(wire, tx)
        return tx

    def to_wire(self) -> bytes:
        return self.wire

    def verify(self) -> None:
        """Raise SignatureError unless the sender signed this body for this chain."""
        crypto.verify(self.sender, Domain.TRANSACTION, self.chain_id, self.body, self.signature)

    def summary(self) -> dict[str, Any]:
        """A JSON-friendly view for APIs and the CLI."""
        return {
            "hash": self.hash.hex(),
            "chain_id": self.chain_id,
            "sender": self.sender.hex(),
            "nonce": self.nonce,
            "contract": self.contract,
            "method": self.method,
            "args": jsonable(self.args),
        }


def _split_wire(data: bytes) -> tuple[bytes, bytes] | None:
    """(body, signature) if `data` is exactly the canonical encoding of a transaction's wire map,
    else None. Every check the generic decoder makes holds for the bytes accepted here: the two
    keys in order, each bin length in its shortest header, a 64-byte signature, nothing after."""
    if not data.startswith(_WIRE_HEAD):
        return None
    at = len(_WIRE_HEAD)
    if len(data) < at + 5:  # the longest bin header; a real body is longer still
        return None
    marker = data[at]
    if marker == 0xC4:
        length, start = data[at + 1], at + 2
    elif marker == 0xC5:
        length, start = struct.unpack_from(">H", data, at + 1)[0], at + 3
        if length < 0x100:
            return None
    elif marker == 0xC6:
        length, start = struct.unpack_from(">I", data, at + 1)[0], at + 5
        if length < 0x10000:
            return None
    else:
        return None
    end = start + length
    tail = end + len(_WIRE_SIGNATURE)
    if len(data) != tail + crypto.SIGNATURE_BYTES or data[end:tail] != _WIRE_SIGNATURE:
        return None
    return data[start:end], data[tail:]


def _check_body(fields: dict[str, Any]) -> None:
    _check_fields(fields)
    try:
        encode(fields["args"])
    except EncodingError as exc:
        raise ValidationError(f"args cannot be encoded canonically: {exc}") from exc


def _check_fields(fields: dict[str, Any]) -> None:
    expect_str(fields["chain_id"], "chain_id", length_max=NAME_LENGTH_MAX)
    expect_bytes(fields["sender"], "sender", length=crypto.PUBLIC_KEY_BYTES)
    expect_int(fields["nonce"], "nonce", minimum=0, maximum=NONCE_MAX)
    expect_str(fields["contract"], "contract", length_max=NAME_LENGTH_MAX)
    expect_str(fields["method"], "method", length_max=NAME_LENGTH_MAX)
    if not isinstance(fields["args"], dict):
        raise ValidationError(f"args must be a map, got {type(fields['args']).__name__}")


def jsonable(value: Any) -> Any:
    """Turn decoded canonical data into JSON-friendly data (bytes become hex strings)."""
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {key: jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    return value
