"""Executing committed blocks: the contracts runtime over the node's storage, then one database
transaction for the block, its receipts, events and state writes. A block fetched while catching
up may come with its result already checked (node/catchup.py); it is stored as it is."""

from __future__ import annotations

from contracts.runtime import BlockContext, BlockResult, Runtime
from ledger.block import Block, BlockHeader
from ledger.certificate import CommitCertificate
from ledger.genesis import Genesis
from node.errors import StorageError
from node.storage import BlockRecord, Head, Storage


def execute_and_store(
    runtime: Runtime,
    storage: Storage,
    genesis: Genesis,
    block: Block,
    certificate: CommitCertificate,
) -> BlockResult:
    """Execute `block` on top of the stored head and persist it atomically."""
    head = _check_follows(storage, block.header)
    context = BlockContext(
        chain_id=genesis.chain_id,
        height=block.height,
        timestamp_ms=block.header.timestamp_ms,
        proposer=block.header.proposer,
    )
    result = runtime.execute_block(storage, context, block.txs, head.state_digest)
    storage.commit_block(block, certificate, result)
    return result


def store_record(storage: Storage, header: BlockHeader, record: BlockRecord) -> None:
    """Persist a fetched block (its `header`) in the encoded form catching up built from a
    result checked against a digest a quorum signed (node/catchup.py), unexecuted."""
    _check_follows(storage, header)
    storage.commit_record(record)


def _check_follows(storage: Storage, header: BlockHeader) -> Head:
    head = storage.head()
    if header.height != head.height + 1:
        raise StorageError(f"cannot apply block {header.height} on top of head {head.height}")
    if header.prev_hash != head.hash:
        raise StorageError(f"block {header.height} does not chain to the stored head")
    return head
