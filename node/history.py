"""State history for peers catching up: the /peer/history answer and its offline checks.

An answer carries, for consecutive heights, each certified block with the receipts and the net
writes it produced, and the proofs of the stable checkpoints the serving node kept in that range:

    {"blocks": [[block wire, certificate wire, [receipt, ...], write-set blob or nil], ...],
     "checkpoints": [[seq, proof], ...]}

The receipts are those the serving node's txs table holds for the block, in index order; the
write-set blob (node.storage.encode_write_set) adds the few it could not hold there. A proof is
a msgpack list of signed checkpoint messages.

Blocks and certificates are checked as for /peer/blocks (node/sync.py), proofs completely here
(2f+1 distinct validators signed one (seq, block hash, state digest)). Writes are checked for
shape only, and receipts only counted (they stay encoded): nothing vouches for them until the
state digest they chain to equals one a quorum signed, which node/catchup.py checks before
anything is applied.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from consensus.checkpoints import StableCheckpoint
from consensus.errors import ConsensusError
from consensus.messages import Checkpoint, decode_message, encode_message, verify_signature
from ledger.certificate import quorum_size
from ledger.encoding import decode, encode
from ledger.errors import LedgerError
from ledger.genesis import Genesis
from node.errors import StorageError
from node.storage import HistoryRow
from node.sync import FETCH_BLOCKS_MAX, FETCH_BYTES_MAX, CertifiedBlock, SyncError, verify_entry

Writes = dict[bytes, bytes | None]

# Lists and maps an honest /peer/history answer holds (see encode_history): the map and its
# two lists, and per block its entry and its receipts, per proof its [seq, proof] pair, with
# no more proofs than blocks and FETCH_BLOCKS_MAX blocks at most. Decoding stops past it (see
# ledger.encoding.container_budget): capped in bytes alone, an answer of empty lists cost some
# 80 times its size decoded.
ANSWER_CONTAINERS_MAX = 3 + 3 * FETCH_BLOCKS_MAX
# A write set holds its list, its two lists, and a pair per change or extra receipt, which is
# 4 bytes encoded at the least ([b"", nil]): one container per 4 bytes beyond the three.
WRITE_SET_BYTES_PER_CONTAINER = 4
# What a decoded change of a write set holds beyond its key's and value's bytes while a run
# waits for a proof (the bytes objects' headers, the dict's slot): counted in the block's
# size, or a peer sending many tiny changes makes the node hold some 10 times what it counts.
CHANGE_HELD_BYTES = 160


@dataclass(frozen=True, slots=True, kw_only=True)
class FetchedBlock:
    """A certified block, with the receipts (their canonical encodings, by index) and writes a
    peer says it produced: unchecked until a digest a quorum signed vouches for them; both None
    if the peer kept none."""

    certified: CertifiedBlock
    receipts: tuple[bytes, ...] | None
    writes: Writes | None
    size: int  # bytes served of what is kept: block, certificate, and receipts and writes if any


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckpointProof:
    """2f+1 validators signed that the state after block `seq` (hash `block_hash`) has digest
    `state_digest`; `raw` is the proof as served, kept to serve it on."""

    seq: int
    block_hash: bytes
    state_digest: bytes
    raw: bytes
    votes: tuple[Checkpoint, ...]  # the signed checkpoints `raw` holds, by sender


@dataclass(frozen=True, slots=True, kw_only=True)
class HistoryAnswer:
    blocks: list[FetchedBlock]
    proofs: list[CheckpointProof]  # ascending seq, each within the blocks' heights
    # Bytes of the blocks and certificates: what their certificates vouch for as they come,
    # unlike receipts and writes, which a peer could pad with anything until a proof is due.
    certified_bytes: int


# -- serving --------------------------------------------------------------------------------


def encode_history(rows: Sequence[HistoryRow], proofs: Sequence[tuple[int, bytes]]) -> bytes:
    """The /peer/history answer for `rows` (consecutive heights), cut at FETCH_BYTES_MAX, with
    the proofs of `proofs` that fall within the heights it carries."""
    blocks: list[list[Any]] = []
    size = 0
    for row in rows:
        size += row.size
        if blocks and size > FETCH_BYTES_MAX:
            break
        blocks.append([row.block, row.certificate, row.receipts, row.writes])
    last = rows[len(blocks) - 1].height if blocks else 0
    return encode(
        {
            "blocks": blocks,
            "checkpoints": [[seq, proof] for seq, proof in proofs if seq <= last],
        }
    )


def encode_proof(proof: Sequence[Checkpoint]) -> bytes:
    """A stable checkpoint's proof as stored and served: its signed checkpoint messages."""
    return encode([encode_message(checkpoint) for checkpoint in proof])


