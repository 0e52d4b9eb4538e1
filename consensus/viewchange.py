"""View change and new view as pure functions: checking proofs, and choosing what a new view
re-proposes.

The choice (`choose_blocks`) over 2f+1 view changes for view v, made from their summaries (each
prepared block by its header: the signatures of a proof cover its hash, and the header is all the
choice reads), so backups check a NEW-VIEW without the view changes' blocks; the new primary
takes the chosen blocks from the view changes it holds whole (`blocks_for`), and its pre-prepares
carry them:

- base = the highest committed base any of them proves (a commit certificate);
- for each seq from base+1 to the highest seq any of them prepared: the block of the prepared
  certificate from the highest view, re-proposed unchanged (its header keeps its original view
  and proposer), provided it hash-chains to the block chosen for seq-1; otherwise, and for every
  seq after that, a null block (no transactions) that chains to the block chosen for seq-1.

Why this never drops or changes a committed block. Say block B has a commit certificate from
view u at seq s (an honest replica committed it, or anyone holds 2f+1 commits for it), so f+1
honest replicas signed commits for B at (u, s), each holding a prepared certificate for it. A
replica signs a commit for s only once it signed one for s-1 in the same view (or has s-1
committed, or s-1 is at or below the view's base, which is committed), so those f+1 honest
replicas also prepared, in view u, the block A at s-1 that B chains to (or had s-1 committed,
and then A is that committed block), and so on down to their committed heads. This is why a
certificate alone proves a block final, for state transfer and view change bases too; were
commits signed on 2f prepares without the parent's, a certificate for B could stand on A
prepared at a single honest replica.

Any 2f+1 view changes include one of those f+1, R. By induction on the views after u: every new
view w > u chooses B at s and A at s-1, because R reports a certificate for each seq between its
base and s (each from view >= u), any certificate from a view between u and w is for the block that
view's new view chose (the induction hypothesis), and B chains to A, A to its parent..., down to
the base or to a block at or below R's base, which is committed and therefore the same everywhere.
So the walk from the base up to s meets only real blocks that chain, and never a null. A null
appears only where no block was committed, and once a null is inserted no prepared block above can
chain to it, so nothing above it was committed either: all nulls from there on are safe.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from consensus.admission import check_block_bytes
from consensus.config import BlockValidator, ChainPoint, ReplicaConfig
from consensus.errors import InvalidBlock, InvalidMessage
from consensus.messages import (
    NewView,
    PreparedHeader,
    PrePrepare,
    Verifier,
    ViewChange,
    ViewChangeSummary,
    kind_of,
    phase_payload,
    signed_payload,
    view_change_payload,
)
from ledger.block import Block, BlockHeader, tx_root
from ledger.certificate import CommitCertificate, commit_payload
from ledger.crypto import Domain
from ledger.errors import LedgerError

_EMPTY_ROOT = tx_root(())


@dataclass(frozen=True, slots=True, kw_only=True)
class Choice:
    """What a new view starts from: the proven base and the headers of the blocks for base+1,
    base+2, ... (the new primary's pre-prepares carry the blocks, see `blocks_for`)."""

    base: ChainPoint
    base_header: BlockHeader | None
    base_certificate: CommitCertificate | None
    headers: tuple[BlockHeader, ...]

    @property
    def max_seq(self) -> int:
        return self.base.height + len(self.headers)


def _check(
    verifier: Verifier,
    config: ReplicaConfig,
    sender: int,
    domain: Domain,
    payload: bytes,
    signature: bytes,
    what: str,
) -> None:
    if not 0 <= sender < config.n:
        raise InvalidMessage(f"{what} names unknown validator {sender}")
    if not verifier(config.validators[sender], domain, config.chain_id, payload, signature):
        raise InvalidMessage(f"{what}: bad signature of validator {sender}")


def check_certificate(
    certificate: CommitCertificate, config: ReplicaConfig, verifier: Verifier
) -> None:
    senders = [index for index, _ in certificate.commits]
    if len(set(senders)) != len(senders) or len(senders) < config.quorum:
        raise InvalidMessage(
            f"commit certificate for {certificate.height} needs {config.quorum} distinct signers"
        )
    payload = commit_payload(
        view=certificate.view, seq=certificate.height, block_hash=certificate.block_hash
    )
    for index, signature in certificate.commits:
        _check(verifier, config, index, Domain.COMMIT, payload, signature, "commit certificate")


def check_prepared_header(proof: PreparedHeader, config: ReplicaConfig, verifier: Verifier) -> None:
    """A pre-prepare from its view's primary and 2f matching prepares from other validators,
    all over the header's hash."""
    header = proof.header
    if proof.sender != proof.view % config.n:
        raise InvalidMessage(
            f"prepared proof for seq {proof.seq}: pre-prepare not from the primary"
        )
    if header.height != proof.seq or header.view > proof.view or header.chain_id != config.chain_id:
        raise InvalidMessage(f"prepared proof for seq {proof.seq}: block header does not fit")
    payload = phase_payload(proof.view, proof.seq, header.hash)
    _check(
        verifier,
        config,
        proof.sender,
        Domain.PRE_PREPARE,
        payload,
        proof.signature,
        "prepared pre-prepare",
    )
    senders = set()
    for prepare in proof.prepares:
        if (prepare.view, prepare.seq, prepare.block_hash) != (proof.view, proof.seq, header.hash):
            raise InvalidMessage(f"prepared proof for seq {proof.seq}: a prepare does not match")
        if prepare.sender == proof.sender or prepare.sender in senders:
            raise InvalidMessage(f"prepared proof for seq {proof.seq}: repeated or primary prepare")
        senders.add(prepare.sender)
        domain, payload = signed_payload(prepare)
        _check(verifier, config, prepare.sender, domain, payload, prepare.signature, "prepare")
    if len(senders) < config.quorum - 1:
        raise InvalidMessage(
            f"prepared proof for seq {proof.seq} has {len(senders)} prepares, needs "
            f"{config.quorum - 1}"
        )


def check_view_change(
    vc: ViewChange, config: ReplicaConfig, verifier: Verifier, validator: BlockValidator
) -> None:
    """Everything a view change carries, except its own signature (checked on receipt)."""
    check_view_change_summary(vc.summary(), config, verifier)
    for proof in vc.prepared:
        _check_body(
            proof.pre_prepare.block, f"prepared proof for seq {proof.seq}", config, validator
        )


def check_view_change_summary(
    vc: ViewChangeSummary, config: ReplicaConfig, verifier: Verifier
) -> None:
    """Everything a view change's summary carries, except its own signature."""
    header, certificate = vc.base_header, vc.base_certificate
    if header is None:
        if certificate is not None:
            raise InvalidMessage("view change: certificate without a base header")
    else:
        if certificate is None:
            raise InvalidMessage(f"view change: base {header.height} without a certificate")
        if (certificate.height, certificate.block_hash) != (header.height, header.hash):
            raise InvalidMessage("view change: the certificate is not for the base header")
        if header.chain_id != config.chain_id:
            raise InvalidMessage("view change: base header for another chain")
        check_certificate(certificate, config, verifier)
    previous = vc.base_height
    for proof in vc.prepared:
        if proof.seq <= previous:
            raise InvalidMessage("view change: prepared proofs out of order or at the base")
        if proof.view >= vc.new_view:
            raise InvalidMessage("view change: prepared proof from the new view or later")
        check_prepared_header(proof, config, verifier)
        previous = proof.seq


def null_block(parent: ChainPoint, *, chain_id: str, view: int, primary: int) -> Block:
    return Block.build(
        chain_id=chain_id,
        height=parent.height + 1,
        prev_hash=parent.hash,
        state_height=parent.state_height,
        state_digest=parent.state_digest,
        proposer=primary,
        view=view,
        timestamp_ms=parent.timestamp_ms,
        txs=(),
    )


def choose_blocks(
    view_changes: Sequence[ViewChangeSummary],
    *,
    view: int,
    config: ReplicaConfig,
    genesis: ChainPoint | None,
) -> Choice:
    """The deterministic choice of the new view (see the module docstring)."""
    top = max(view_changes, key=lambda vc: (vc.base_height, -vc.sender))
    if top.base_header is None:
        if genesis is None:
            raise InvalidMessage("new view starts at the chain's start, which this replica lacks")
        base = genesis
    else:
        base = ChainPoint.of(top.base_header)
    best: dict[int, PreparedHeader] = {}
    for vc in view_changes:
        for proof in vc.prepared:
            if proof.seq <= base.height:
                continue
            known = best.get(proof.seq)
            if known is None or proof.view > known.view:
                best[proof.seq] = proof
    headers: list[BlockHeader] = []
    parent, broken = base, False
    primary = view % config.n
    for seq in range(base.height + 1, max(best, default=base.height) + 1):
        found = best.get(seq)
        header = None if found is None or broken else found.header
        if header is None or header.prev_hash != parent.hash:
            header = null_block(parent, chain_id=config.chain_id, view=view, primary=primary).header
            broken = True
        headers.append(header)
        parent = ChainPoint.of(header)
    return Choice(
        base=base,
        base_header=top.base_header,
        base_certificate=top.base_certificate,
        headers=tuple(headers),
    )


def blocks_for(choice: Choice, view_changes: Sequence[ViewChange]) -> tuple[Block, ...]:
    """The blocks of `choice`, for the new primary to re-propose: each chosen header's block
    from the view changes' proofs, or, with no transactions, rebuilt from the header (a null
    block, or a block that was empty)."""
    bodies = {
        proof.pre_prepare.block_hash: proof.pre_prepare.block
        for vc in view_changes
        for proof in vc.prepared
    }
    blocks = []
    for header in choice.headers:
        block = bodies.get(header.hash)
        if block is None:
            if header.tx_root != _EMPTY_ROOT:
                raise InvalidMessage(f"the block chosen for seq {header.height} is not at hand")
            block = Block(header=header, txs=())
        blocks.append(block)
    return tuple(blocks)


def check_new_view(
    nv: NewView,
    config: ReplicaConfig,
    verifier: Verifier,
    genesis: ChainPoint | None,
    validator: BlockValidator,
) -> Choice:
    """Check every view change in `nv` and that its pre-prepares are exactly the choice."""
    primary = nv.view % config.n
    if nv.sender != primary:
        raise InvalidMessage(f"new view {nv.view} from {nv.sender}, its primary is {primary}")
    senders = [vc.sender for vc in nv.view_changes]
    if senders != sorted(set(senders)) or len(senders) < config.quorum:
        raise InvalidMessage(
            f"new view {nv.view} needs {config.quorum} view changes from distinct validators"
        )
    for vc in nv.view_changes:
        if vc.new_view != nv.view:
            raise InvalidMessage(f"new view {nv.view} holds a view change for {vc.new_view}")
        payload = view_change_payload(vc)
        _check(
            verifier, config, vc.sender, Domain.VIEW_CHANGE, payload, vc.signature, "view change"
        )
        check_view_change_summary(vc, config, verifier)
    choice = choose_blocks(nv.view_changes, view=nv.view, config=config, genesis=genesis)
    if len(nv.pre_prepares) != len(choice.headers):
        raise InvalidMessage(
            f"new view {nv.view} re-proposes {len(nv.pre_prepares)} blocks, the view changes "
            f"imply {len(choice.headers)}"
        )
    for pp, header in zip(nv.pre_prepares, choice.headers, strict=True):
        check_new_view_pre_prepare(pp, header, nv.view, primary, config, validator)
        domain, payload = signed_payload(pp)
        _check(verifier, config, pp.sender, domain, payload, pp.signature, kind_of(pp))
    return choice


def check_new_view_pre_prepare(
    pp: PrePrepare,
    header: BlockHeader,
    view: int,
    primary: int,
    config: ReplicaConfig,
    validator: BlockValidator,
) -> None:
    if (pp.view, pp.seq, pp.sender) != (view, header.height, primary) or (
        pp.block_hash != header.hash
    ):
        raise InvalidMessage(
            f"new view {view}: pre-prepare for seq {pp.seq} is not the block the view changes imply"
        )
    _check_body(pp.block, f"new view {view}: pre-prepare for seq {pp.seq}", config, validator)


def _check_body(block: Block, what: str, config: ReplicaConfig, validator: BlockValidator) -> None:
    """The block is within the chain's size, its transactions are the header's (tx_root),
    none twice, and the application takes them (`validator`: their signatures, as for a
    pre-prepare in the normal case). Signatures and prepares cover the header's hash only;
    the tx_root is what ties a re-proposed block's transactions to the ones a quorum
    prepared. It covers their bodies, not their signatures, so the same block with a
    signature swapped for garbage has the same hash: without the validator, a new view (or a
    byzantine replica's view change it was built from) could get transactions committed
    under signatures their senders never made. (The shape is checked once per block object:
    blocks decoded off the wire are checked.)"""
    try:
        check_block_bytes(block, config.block_bytes_max)
        block.check_shape()
        validator.validate(block)
    except (InvalidBlock, LedgerError) as exc:
        raise InvalidMessage(f"{what}: {exc}") from exc
