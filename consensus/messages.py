"""What replicas say to each other: the messages, how they are signed, and how they are checked.

Every message names its sender (a validator index) and carries that validator's signature over a
small canonical payload under the message kind's own domain, so a prepare never verifies as a
commit. The commit payload is exactly `ledger.certificate.commit_payload`, which makes a quorum of
commit signatures a `CommitCertificate` with no re-signing.

View change: a `ViewChange` carries the sender's base (its committed head, with the commit
certificate that proves it) and a `PreparedProof` (pre-prepare plus 2f matching prepares) for every
seq above the base that it prepared, each from the highest view it prepared that seq in, with the
block: the new primary re-proposes from them. Its signature covers its `ViewChangeSummary`, the
same with each proof's block by header (`PreparedHeader`): every signature in a proof is over the
block's hash, and the header is what the choice of the new view reads. A `NewView` carries the
summaries of the 2f+1 view changes its primary chose from, and the pre-prepares that follow from
them with their blocks, so each block crosses the wire once in it rather than once for every view
change that prepared it: with up to watermark_window blocks in flight, the full view changes of a
quorum would not fit in one peer frame (see `ledger.genesis.block_bytes_limit`).

The wire codec lives in `consensus.codec` and is re-exported here. `decode_message` checks shapes
and types only; signatures are checked by `verify_signature`, which the replica calls on every
message it is handed (nested signatures are checked by `consensus.viewchange`).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from consensus.errors import InvalidMessage
from ledger import crypto
from ledger.block import Block, BlockHeader
from ledger.certificate import CommitCertificate, commit_payload
from ledger.crypto import Domain, KeyPair
from ledger.encoding import encode
from ledger.errors import LedgerError

VALIDATORS_MAX = 1024


class MessageKind(enum.StrEnum):
    PRE_PREPARE = "pre-prepare"
    PREPARE = "prepare"
    COMMIT = "commit"
    CHECKPOINT = "checkpoint"
    VIEW_CHANGE = "view-change"
    NEW_VIEW = "new-view"


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


@dataclass(frozen=True, slots=True, kw_only=True)
class PreparedProof:
    """A prepared certificate: the pre-prepare and 2f matching prepares from distinct backups."""

    pre_prepare: PrePrepare
    prepares: tuple[Prepare, ...]

    @property
    def seq(self) -> int:
        return self.pre_prepare.seq

    @property
    def view(self) -> int:
        return self.pre_prepare.view


@dataclass(frozen=True, slots=True, kw_only=True)
class PreparedHeader:
    """A prepared certificate with its block by header: the pre-prepare's sender and signature,
    and the prepares, all over (view, seq, header hash)."""

    view: int
    seq: int
    header: BlockHeader
    sender: int
    signature: bytes
    prepares: tuple[Prepare, ...]


def summarise_proof(proof: PreparedProof) -> PreparedHeader:
    pp = proof.pre_prepare
    return PreparedHeader(
        view=pp.view,
        seq=pp.seq,
        header=pp.block.header,
        sender=pp.sender,
        signature=pp.signature,
        prepares=proof.prepares,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class ViewChangeSummary:
    """A view change with its proofs by header: what its signature covers, and what a
    `NewView` carries of it."""

    new_view: int
    base_header: BlockHeader | None
    base_certificate: CommitCertificate | None
    prepared: tuple[PreparedHeader, ...]  # ascending seq, all above the base
    sender: int
    signature: bytes

    @property
    def base_height(self) -> int:
        return 0 if self.base_header is None else self.base_header.height


@dataclass(frozen=True, slots=True, kw_only=True)
class ViewChange:
    """`sender` moves to `new_view`: its committed base and what it prepared above it.

    `base_header` is None only for the start of the chain (height 0); otherwise
    `base_certificate` proves it committed.
    """

    new_view: int
    base_header: BlockHeader | None
    base_certificate: CommitCertificate | None
    prepared: tuple[PreparedProof, ...]  # ascending seq, all above the base
    sender: int
    signature: bytes

    @property
    def base_height(self) -> int:
        return 0 if self.base_header is None else self.base_header.height

    def summary(self) -> ViewChangeSummary:
        return ViewChangeSummary(
            new_view=self.new_view,
            base_header=self.base_header,
            base_certificate=self.base_certificate,
            prepared=tuple(summarise_proof(proof) for proof in self.prepared),
            sender=self.sender,
            signature=self.signature,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class NewView:
    """The primary of `view` installs it: 2f+1 view changes (by their summaries) and the
    pre-prepares they imply."""

    view: int
    view_changes: tuple[ViewChangeSummary, ...]  # ascending sender
    pre_prepares: tuple[PrePrepare, ...]  # ascending seq
    sender: int
    signature: bytes


Message = PrePrepare | Prepare | Commit | Checkpoint | ViewChange | NewView


class Verifier(Protocol):
    """Checks one signature; the simulator passes a caching one, the node the plain one."""

    def __call__(
        self, public_key: bytes, domain: Domain, chain_id: str, payload: bytes, signature: bytes
    ) -> bool: ...


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
        case ViewChange():
            return MessageKind.VIEW_CHANGE
        case NewView():
            return MessageKind.NEW_VIEW


def phase_payload(view: int, seq: int, block_hash: bytes) -> bytes:
    return encode({"view": view, "seq": seq, "block_hash": block_hash})


def _checkpoint_payload(seq: int, block_hash: bytes, state_digest: bytes) -> bytes:
    return encode({"seq": seq, "block_hash": block_hash, "state_digest": state_digest})


def view_change_body(
    *,
    new_view: int,
    base_header: BlockHeader | None,
    base_certificate: CommitCertificate | None,
    prepared: Sequence[PreparedHeader],
) -> dict[str, Any]:
    """What a view change's signature covers (its proofs by header)."""
    return {
        "new_view": new_view,
        "base_header": None if base_header is None else base_header.to_map(),
        "base_certificate": None if base_certificate is None else base_certificate.to_map(),
        "prepared": [proof_header_to_map(proof) for proof in prepared],
    }


