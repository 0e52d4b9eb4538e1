"""The wire codec for consensus messages: canonical msgpack maps with a "kind" field.

`decode_message` checks shapes and types only (nested messages included); signatures are the
replica's business. Re-exported by `consensus.messages`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from consensus.errors import InvalidMessage
from consensus.messages import (
    VALIDATORS_MAX,
    Checkpoint,
    Commit,
    Message,
    MessageKind,
    NewView,
    Prepare,
    PreparedHeader,
    PreparedProof,
    PrePrepare,
    ViewChange,
    ViewChangeSummary,
    kind_of,
    proof_to_map,
    summary_to_map,
)
from ledger import crypto
from ledger.block import Block, BlockHeader
from ledger.certificate import CommitCertificate
from ledger.encoding import decode, encode
from ledger.errors import LedgerError
from ledger.fields import expect_bytes, expect_int, expect_list, expect_map, expect_str
from ledger.hashing import HASH_BYTES

PREPARED_MAX = 100_000
# Lists and maps a message may hold: a few, and one for each BYTES_PER_CONTAINER bytes beyond.
# Every list or map of an honest message sits beside a hash or a signature (a prepare, a
# certificate's commit, a block's header: 60 bytes or more each), so the budget never refuses
# one; it bounds what forged bytes cost decoded (see ledger.encoding.container_budget).
CONTAINERS_MIN = 64
BYTES_PER_CONTAINER = 16

_PHASE_KEYS = frozenset({"kind", "view", "seq", "block_hash", "sender", "signature"})
_KEYS = {
    MessageKind.PRE_PREPARE: frozenset({"kind", "view", "seq", "block", "sender", "signature"}),
    MessageKind.PREPARE: _PHASE_KEYS,
    MessageKind.COMMIT: _PHASE_KEYS,
    MessageKind.CHECKPOINT: frozenset(
        {"kind", "seq", "block_hash", "state_digest", "sender", "signature"}
    ),
    MessageKind.VIEW_CHANGE: frozenset(
        {"kind", "new_view", "base_header", "base_certificate", "prepared", "sender", "signature"}
    ),
    MessageKind.NEW_VIEW: frozenset(
        {"kind", "view", "view_changes", "pre_prepares", "sender", "signature"}
    ),
}
_PROOF_KEYS = frozenset({"pre_prepare", "prepares"})
_SUMMARY_KEYS = frozenset(
    {"new_view", "base_header", "base_certificate", "prepared", "sender", "signature"}
)
_PROOF_HEADER_KEYS = frozenset({"view", "seq", "header", "sender", "signature", "prepares"})


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
        case ViewChange():
            fields.update(
                new_view=message.new_view,
                base_header=None if message.base_header is None else message.base_header.to_map(),
                base_certificate=(
                    None if message.base_certificate is None else message.base_certificate.to_map()
                ),
                prepared=[proof_to_map(proof) for proof in message.prepared],
            )
        case NewView():
            fields.update(
                view=message.view,
                view_changes=[summary_to_map(vc) for vc in message.view_changes],
                pre_prepares=[to_map(pp) for pp in message.pre_prepares],
            )
    return fields


def encode_message(message: Message) -> bytes:
    return encode(to_map(message))


def decode_message(data: bytes, *, tx_bytes_max: int, bytes_max: int | None = None) -> Message:
    """Decode and shape-check a message; raise InvalidMessage saying what was wrong.

    Signatures are not checked here (see `verify_signature`).
    """
    size = len(data) if isinstance(data, bytes | bytearray | memoryview) else 0
    containers_max = CONTAINERS_MIN + size // BYTES_PER_CONTAINER
    try:
        return _from_map(
            decode(data, bytes_max=bytes_max, containers_max=containers_max), tx_bytes_max
        )
    except LedgerError as exc:
        raise InvalidMessage(f"malformed message: {exc}") from exc


def _from_map(value: Any, tx_bytes_max: int, expected: MessageKind | None = None) -> Message:
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
    if expected is not None and kind is not expected:
        raise InvalidMessage(f"expected a nested {expected} message, got {kind}")
    fields = expect_map(value, f"{kind} message", _KEYS[kind])
    return _from_fields(kind, fields, tx_bytes_max)


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
    if kind is MessageKind.VIEW_CHANGE:
        return _view_change(fields, sender, signature, tx_bytes_max)
    if kind is MessageKind.NEW_VIEW:
        return _new_view(fields, sender, signature, tx_bytes_max)
    view = expect_int(fields["view"], "view")
    seq = expect_int(fields["seq"], "seq", minimum=1)
    if kind is MessageKind.PRE_PREPARE:
        block = Block.from_map(fields["block"], tx_bytes_max=tx_bytes_max)
        return PrePrepare(view=view, seq=seq, block=block, sender=sender, signature=signature)
    block_hash = expect_bytes(fields["block_hash"], "block_hash", length=HASH_BYTES)
    cls = Prepare if kind is MessageKind.PREPARE else Commit
    return cls(view=view, seq=seq, block_hash=block_hash, sender=sender, signature=signature)


def _base(fields: dict[str, Any]) -> tuple[BlockHeader | None, CommitCertificate | None]:
    raw_header, raw_certificate = fields["base_header"], fields["base_certificate"]
    header = None if raw_header is None else BlockHeader.from_map(raw_header)
    certificate = None if raw_certificate is None else CommitCertificate.from_map(raw_certificate)
    return header, certificate


def _view_change(
    fields: dict[str, Any], sender: int, signature: bytes, tx_bytes_max: int
) -> ViewChange:
    header, certificate = _base(fields)
    return ViewChange(
        new_view=expect_int(fields["new_view"], "new_view", minimum=1),
        base_header=header,
        base_certificate=certificate,
        prepared=_proofs(fields["prepared"], tx_bytes_max),
        sender=sender,
        signature=signature,
    )


def _summary(value: Any, tx_bytes_max: int) -> ViewChangeSummary:
    if isinstance(value, dict) and "kind" in value:
        # The form of NEW-VIEWs logged before view changes were signed by header: the view
        # change whole. It still decodes (a node's log holds its own), but its signature no
        # longer verifies, so it is refused where it is checked, and the view changes again.
        vc = _from_map(value, tx_bytes_max, MessageKind.VIEW_CHANGE)
        assert isinstance(vc, ViewChange)
        return vc.summary()
    fields = expect_map(value, "new-view view change", _SUMMARY_KEYS)
    header, certificate = _base(fields)
    proofs = []
    for raw in expect_list(fields["prepared"], "prepared proofs", length_max=PREPARED_MAX):
        proof = expect_map(raw, "prepared proof", _PROOF_HEADER_KEYS)
        raw_prepares = expect_list(proof["prepares"], "proof prepares", length_max=VALIDATORS_MAX)
        prepares = [_from_map(p, 0, MessageKind.PREPARE) for p in raw_prepares]
        proofs.append(
            PreparedHeader(
                view=expect_int(proof["view"], "view"),
                seq=expect_int(proof["seq"], "seq", minimum=1),
                header=BlockHeader.from_map(proof["header"]),
                sender=expect_int(proof["sender"], "sender", maximum=VALIDATORS_MAX - 1),
                signature=expect_bytes(
                    proof["signature"], "signature", length=crypto.SIGNATURE_BYTES
                ),
                prepares=tuple(p for p in prepares if isinstance(p, Prepare)),
            )
        )
    return ViewChangeSummary(
        new_view=expect_int(fields["new_view"], "new_view", minimum=1),
        base_header=header,
        base_certificate=certificate,
        prepared=tuple(proofs),
        sender=expect_int(fields["sender"], "sender", maximum=VALIDATORS_MAX - 1),
        signature=expect_bytes(fields["signature"], "signature", length=crypto.SIGNATURE_BYTES),
    )


def _proofs(value: Any, tx_bytes_max: int) -> tuple[PreparedProof, ...]:
    proofs = []
    for raw in expect_list(value, "prepared proofs", length_max=PREPARED_MAX):
        proof = expect_map(raw, "prepared proof", _PROOF_KEYS)
        pre_prepare = _from_map(proof["pre_prepare"], tx_bytes_max, MessageKind.PRE_PREPARE)
        raw_prepares = expect_list(proof["prepares"], "proof prepares", length_max=VALIDATORS_MAX)
        prepares = tuple(_from_map(p, tx_bytes_max, MessageKind.PREPARE) for p in raw_prepares)
        assert isinstance(pre_prepare, PrePrepare)
        proofs.append(
            PreparedProof(
                pre_prepare=pre_prepare,
                prepares=tuple(p for p in prepares if isinstance(p, Prepare)),
            )
        )
    return tuple(proofs)


def encode_proofs(proofs: Sequence[PreparedProof]) -> bytes:
    """Prepared certificates as a list, in the form a view change carries them."""
    return encode([proof_to_map(proof) for proof in proofs])


def decode_proofs(data: bytes, *, tx_bytes_max: int) -> tuple[PreparedProof, ...]:
    """What `encode_proofs` wrote; raises InvalidMessage saying what was wrong."""
    try:
        return _proofs(decode(data), tx_bytes_max)
    except LedgerError as exc:
        raise InvalidMessage(f"malformed prepared proofs: {exc}") from exc


def _new_view(fields: dict[str, Any], sender: int, signature: bytes, tx_bytes_max: int) -> NewView:
    raw_changes = expect_list(fields["view_changes"], "view changes", length_max=VALIDATORS_MAX)
    raw_pps = expect_list(fields["pre_prepares"], "new-view pre-prepares", length_max=PREPARED_MAX)
    changes = tuple(_summary(vc, tx_bytes_max) for vc in raw_changes)
    pre_prepares = [_from_map(pp, tx_bytes_max, MessageKind.PRE_PREPARE) for pp in raw_pps]
    return NewView(
        view=expect_int(fields["view"], "view", minimum=1),
        view_changes=changes,
        pre_prepares=tuple(pp for pp in pre_prepares if isinstance(pp, PrePrepare)),
        sender=sender,
        signature=signature,
    )
