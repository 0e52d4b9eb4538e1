"""What replicas say to each other: the normal-case messages, how they are signed, the codec.

Every message names its sender (a validator index) and carries that validator's signature over a
small canonical payload under the message kind's own domain, so a prepare never verifies as a
commit. The commit payload is exactly `ledger.certificate.commit_payload`, which makes a quorum of
commit signatures a `CommitCertificate` with no re-signing.

On the wire a message is the canonical msgpack map of its fields plus a "kind" field.
`decode_message` checks shapes and types only; signatures are checked by `verify_signature`, which
the replica calls on every message it is handed.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from consensus.errors import InvalidMessage
from ledger import crypto
from ledger.block import Block
from ledger.certificate import commit_payload
from ledger.crypto import Domain, KeyPair
from ledger.encoding import decode, encode
from ledger.errors import LedgerError
from ledger.fields import expect_bytes, expect_int, expect_map, expect_str
from ledger.hashing import HASH_BYTES

VALIDATORS_MAX = 1024


class MessageKind(enum.StrEnum):
    PRE_PREPARE = "pre-prepare"
    PREPARE = "prepare"
    COMMIT = "commit"
    CHECKPOINT = "checkpoint"


@dataclass(frozen=True, slots=True, kw_only=True)
class PrePrepare:
    """The primary's proposal of `block` for sequence number `seq` in `view`."""

    view: int
    seq: int
    block: Block
    sender: int
    signature: bytes

    @property
    def block_hash(self) -> bytes:
        return self.block.hash


@dataclass(frozen=True, slots=True, kw_only=True)
class Prepare:
    """A backup's acceptance of the pre-prepare for (view, seq) naming `block_hash`."""

    view: int
    seq: int
    block_hash: bytes
    sender: int
    signature: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Commit:
    """A replica's statement that (view, seq, block_hash) is prepared at it."""

    view: int
    seq: int
    block_hash: bytes
    sender: int
    signature: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Checkpoint:
    """The state digest a replica reached after executing block `seq` (`block_hash`)."""

    seq: int
    block_hash: bytes
    state_digest: bytes
    sender: int
    signature: bytes


Message = PrePrepare | Prepare | Commit | Checkpoint


def kind_of(message: Message) -> MessageKind:
    match message:
        case PrePrepare():
            return MessageKind.PRE_PREPARE
        case Prepare():
            return MessageKind.PREPARE
        case Commit():
            return MessageKind.COMMIT
        case Checkpoint():
            return MessageKind.CHECKPOINT


def _phase_payload(view: int, seq: int, block_hash: bytes) -> bytes:
    return encode({"view": view, "seq": seq, "block_hash": block_hash})


def _checkpoint_payload(seq: int, block_hash: bytes, state_digest: bytes) -> bytes:
    return encode({"seq": seq, "block_hash": block_hash, "state_digest": state_digest})


def signed_payload(message: Message) -> tuple[Domain, bytes]:
    """The domain and bytes that `message.signature` must cover."""
    match message:
        case PrePrepare():
            return Domain.PRE_PREPARE, _phase_payload(message.view, message.seq, message.block.hash)
        case Prepare():
            return Domain.PREPARE, _phase_payload(message.view, message.seq, message.block_hash)
        case Commit():
            payload = commit_payload(
                view=message.view, seq=message.seq, block_hash=message.block_hash
            )
            return Domain.COMMIT, payload
        case Checkpoint():
            payload = _checkpoint_payload(message.seq, message.block_hash, message.state_digest)
            return Domain.CHECKPOINT, payload


def sign_pre_prepare(
    keys: KeyPair, chain_id: str, *, view: int, seq: int, block: Block, sender: int
) -> PrePrepare:
    signature = keys.sign(Domain.PRE_PREPARE, chain_id, _phase_payload(view, seq, block.hash))
    return PrePrepare(view=view, seq=seq, block=block, sender=sender, signature=signature)


def sign_prepare(
    keys: KeyPair, chain_id: str, *, view: int, seq: int, block_hash: bytes, sender: int
) -> Prepare:
    signature = keys.sign(Domain.PREPARE, chain_id, _phase_payload(view, seq, block_hash))
    return Prepare(view=view, seq=seq, block_hash=block_hash, sender=sender, signature=signature)


def sign_commit(
    keys: KeyPair, chain_id: str, *, view: int, seq: int, block_hash: bytes, sender: int
) -> Commit:
    payload = commit_payload(view=view, seq=seq, block_hash=block_hash)
    signature = keys.sign(Domain.COMMIT, chain_id, payload)
    return Commit(view=view, seq=seq, block_hash=block_hash, sender=sender, signature=signature)


