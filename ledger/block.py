"""Block headers and blocks.

A header commits to its parent (prev_hash), its transactions (tx_root, a Merkle root of transaction
ids) and to the proposer's latest executed state when it cut the block (state_height and
state_digest): with several blocks in flight the proposer cannot know the state after the parent,
so every header names which state it vouches for and replicas check it when they get there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ledger.encoding import decode, encode
from ledger.errors import ValidationError
from ledger.fields import expect_bytes, expect_int, expect_list, expect_map, expect_str
from ledger.hashing import HASH_BYTES, merkle_root, sha256
from ledger.tx import NAME_LENGTH_MAX, TX_BYTES_MAX_DEFAULT, Transaction

ZERO_HASH = bytes(HASH_BYTES)
BLOCK_TXS_LIMIT = 100_000
# What a transaction adds to a block's encoding beyond its wire bytes (a msgpack bin header,
# at most 5 bytes): block sizes count len(wire) + TX_ENTRY_BYTES a transaction.
TX_ENTRY_BYTES = 5

_HEADER_KEYS = frozenset(
    {
        "chain_id",
        "height",
        "prev_hash",
        "tx_root",
        "state_height",
        "state_digest",
        "proposer",
        "view",
        "timestamp_ms",
    }
)
_BLOCK_KEYS = frozenset({"header", "txs"})


@dataclass(frozen=True, slots=True, kw_only=True)
class BlockHeader:
    chain_id: str
    height: int
    prev_hash: bytes
    tx_root: bytes
    state_height: int
    state_digest: bytes
    proposer: int
    view: int
    timestamp_ms: int
    hash: bytes = field(default=b"", repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "hash", sha256(encode(self.to_map())))

    def to_map(self) -> dict[str, Any]:
        return {
            "chain_id": self.chain_id,
            "height": self.height,
            "prev_hash": self.prev_hash,
            "tx_root": self.tx_root,
            "state_height": self.state_height,
            "state_digest": self.state_digest,
            "proposer": self.proposer,
            "view": self.view,
            "timestamp_ms": self.timestamp_ms,
        }

    @classmethod
    def from_map(cls, value: Any) -> BlockHeader:
        fields = expect_map(value, "block header", _HEADER_KEYS)
        header = cls(
            chain_id=expect_str(fields["chain_id"], "chain_id", length_max=NAME_LENGTH_MAX),
            height=expect_int(fields["height"], "height", minimum=1),
            prev_hash=expect_bytes(fields["prev_hash"], "prev_hash", length=HASH_BYTES),
            tx_root=expect_bytes(fields["tx_root"], "tx_root", length=HASH_BYTES),
            state_height=expect_int(fields["state_height"], "state_height"),
            state_digest=expect_bytes(fields["state_digest"], "state_digest", length=HASH_BYTES),
            proposer=expect_int(fields["proposer"], "proposer"),
            view=expect_int(fields["view"], "view"),
            timestamp_ms=expect_int(fields["timestamp_ms"], "timestamp_ms"),
        )
        if header.state_height >= header.height:
            raise ValidationError(
                f"state_height {header.state_height} must be below the block height {header.height}"
            )
        return header

    def summary(self) -> dict[str, Any]:
        return {
            "height": self.height,
            "hash": self.hash.hex(),
            "prev_hash": self.prev_hash.hex(),
            "tx_root": self.tx_root.hex(),
            "state_height": self.state_height,
            "state_digest": self.state_digest.hex(),
            "proposer": self.proposer,
            "view": self.view,
            "timestamp_ms": self.timestamp_ms,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Block:
    header: BlockHeader
    txs: tuple[Transaction, ...]
    # Set once check_shape passed: the block is immutable, so it passes again. A decoded block
    # is checked where it is decoded and again by the replica that admits its pre-prepare (the
    # consensus core cannot know where its blocks came from); the tx root alone costs about
    # 1 ms for 560 transactions.
    _shape_checked: bool = field(default=False, init=False, repr=False, compare=False)

    @property
    def hash(self) -> bytes:
        return self.header.hash

    @property
    def height(self) -> int:
        return self.header.height

    @classmethod
    def build(
        cls,
        *,
        chain_id: str,
        height: int,
        prev_hash: bytes,
        state_height: int,
        state_digest: bytes,
        proposer: int,
        view: int,
        timestamp_ms: int,
        txs: Sequence[Transaction],
    ) -> Block:
        header = BlockHeader(
            chain_id=chain_id,
            height=height,
            prev_hash=prev_hash,
            tx_root=tx_root(txs),
            state_height=state_height,
            state_digest=state_digest,
            proposer=proposer,
            view=view,
            timestamp_ms=timestamp_ms,
        )
        return cls(header=header, txs=tuple(txs))

    def to_map(self) -> dict[str, Any]:
        return {"header": self.header.to_map(), "txs": [tx.to_wire() for tx in self.txs]}

    def to_wire(self) -> bytes:
        return encode(self.to_map())

    @classmethod
    def from_map(cls, value: Any, *, tx_bytes_max: int = TX_BYTES_MAX_DEFAULT) -> Block:
        """Decode a block and check it is well formed: shapes, tx root, no duplicate txs.

        Transaction signatures are not checked here; that is the admitting node's job.
        """
        fields = expect_map(value, "block", _BLOCK_KEYS)
        header = BlockHeader.from_map(fields["header"])
        raw_txs = expect_list(fields["txs"], "block txs", length_max=BLOCK_TXS_LIMIT)
        txs = tuple(
            Transaction.from_wire(expect_bytes(raw, "block tx"), bytes_max=tx_bytes_max)
            for raw in raw_txs
        )
        block = cls(header=header, txs=txs)
        block.check_shape()
        return block

    @classmethod
    def from_wire(cls, data: bytes, *, tx_bytes_max: int = TX_BYTES_MAX_DEFAULT) -> Block:
        return cls.from_map(decode(data), tx_bytes_max=tx_bytes_max)

    def check_shape(self) -> None:
        if self._shape_checked:
            return
        if self.header.state_height >= self.header.height:
            raise ValidationError(
                f"state_height {self.header.state_height} must be below the block height "
                f"{self.header.height}"
            )
        if tx_root(self.txs) != self.header.tx_root:
            raise ValidationError("block tx_root does not match its transactions")
        hashes = {tx.hash for tx in self.txs}
        if len(hashes) != len(self.txs):
            raise ValidationError("block contains the same transaction twice")
        for tx in self.txs:
            if tx.chain_id != self.header.chain_id:
                raise ValidationError(
                    f"transaction {tx.hash.hex()[:16]} is for chain {tx.chain_id!r}, "
                    f"block is for {self.header.chain_id!r}"
                )
        object.__setattr__(self, "_shape_checked", True)


def block_bytes(block: Block) -> int:
    """The bytes of transactions `block` holds, as chain limits count them."""
    return sum(len(tx.wire) for tx in block.txs) + TX_ENTRY_BYTES * len(block.txs)


def tx_root(txs: Sequence[Transaction]) -> bytes:
    return merkle_root([tx.hash for tx in txs])
