"""The checks a backup makes on a pre-prepare's block, as pure functions raising InvalidMessage.

`check_header` needs only the message; `check_parent` needs the block accepted at seq-1, so it
runs once that is known (the replica buffers until then); `check_state_claim` needs the digests
of the states this replica executed. The application's own checks come after all of these.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from consensus.errors import InvalidBlock, InvalidMessage
from consensus.messages import PrePrepare
from ledger.block import Block, block_bytes
from ledger.errors import LedgerError


@dataclass(frozen=True, slots=True)
class Link:
    """What a child block needs of its parent."""

    hash: bytes
    timestamp_ms: int


def check_block_bytes(block: Block, limit: int | None) -> None:
    """Refuse a block holding more than `limit` bytes of transactions (None: no limit). A
    block too large for the messages that must carry it (a view change, a NEW-VIEW) would
    stop the chain in view changes no peer can take; see ledger.genesis.block_bytes_limit."""
    if limit is not None:
        size = block_bytes(block)
        if size > limit:
            raise InvalidBlock(
                f"block {block.height} holds {size} bytes of transactions, the chain allows {limit}"
            )


def check_header(
    pre_prepare: PrePrepare, *, chain_id: str, block_bytes_max: int | None = None
) -> None:
    """Header fields against the message, the block's size, and its own consistency (tx root,
    chain)."""
    header = pre_prepare.block.header
    expected = {
        "height": (header.height, pre_prepare.seq),
        "view": (header.view, pre_prepare.view),
        "proposer": (header.proposer, pre_prepare.sender),
        "chain_id": (header.chain_id, chain_id),
    }
    for name, (got, wanted) in expected.items():
        if got != wanted:
            raise InvalidMessage(f"pre-prepare block header {name} is {got!r}, expected {wanted!r}")
    if header.state_height >= header.height:
        raise InvalidMessage(
            f"block state_height {header.state_height} must be below its height {header.height}"
        )
    check_block_bytes(pre_prepare.block, block_bytes_max)
    try:
        pre_prepare.block.check_shape()
    except LedgerError as exc:
        raise InvalidMessage(f"pre-prepare for seq {pre_prepare.seq}: {exc}") from exc


def check_parent(block: Block, parent: Link) -> None:
    if block.header.prev_hash != parent.hash:
        raise InvalidMessage(
            f"prev_hash {block.header.prev_hash.hex()[:16]} is not the hash of block "
            f"{block.height - 1} ({parent.hash.hex()[:16]})"
        )
    if block.header.timestamp_ms < parent.timestamp_ms:
        raise InvalidMessage(
            f"timestamp {block.header.timestamp_ms} ms is before the parent's "
            f"{parent.timestamp_ms} ms"
        )


def check_state_claim(block: Block, executed_height: int, digests: Mapping[int, bytes]) -> None:
    """The header vouches for the proposer's state at state_height; check it if we can.

    A state we have not reached yet cannot be checked here; one older than the digests we keep
    is refused, since a proposer that far behind cannot vouch for anything useful.
    """
    height = block.header.state_height
    if height > executed_height:
        return
    ours = digests.get(height)
    if ours is None:
        raise InvalidMessage(f"state_height {height} is older than the history kept here")
    if block.header.state_digest != ours:
        raise InvalidMessage(
            f"state digest at height {height} is {block.header.state_digest.hex()[:16]}, "
            f"ours is {ours.hex()[:16]}"
        )