def sign_checkpoint(
    keys: KeyPair, chain_id: str, *, seq: int, block_hash: bytes, state_digest: bytes, sender: int
) -> Checkpoint:
    payload = _checkpoint_payload(seq, block_hash, state_digest)
    signature = keys.sign(Domain.CHECKPOINT, chain_id, payload)
    return Checkpoint(
        seq=seq,
        block_hash=block_hash,
        state_digest=state_digest,
        sender=sender,
        signature=signature,
    )


def verify_signature(message: Message, chain_id: str, validators: Sequence[bytes]) -> None:
    """Raise InvalidMessage unless `message.sender` is a validator and signed `message`."""
    if not 0 <= message.sender < len(validators):
        raise InvalidMessage(
            f"{kind_of(message)} from unknown sender {message.sender}; "
            f"validators are 0..{len(validators) - 1}"
        )
    domain, payload = signed_payload(message)
    try:
        crypto.verify(validators[message.sender], domain, chain_id, payload, message.signature)
    except LedgerError as exc:
        raise InvalidMessage(f"{kind_of(message)} from validator {message.sender}: {exc}") from exc


# --- codec -------------------------------------------------------------------------------------

_PHASE_KEYS = frozenset({"kind", "view", "seq", "block_hash", "sender", "signature"})
_KEYS = {
    MessageKind.PRE_PREPARE: frozenset({"kind", "view", "seq", "block", "sender", "signature"}),
    MessageKind.PREPARE: _PHASE_KEYS,
    MessageKind.COMMIT: _PHASE_KEYS,
    MessageKind.CHECKPOINT: frozenset(
        {"kind", "seq", "block_hash", "state_digest", "sender", "signature"}
    ),
}


def to_map(message: Message) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "kind": str(kind_of(message)),
        "sender": message.sender,
        "signature": message.signature,
    }
    match message:
        case PrePrepare():
            fields.update(view=message.view, seq=message.seq, block=message.block.to_map())
        case Prepare() | Commit():
            fields.update(view=message.view, seq=message.seq, block_hash=message.block_hash)
        case Checkpoint():
            fields.update(
                seq=message.seq,
                block_hash=message.block_hash,
                state_digest=message.state_digest,
            )
    return fields


def encode_message(message: Message) -> bytes:
    return encode(to_map(message))


def decode_message(data: bytes, *, tx_bytes_max: int, bytes_max: int | None = None) -> Message:
    """Decode and shape-check a message; raise InvalidMessage saying what was wrong.

    Signatures are not checked here (see `verify_signature`).
    """
    try:
        value = decode(data, bytes_max=bytes_max)
        if not isinstance(value, dict):
            raise InvalidMessage(f"a message is a map, got {type(value).__name__}")
        kind_name = expect_str(value.get("kind"), "message kind", length_max=32)
        try:
            kind = MessageKind(kind_name)
        except ValueError as exc:
            known = ", ".join(str(k) for k in MessageKind)
            raise InvalidMessage(
                f"unknown message kind {kind_name!r}; expected one of {known}"
            ) from exc
        fields = expect_map(value, f"{kind} message", _KEYS[kind])
        return _from_fields(kind, fields, tx_bytes_max)
    except LedgerError as exc:
        raise InvalidMessage(f"malformed message: {exc}") from exc


def _from_fields(kind: MessageKind, fields: dict[str, Any], tx_bytes_max: int) -> Message:
    sender = expect_int(fields["sender"], "sender", maximum=VALIDATORS_MAX - 1)
    signature = expect_bytes(fields["signature"], "signature", length=crypto.SIGNATURE_BYTES)
    if kind is MessageKind.CHECKPOINT:
        return Checkpoint(
            seq=expect_int(fields["seq"], "seq", minimum=1),
            block_hash=expect_bytes(fields["block_hash"], "block_hash", length=HASH_BYTES),
            state_digest=expect_bytes(fields["state_digest"], "state_digest", length=HASH_BYTES),
            sender=sender,
            signature=signature,
        )
    view = expect_int(fields["view"], "view")
    seq = expect_int(fields["seq"], "seq", minimum=1)
    if kind is MessageKind.PRE_PREPARE:
        block = Block.from_map(fields["block"], tx_bytes_max=tx_bytes_max)
        return PrePrepare(view=view, seq=seq, block=block, sender=sender, signature=signature)
    block_hash = expect_bytes(fields["block_hash"], "block_hash", length=HASH_BYTES)
    cls = Prepare if kind is MessageKind.PREPARE else Commit
    return cls(view=view, seq=seq, block_hash=block_hash, sender=sender, signature=signature)