def view_change_payload(vc: ViewChange | ViewChangeSummary) -> bytes:
    summary = vc.summary() if isinstance(vc, ViewChange) else vc
    return encode(
        view_change_body(
            new_view=summary.new_view,
            base_header=summary.base_header,
            base_certificate=summary.base_certificate,
            prepared=summary.prepared,
        )
    )


def summary_to_map(summary: ViewChangeSummary) -> dict[str, Any]:
    """A view change as a NEW-VIEW carries it: its signed body, sender and signature."""
    return {
        **view_change_body(
            new_view=summary.new_view,
            base_header=summary.base_header,
            base_certificate=summary.base_certificate,
            prepared=summary.prepared,
        ),
        "sender": summary.sender,
        "signature": summary.signature,
    }


def new_view_body(
    *, view: int, view_changes: Sequence[ViewChangeSummary], pre_prepares: Sequence[PrePrepare]
) -> dict[str, Any]:
    return {
        "view": view,
        "view_changes": [summary_to_map(vc) for vc in view_changes],
        "pre_prepares": [to_map(pp) for pp in pre_prepares],
    }


def proof_header_to_map(proof: PreparedHeader) -> dict[str, Any]:
    return {
        "view": proof.view,
        "seq": proof.seq,
        "header": proof.header.to_map(),
        "sender": proof.sender,
        "signature": proof.signature,
        "prepares": [to_map(prepare) for prepare in proof.prepares],
    }


def proof_to_map(proof: PreparedProof) -> dict[str, Any]:
    return {
        "pre_prepare": to_map(proof.pre_prepare),
        "prepares": [to_map(prepare) for prepare in proof.prepares],
    }


def signed_payload(message: Message) -> tuple[Domain, bytes]:
    """The domain and bytes that `message.signature` must cover."""
    match message:
        case PrePrepare():
            return Domain.PRE_PREPARE, phase_payload(message.view, message.seq, message.block.hash)
        case Prepare():
            return Domain.PREPARE, phase_payload(message.view, message.seq, message.block_hash)
        case Commit():
            payload = commit_payload(
                view=message.view, seq=message.seq, block_hash=message.block_hash
            )
            return Domain.COMMIT, payload
        case Checkpoint():
            payload = _checkpoint_payload(message.seq, message.block_hash, message.state_digest)
            return Domain.CHECKPOINT, payload
        case ViewChange():
            return Domain.VIEW_CHANGE, view_change_payload(message)
        case NewView():
            body = new_view_body(
                view=message.view,
                view_changes=message.view_changes,
                pre_prepares=message.pre_prepares,
            )
            return Domain.NEW_VIEW, encode(body)