# -- checking -------------------------------------------------------------------------------


def verify_history(
    genesis: Genesis, raw: bytes, *, expect_height: int, prev_hash: bytes
) -> HistoryAnswer:
    """Decode and check a peer's /peer/history answer starting at `expect_height` on top of
    the block `prev_hash`; raise SyncError for anything that does not check out."""
    try:
        answer = decode(raw, containers_max=ANSWER_CONTAINERS_MAX)
    except LedgerError as exc:
        raise SyncError(f"history answer is not canonical msgpack: {exc}") from exc
    if not (
        isinstance(answer, dict)
        and set(answer) == {"blocks", "checkpoints"}
        and isinstance(answer["blocks"], list)
        and isinstance(answer["checkpoints"], list)
    ):
        raise SyncError("history answer must be a map with lists 'blocks' and 'checkpoints'")
    blocks: list[FetchedBlock] = []
    certified_bytes = 0
    for item in answer["blocks"]:
        if not (isinstance(item, list) and len(item) == 4):
            raise SyncError("each history entry must be [block, certificate, receipts, writes]")
        certified = verify_entry(
            genesis, item[0], item[1], expect_height=expect_height, prev_hash=prev_hash
        )
        size = len(item[0]) + len(item[1])
        certified_bytes += size
        receipts: tuple[bytes, ...] | None = None
        writes: Writes | None = None
        if item[3] is not None:
            writes, shadowed = decode_write_set(item[3], height=certified.height)
            receipts = _receipts(certified, item[2], shadowed)
            size += len(item[3]) + sum(map(len, item[2])) + CHANGE_HELD_BYTES * len(writes)
        blocks.append(
            FetchedBlock(certified=certified, receipts=receipts, writes=writes, size=size)
        )
        expect_height += 1
        prev_hash = certified.hash
    # Where the proofs are before what they say: each costs signature checks, so no more of
    # them than blocks (copies of one proof would cost a check per validator each).
    top = expect_height - 1
    low = top - len(blocks)
    seqs: list[Any] = [
        item[0] if isinstance(item, list) and len(item) == 2 else None
        for item in answer["checkpoints"]
    ]
    if any(type(seq) is not int or not low < seq <= top for seq in seqs) or seqs != sorted(
        set(seqs)
    ):
        raise SyncError(
            "checkpoint proofs must be [seq, proof] pairs, ascending and within the blocks served"
        )
    proofs = [verify_proof(genesis, item) for item in answer["checkpoints"]]
    return HistoryAnswer(blocks=blocks, proofs=proofs, certified_bytes=certified_bytes)


