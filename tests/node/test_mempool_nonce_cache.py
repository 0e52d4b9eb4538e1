"""The mempool's cache of committed nonces goes with a sender's last pending transaction.

`Mempool._committed_nonce` caches a sender's committed nonce only while the sender has pending
transactions, and `remove_committed` keeps it current or pops it. `_drop`, which
`expire_gapped` uses, removed the sender from the pool but left its cache entry. A node whose
pool is then empty stores blocks fetched with their write sets without calling
`remove_committed` (Node._store_transferred), so the sender's nonce moved on while the pool
still believed the old one: its next transaction was taken for one waiting behind a nonce used
long ago, never proposed, and after GAPPED_FROM_CLIENT_MAX of them the sender's clients were
refused outright.
"""

from __future__ import annotations

from pathlib import Path

from consensus.messages import sign_checkpoint
from ledger.tx import Transaction
from node.executor import execute_and_store
from node.history import encode_proof
from node.mempool import GAPPED_TTL_MS
from node.service import Node
from node.stages import clock_ms
from node.storage import Storage
from tests.node.conftest import certify, next_block
from tests.node.transfer.chain import PARAMS, SETUP, empty_target, node_catch_up, peer_app


def _supplier(nonce: int) -> Transaction:
    return Transaction.create(
        SETUP.identities["supplier"],
        chain_id=SETUP.genesis.chain_id,
        nonce=nonce,
        contract="inventory",
        method="receive",
        args={"item": "steel", "location": "main", "qty": 1},
    )


def _source_chain(path: Path, first: list[Transaction]) -> Storage:
    """Eight blocks, the first holding `first`, with checkpoint proofs at 4 and 8."""
    target = empty_target(path)
    runtime, storage = target.runtime, target.storage
    for txs in [first, *([] for _ in range(7))]:
        block = next_block(SETUP, storage, txs)
        result = execute_and_store(runtime, storage, SETUP.genesis, block, certify(SETUP, block))
        if block.height % PARAMS.checkpoint_interval == 0:
            proof = [
                sign_checkpoint(
                    SETUP.validator_keys[i],
                    SETUP.genesis.chain_id,
                    seq=block.height,
                    block_hash=block.hash,
                    state_digest=result.state_digest,
                    sender=i,
                )
                for i in range(3)
            ]
            storage.put_checkpoint_proof(block.height, encode_proof(proof))
    return storage


async def test_a_senders_next_tx_is_ready_after_its_gapped_ones_expired_and_blocks_came(
    tmp_path: Path,
) -> None:
    supplier = SETUP.identities["supplier"].public_key
    source = _source_chain(tmp_path / "source.sqlite", [_supplier(0), _supplier(1)])
    node = Node(
        name="node1",
        genesis=SETUP.genesis,
        keys=SETUP.validator_keys[1],
        storage=Storage(tmp_path / "chain.sqlite"),
    )
    try:
        # Nonce 1 reached this node, nonce 0 did not: it waits behind a gap, then expires.
        node.submit(_supplier(1).to_wire())
        node.expire_gapped(clock_ms() + GAPPED_TTL_MS)
        assert len(node.mempool) == 0
        # Meanwhile the chain moved on: nonces 0 and 1 committed; this node fetches the blocks.
        assert await node_catch_up(node, peer_app(source)) == 8
        assert node.runtime.account_nonce(node.storage, supplier) == 2
        # The sender's next transaction is ready: nothing is missing before it.
        nxt = _supplier(2)
        node.submit(nxt.to_wire())
        assert node.mempool.next_nonce(supplier) == 3, (
            f"the pool says nonce {node.mempool.next_nonce(supplier)} is missing"
        )
        assert node.mempool.cut(10) == [nxt]
    finally:
        node.storage.close()
        source.close()