def sign_pre_prepare(
    keys: KeyPair, chain_id: str, *, view: int, seq: int, block: Block, sender: int
) -> PrePrepare:
    signature = keys.sign(Domain.PRE_PREPARE, chain_id, phase_payload(view, seq, block.hash))
    return PrePrepare(view=view, seq=seq, block=block, sender=sender, signature=signature)


def sign_prepare(
    keys: KeyPair, chain_id: str, *, view: int, seq: int, block_hash: bytes, sender: int
) -> Prepare:
    signature = keys.sign(Domain.PREPARE, chain_id, phase_payload(view, seq, block_hash))
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


def sign_view_change(
    keys: KeyPair,
    chain_id: str,
    *,
    new_view: int,
    base_header: BlockHeader | None,
    base_certificate: CommitCertificate | None,
    prepared: tuple[PreparedProof, ...],
    sender: int,
) -> ViewChange:
    body = view_change_body(
        new_view=new_view,
        base_header=base_header,
        base_certificate=base_certificate,
        prepared=[summarise_proof(proof) for proof in prepared],
    )
    return ViewChange(
        new_view=new_view,
        base_header=base_header,
        base_certificate=base_certificate,
        prepared=prepared,
        sender=sender,
        signature=keys.sign(Domain.VIEW_CHANGE, chain_id, encode(body)),
    )


def sign_new_view(
    keys: KeyPair,
    chain_id: str,
    *,
    view: int,
    view_changes: Sequence[ViewChange | ViewChangeSummary],
    pre_prepares: tuple[PrePrepare, ...],
    sender: int,
) -> NewView:
    summaries = tuple(vc.summary() if isinstance(vc, ViewChange) else vc for vc in view_changes)
    body = new_view_body(view=view, view_changes=summaries, pre_prepares=pre_prepares)
    return NewView(
        view=view,
        view_changes=summaries,
        pre_prepares=pre_prepares,
        sender=sender,
        signature=keys.sign(Domain.NEW_VIEW, chain_id, encode(body)),
    )


def plain_verifier(
    public_key: bytes, domain: Domain, chain_id: str, payload: bytes, signature: bytes
) -> bool:
    return crypto.is_valid_signature(public_key, domain, chain_id, payload, signature)


def verify_signature(
    message: Message,
    chain_id: str,
    validators: Sequence[bytes],
    verifier: Verifier = plain_verifier,
) -> None:
    """Raise InvalidMessage unless `message.sender` is a validator and signed `message`."""
    if not 0 <= message.sender < len(validators):
        raise InvalidMessage(
            f"{kind_of(message)} from unknown sender {message.sender}; "
            f"validators are 0..{len(validators) - 1}"
        )
    try:
        domain, payload = signed_payload(message)
    except LedgerError as exc:
        raise InvalidMessage(f"{kind_of(message)} cannot be encoded: {exc}") from exc
    if not verifier(validators[message.sender], domain, chain_id, payload, message.signature):
        raise InvalidMessage(
            f"{kind_of(message)} from validator {message.sender}: bad "
            f"{domain.name.lower()} signature"
        )


from consensus.codec import decode_message, encode_message, to_map  # noqa: E402

__all__ = [
    "Checkpoint",
    "Commit",
    "Message",
    "MessageKind",
    "NewView",
    "PrePrepare",
    "Prepare",
    "PreparedHeader",
    "PreparedProof",
    "Verifier",
    "ViewChange",
    "ViewChangeSummary",
    "decode_message",
    "encode_message",
    "kind_of",
    "plain_verifier",
    "sign_checkpoint",
    "sign_commit",
    "sign_new_view",
    "sign_pre_prepare",
    "sign_prepare",
    "sign_view_change",
    "signed_payload",
    "summarise_proof",
    "to_map",
    "verify_signature",
    "view_change_payload",
]
