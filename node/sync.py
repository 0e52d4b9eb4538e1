"""Certified blocks for peers catching up: the /peer/blocks answer and its offline checks.

A block fetched from a peer is trusted only through its commit certificate: 2f+1 validators'
commit signatures over its hash, checked against the genesis validator set, plus the hash chain
to the block before it. The certificate vouches for the whole block, so its transactions'
signatures are not checked one by one again, nor their bodies decoded with every check once
their ids match the certified header (`decode_certified_block`). A transaction's id covers its
body, not its signature: a peer could serve a certified block with a signature altered, and it
would be stored so; as with any block from a peer, the node does not re-check signatures.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgpack

from ledger.block import BLOCK_TXS_LIMIT, Block, BlockHeader
from ledger.certificate import CommitCertificate
from ledger.crypto import SIGNATURE_BYTES
from ledger.encoding import container_budget, decode, encode
from ledger.errors import LedgerError
from ledger.fields import expect_list, expect_map
from ledger.genesis import Genesis
from ledger.hashing import merkle_root, sha256
from ledger.tx import Transaction
from node.errors import NodeError

FETCH_BLOCKS_MAX = 200
FETCH_BYTES_MAX = 8 * 1024 * 1024
_BLOCK_KEYS = frozenset({"header", "txs"})
# A block is {"header": {...}, "txs": [bytes, ...]}: three lists and maps.
BLOCK_CONTAINERS = 3
# A transaction's wire is {"body": bytes, "signature": bytes}: one map.
_WIRE_CONTAINERS = 1


class SyncError(NodeError):
    """A peer served blocks (or history) that do not check out."""


class PeerUnavailable(NodeError):
    """A peer could not be asked (unreachable, timed out, or an error status)."""


class PeerBusy(PeerUnavailable):
    """A peer said to ask again later (429 or 503): not before `wait_s` seconds."""

    def __init__(self, message: str, *, wait_s: float) -> None:
        super().__init__(message)
        self.wait_s = wait_s


def encode_blocks(rows: Sequence[tuple[int, bytes, bytes]]) -> bytes:
    """The /peer/blocks answer: [[block wire, certificate wire], ...] up to FETCH_BYTES_MAX."""
    out: list[list[bytes]] = []
    size = 0
    for _, block, certificate in rows:
        size += len(block) + len(certificate)
        if out and size > FETCH_BYTES_MAX:
            break
        out.append([block, certificate])
    return encode(out)


def verify_blocks(
    genesis: Genesis, raw: bytes, *, expect_height: int, prev_hash: bytes
) -> list[tuple[Block, CommitCertificate]]:
    """Decode and check a /peer/blocks answer: consecutive heights from `expect_height`, each
    block certified by a quorum and chained to the previous one."""
    try:
        items = decode(raw)
    except LedgerError as exc:
        raise SyncError(f"blocks answer is not canonical msgpack: {exc}") from exc
    if not isinstance(items, list):
        raise SyncError("blocks answer must be a list")
    verified: list[tuple[Block, CommitCertificate]] = []
    for item in items:
        if not (isinstance(item, list) and len(item) == 2):
            raise SyncError("each block entry must be [block, certificate]")
        certified = verify_entry(
            genesis, item[0], item[1], expect_height=expect_height, prev_hash=prev_hash
        )
        verified.append((certified.block(), certified.certificate))
        expect_height += 1
        prev_hash = certified.hash
    return verified


def verify_entry(
    genesis: Genesis, block_raw: Any, certificate_raw: Any, *, expect_height: int, prev_hash: bytes
) -> CertifiedBlock:
    """Check one fetched block: well formed, at `expect_height`, certified by a quorum of the
    genesis validators, chained to `prev_hash`, for this chain."""
    try:
        certificate = CommitCertificate.from_wire(certificate_raw)
        certificate.verify(chain_id=genesis.chain_id, validators=genesis.validator_keys)
    except (LedgerError, TypeError) as exc:
        raise SyncError(f"certificate at height {expect_height} does not check out: {exc}") from exc
    block = decode_certified_block(block_raw, certificate)
    header = block.header
    if header.height != expect_height or certificate.height != expect_height:
        raise SyncError(f"expected height {expect_height}, got {header.height}")
    if header.prev_hash != prev_hash:
        raise SyncError(f"block {header.height} does not chain to the block before it")
    if header.chain_id != genesis.chain_id:
        raise SyncError(f"block {header.height} is for chain {header.chain_id!r}")
    return block


def blocks_query(query: Any, head_height: int) -> tuple[int, int]:
    """Parse and bound ?from=&to= of a /peer/blocks request."""
    try:
        start = int(query.get("from", "1"))
        end = int(query.get("to", str(start + FETCH_BLOCKS_MAX - 1)))
    except ValueError as exc:
        raise ValueError("from and to must be integers") from exc
    if start < 1 or end < start:
        raise ValueError("need 1 <= from <= to")
    return start, min(end, start + FETCH_BLOCKS_MAX - 1, head_height)


@dataclass(frozen=True, slots=True, kw_only=True)
class CertifiedBlock:
    """A fetched block its commit certificate vouches for, kept in the encoded form it came in:
    its header, its canonical encoding, and per transaction the id and the wire map. Catching up
    stores these bytes as they are; `block()` decodes the transactions when they are needed
    (to execute the block, or to take them out of a mempool)."""

    header: BlockHeader
    certificate: CommitCertificate
    wire: bytes  # the block's canonical encoding, as honest nodes store it
    tx_ids: tuple[bytes, ...]
    tx_parts: tuple[tuple[bytes, bytes, bytes], ...]  # (wire, body, signature) per transaction

    @property
    def height(self) -> int:
        return self.header.height

    @property
    def hash(self) -> bytes:
        return self.header.hash

    def block(self) -> Block:
        try:
            txs = tuple(
                _certified_tx(wire, body, signature, tx_id)
                for (wire, body, signature), tx_id in zip(self.tx_parts, self.tx_ids, strict=True)
            )
        except (msgpack.UnpackException, ValueError, TypeError, KeyError) as exc:
            # Unreachable unless a quorum certified a malformed transaction.
            raise SyncError(f"block {self.height}: a certified transaction is malformed") from exc
        return Block(header=self.header, txs=txs)


def decode_certified_block(raw: Any, certificate: CommitCertificate) -> CertifiedBlock:
    """Decode a block that `certificate` (checked) vouches for, trusting what it covers.

    The certificate covers the header's hash, the header the root of the transactions' ids, and
    an id is sha256 of the transaction's body. Each validator whose commit is in the certificate
    accepted the block only after decoding and checking every transaction in it, so once the ids
    match the root, the bodies are known to be canonical and well formed: they are kept as bytes
    here, and `CertifiedBlock.block()` reads them with plain msgpack, without the checks
    Transaction.from_wire repeats (which cost more than everything else a fetched transaction
    costs). The wire maps around the bodies are checked to be canonical, so the block stored is
    byte for byte the one honest nodes store; the signatures in them are not covered by the
    certificate, nor checked (see the docstring above).
    """
    if not isinstance(raw, bytes):
        raise SyncError(f"block {certificate.height} must come as msgpack bytes")
    try:
        fields = expect_map(decode(raw, containers_max=BLOCK_CONTAINERS), "block", _BLOCK_KEYS)
        header = BlockHeader.from_map(fields["header"])
        wires = expect_list(fields["txs"], "block txs", length_max=BLOCK_TXS_LIMIT)
    except (LedgerError, TypeError) as exc:
        raise SyncError(f"block {certificate.height} does not decode: {exc}") from exc
    if header.hash != certificate.block_hash:
        raise SyncError(f"certificate at height {header.height} is for another block")
    parts = tuple(_wire_parts(wire, header.height) for wire in wires)
    ids = tuple(sha256(body) for _, body, _ in parts)
    if merkle_root(ids) != header.tx_root:
        raise SyncError(f"block {header.height}: its transactions do not match its tx_root")
    return CertifiedBlock(
        header=header, certificate=certificate, wire=raw, tx_ids=ids, tx_parts=parts
    )


def _wire_parts(wire: Any, height: int) -> tuple[bytes, bytes, bytes]:
    """(wire, body, signature) of a transaction's wire map, which must be canonical. Read
    before the ids are checked against the certified tx_root, so within a budget: the map
    alone, its body and signature being bytes (see ledger.encoding.container_budget)."""
    try:
        outer = (
            msgpack.unpackb(wire, **container_budget(_WIRE_CONTAINERS))
            if isinstance(wire, bytes)
            else None
        )
    except (msgpack.UnpackException, ValueError, TypeError, RecursionError):
        outer = None
    if (
        type(outer) is not dict
        or list(outer) != ["body", "signature"]
        or type(outer["body"]) is not bytes
        or type(outer["signature"]) is not bytes
        or len(outer["signature"]) != SIGNATURE_BYTES
        or msgpack.packb(outer) != wire
    ):
        raise SyncError(f"block {height}: a transaction is not a canonical wire map")
    return wire, outer["body"], outer["signature"]


def _certified_tx(wire: bytes, body: bytes, signature: bytes, tx_id: bytes) -> Transaction:
    fields = msgpack.unpackb(body)
    return Transaction(
        chain_id=fields["chain_id"],
        sender=fields["sender"],
        nonce=fields["nonce"],
        contract=fields["contract"],
        method=fields["method"],
        args=fields["args"],
        signature=signature,
        body=body,
        hash=tx_id,
        wire=wire,
    )