def decode_write_set(raw: Any, *, height: int) -> tuple[Writes, dict[int, bytes]]:
    """A write-set blob's writes (key -> value, None deletes) and extra receipts by index."""
    where = f"write set of block {height}"
    if not isinstance(raw, bytes):
        raise SyncError(f"{where} must be msgpack bytes")
    try:
        value = decode(raw, containers_max=3 + len(raw) // WRITE_SET_BYTES_PER_CONTAINER)
    except LedgerError as exc:
        raise SyncError(f"{where} is not canonical msgpack: {exc}") from exc
    if not (isinstance(value, list) and len(value) == 2):
        raise SyncError(f"{where} must be [changes, receipts]")
    changes, extra = value
    if not isinstance(changes, list) or not isinstance(extra, list):
        raise SyncError(f"{where} must be [changes, receipts]")
    writes: Writes = {}
    previous = b""
    for change in changes:
        if not (isinstance(change, list) and len(change) == 2):
            raise SyncError(f"{where}: each change is [key, value or nil]")
        key, new = change
        if not isinstance(key, bytes) or not (new is None or isinstance(new, bytes)):
            raise SyncError(f"{where}: keys are bytes, values bytes or nil")
        if writes and key <= previous:
            raise SyncError(f"{where}: keys must be strictly ascending")
        writes[key] = new
        previous = key
    shadowed: dict[int, bytes] = {}
    for pair in extra:
        if not (
            isinstance(pair, list)
            and len(pair) == 2
            and isinstance(pair[0], int)
            and isinstance(pair[1], bytes)
            and pair[0] not in shadowed
        ):
            raise SyncError(f"{where}: each extra receipt is [distinct index, receipt]")
        shadowed[pair[0]] = pair[1]
    return writes, shadowed


def _receipts(
    certified: CertifiedBlock, held: Any, shadowed: dict[int, bytes]
) -> tuple[bytes, ...]:
    """One receipt encoding per transaction, in order: the shadowed ones at their indices, the
    held ones filling the rest. They are not decoded here: the digest they chain to vouches
    for them, or they are not used."""
    count = len(certified.tx_ids)
    if (
        not isinstance(held, list)
        or len(held) + len(shadowed) != count
        or any(not 0 <= index < count for index in shadowed)
        or not all(isinstance(receipt, bytes) for receipt in held)
    ):
        raise SyncError(
            f"block {certified.height} has {count} transactions; the peer sent "
            f"{len(held) if isinstance(held, list) else 'no list of'} receipts "
            f"and {len(shadowed)} extra ones"
        )
    pending = iter(held)
    return tuple(shadowed[index] if index in shadowed else next(pending) for index in range(count))


def verify_proof(genesis: Genesis, item: Any) -> CheckpointProof:
    """Check a [seq, proof] pair: a quorum of distinct validators signed one checkpoint.

    Its shape first, signatures last: a peer could otherwise stuff a proof with copies of one
    validly signed vote (its own), each costing a signature check on the node's event loop
    before the duplicates refused it (some 300,000 in an answer of HISTORY_BYTES_MAX). So at
    most one check per validator."""
    if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], int)):
        raise SyncError("each checkpoint entry must be [seq, proof]")
    seq, raw = item
    if not isinstance(raw, bytes):
        raise SyncError(f"checkpoint proof for {seq} must be msgpack bytes")
    try:
        wires = decode(raw, containers_max=1)  # a list of messages' bytes
        if not (isinstance(wires, list) and all(isinstance(w, bytes) for w in wires)):
            raise SyncError(f"checkpoint proof for {seq} must be a list of messages")
        if len(wires) > genesis.n:
            raise SyncError(
                f"checkpoint proof for {seq} holds {len(wires)} messages; there are "
                f"{genesis.n} validators"
            )
        tx_bytes_max = genesis.params.tx_bytes_max
        votes = [decode_message(wire, tx_bytes_max=tx_bytes_max) for wire in wires]
    except (LedgerError, ConsensusError) as exc:
        raise SyncError(f"checkpoint proof for {seq} does not check out: {exc}") from exc
    checkpoints = [vote for vote in votes if isinstance(vote, Checkpoint)]
    if len(checkpoints) != len(votes):
        raise SyncError(f"checkpoint proof for {seq} holds a non-checkpoint message")
    signed = {(c.seq, c.block_hash, c.state_digest) for c in checkpoints}
    senders = {c.sender for c in checkpoints}
    quorum = quorum_size(genesis.n)
    if len(signed) != 1 or len(senders) != len(checkpoints) or len(senders) < quorum:
        raise SyncError(
            f"checkpoint proof for {seq} needs {quorum} distinct validators signing one "
            f"checkpoint; it has {len(senders)} signers of {len(signed)} different ones"
        )
    ((signed_seq, block_hash, state_digest),) = signed
    if signed_seq != seq:
        raise SyncError(f"checkpoint proof for {seq} is signed for seq {signed_seq}")
    try:
        for checkpoint in checkpoints:
            verify_signature(checkpoint, genesis.chain_id, genesis.validator_keys)
    except ConsensusError as exc:
        raise SyncError(f"checkpoint proof for {seq} does not check out: {exc}") from exc
    return CheckpointProof(
        seq=seq,
        block_hash=block_hash,
        state_digest=state_digest,
        raw=raw,
        votes=tuple(sorted(checkpoints, key=lambda checkpoint: checkpoint.sender)),
    )


def stored_stable(genesis: Genesis, seq: int, raw: bytes) -> StableCheckpoint:
    """The stable checkpoint a node kept the proof of (Storage.put_checkpoint_proof), checked as
    a peer's is: the replica resends it after a restart. StorageError if it does not check out
    (the database was damaged)."""
    try:
        proof = verify_proof(genesis, [seq, raw])
    except SyncError as exc:
        raise StorageError(f"the stored {exc}; the database is damaged") from exc
    return StableCheckpoint(
        seq=proof.seq,
        block_hash=proof.block_hash,
        state_digest=proof.state_digest,
        proof=proof.votes,
    )
