"""Empty certified blocks written straight to a node's storage, for tests of what reads them."""

from __future__ import annotations

from contracts.runtime import BlockResult
from ledger.block import Block
from ledger.certificate import CommitCertificate
from node.service import Node


def commit_empty_blocks(
    node: Node, views: list[int], *, start_ms: int = 1_700_000_001_000, interval_ms: int = 100
) -> None:
    """Store empty certified blocks, one per entry of `views`, `interval_ms` apart."""
    for offset, view in enumerate(views):
        height = node.storage.head().height + 1
        block = Block.build(
            chain_id=node.genesis.chain_id,
            height=height,
            prev_hash=node.storage.head().hash,
            state_height=height - 1,
            state_digest=node.storage.head().state_digest,
            proposer=view % 4,
            view=view,
            timestamp_ms=start_ms + interval_ms * offset,
            txs=[],
        )
        certificate = CommitCertificate(
            height=height, view=view, block_hash=block.hash, commits=((0, b"s" * 64),)
        )
        result = BlockResult(receipts=(), writes={}, state_digest=bytes([height % 256]) * 32)
        node.storage.commit_block(block, certificate, result)
