"""Executing committed blocks: the contracts runtime over the node's storage, then one database
transaction for the block, its receipts, events and state writes."""

from __future__ import annotations

from contracts.runtime import BlockContext, BlockResult, Runtime
from ledger.block import Block
from ledger.certificate import CommitCertificate
from ledger.genesis import Genesis
from node.errors import StorageError
from node.storage import Storage


def execute_and_store(
    runtime: Runtime,
    storage: Storage,
    genesis: Genesis,
    block: Block,
    certificate: CommitCertificate,
) -> BlockResult:
    """Execute `block` on top of the stored head and persist it atomically."""
    head = storage.head()
    if block.height != head.height + 1:
        raise StorageError(f"cannot execute block {block.height} on top of head {head.height}")
    if block.header.prev_hash != head.hash:
        raise StorageError(f"block {block.height} does not chain to the stored head")
    context = BlockContext(
        chain_id=genesis.chain_id,
        height=block.height,
        timestamp_ms=block.header.timestamp_ms,
        proposer=block.header.proposer,
    )
    result = runtime.execute_block(storage, context, block.txs, head.state_digest)
    storage.commit_block(block, certificate, result)
    return result
