"""A committed transaction that failed a gate without using its nonce stays pending.

A faulty primary can put a transaction in a block before its turn (its nonce ahead of the
sender's next one): it fails one of the runtime's gates, changes nothing, not even the nonce, and
admission takes the same bytes again (tests/node/test_reincluded_tx.py). The node's mempool keeps
it when that block commits, so an honest primary proposes it when its turn comes, as if the
faulty primary had not touched it, without the sender submitting it again. What admission would
refuse now goes as before: a transaction whose nonce was used (it succeeded, failed past the
gates, or another one took the nonce) and one whose sender was suspended or removed.

The blocks are built by hand and committed through the real Node's paths (execution, catch-up),
and in an in-process cluster through real consensus, its primary proposing like a faulty one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from consensus.events import ProposeBatch
from consensus.messages import sign_checkpoint
from ledger.block import Block
from ledger.genesis import Params
from ledger.tx import Transaction
from node import service
from node.catchup import TransferStats
from node.errors import Rejection
from node.executor import execute_and_store
from node.history import encode_proof
from node.service import Node
from node.storage import Storage
from tests.node.conftest import Setup, certify, next_block
from tests.node.inproc import in_process_cluster, steel_receipt
from tests.node.transfer.chain import (
    PARAMS,
    SETUP,
    drop_write_sets,
    empty_target,
    node_catch_up,
    peer_app,
)

AHEAD = "is ahead of the next nonce"


def _tx(
    setup: Setup,
    who: str,
    nonce: int,
    *,
    contract: str = "inventory",
    method: str = "receive",
    args: dict[str, Any] | None = None,
) -> Transaction:
    return Transaction.create(
        setup.identities[who],
        chain_id=setup.genesis.chain_id,
        nonce=nonce,
        contract=contract,
        method=method,
        args=args if args is not None else {"item": "steel", "location": "main", "qty": 1},
    )


def _admin(setup: Setup, nonce: int, method: str, name: str) -> Transaction:
    return _tx(setup, "admin", nonce, contract="identity", method=method, args={"name": name})


def _execute(node: Node, setup: Setup, txs: Sequence[Transaction]) -> Block:
    """Commit a block of `txs` through the node's own path for executed blocks."""
    block = next_block(setup, node.storage, txs)
    node._execute(block, certify(setup, block))
    return block


def _receipt(node: Node, tx: Transaction) -> tuple[int, bool, str]:
    receipt = node.storage.receipt(tx.hash)
    assert receipt is not None
    return receipt.height, receipt.ok, receipt.error or ""


# -- the node's own commits -------------------------------------------------------------------


async def test_a_transaction_a_block_took_before_its_turn_stays_pending_until_its_turn(
    node: Node, setup: Setup
) -> None:
    supplier = setup.identities["supplier"].public_key
    early = _tx(setup, "supplier", 1)
    node.submit(early.to_wire())
    _execute(node, setup, [early])  # a faulty primary's block: the nonce gate fails
    height, ok, error = _receipt(node, early)
    assert (height, ok) == (1, False) and AHEAD in error
    assert early.hash in node.mempool
    assert node.mempool.pending_count(supplier) == 1
    assert node.mempool.next_nonce(supplier) == 0  # nonce 0 is still the sender's next
    assert node.mempool.cut(10) == []  # not its turn yet
    first = _tx(setup, "supplier", 0)
    node.submit(first.to_wire())
    assert node.mempool.next_nonce(supplier) == 2
    # What an honest primary's cutter takes now: the transaction at its turn.
    assert node.mempool.cut(10) == [first, early]
    _execute(node, setup, [first, early])
    assert _receipt(node, early)[:2] == (2, True)
    assert len(node.mempool) == 0 and node.mempool.next_nonce(supplier) == 2


async def test_a_transaction_kept_after_its_early_inclusion_goes_once_another_takes_its_nonce(
    node: Node, setup: Setup
) -> None:
    early = _tx(setup, "supplier", 1)
    rival = _tx(setup, "supplier", 1, args={"item": "steel", "location": "main", "qty": 2})
    node.submit(early.to_wire())
    _execute(node, setup, [early])
    assert early.hash in node.mempool
    _execute(node, setup, [_tx(setup, "supplier", 0), rival])  # the sender signed two for 1
    assert early.hash not in node.mempool and len(node.mempool) == 0
    with pytest.raises(Rejection, match="nonce 1 already used"):
        node.submit(early.to_wire())


async def test_an_early_transaction_that_later_fails_past_the_gates_is_removed(
    node: Node, setup: Setup
) -> None:
    # Admission cannot tell that the stock will be short; execution can, once the gates passed.
    short = _tx(setup, "planner", 1, method="reserve")
    node.submit(short.to_wire())
    _execute(node, setup, [short])
    assert short.hash in node.mempool
    _execute(node, setup, [_tx(setup, "planner", 0, method="reserve"), short])
    height, ok, error = _receipt(node, short)
    assert (height, ok) == (2, False) and AHEAD not in error  # failed, and used its nonce
    assert len(node.mempool) == 0
    with pytest.raises(Rejection, match="nonce 1 already used"):
        node.submit(short.to_wire())


@pytest.mark.parametrize(
    ("action", "refusal"),
    [("suspend", "identity supplier is suspended"), ("remove", "unknown sender")],
)
async def test_a_transaction_whose_sender_admission_now_refuses_is_removed(
    node: Node, setup: Setup, action: str, refusal: str
) -> None:
    # The gate fails without using the nonce, but admission would refuse the same bytes now:
    # keeping them would hold a place in the pool for a transaction that cannot run.
    early = _tx(setup, "supplier", 1)
    node.submit(early.to_wire())
    _execute(node, setup, [_admin(setup, 0, action, "supplier"), early])
    height, ok, error = _receipt(node, early)
    assert (height, ok) == (1, False) and refusal in error
    assert early.hash not in node.mempool and len(node.mempool) == 0
    with pytest.raises(Rejection, match=refusal):
        node.submit(early.to_wire())


async def test_what_is_kept_is_what_admission_takes_at_that_commit(
    node: Node, setup: Setup
) -> None:
    # Suspended when its block commits, the transaction goes; reinstated, its sender may send
    # the same bytes again, and admission takes them.
    early = _tx(setup, "supplier", 1)
    node.submit(early.to_wire())
    _execute(node, setup, [_admin(setup, 0, "suspend", "supplier"), early])
    assert early.hash not in node.mempool
    _execute(node, setup, [_admin(setup, 1, "reinstate", "supplier")])
    node.submit(early.to_wire())
    assert early.hash in node.mempool


# -- blocks a catching-up node applies --------------------------------------------------------


def _chain_with_an_early_inclusion(path: Path, early: Transaction) -> Storage:
    """Eight blocks, the first of which includes `early` before its turn, with the checkpoint
    proofs at 4 and 8 that let a catching-up node store them from their write sets."""
    target = empty_target(path)
    runtime, storage = target.runtime, target.storage
    for txs in [[early], *([] for _ in range(7))]:
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


@pytest.mark.parametrize("how", ["from write sets", "executing"])
async def test_a_node_catching_up_past_an_early_inclusion_keeps_the_transaction(
    tmp_path: Path, how: str
) -> None:
    early = _tx(SETUP, "supplier", 1)
    source = _chain_with_an_early_inclusion(tmp_path / "source.sqlite", early)
    node = Node(
        name="node1",
        genesis=SETUP.genesis,
        keys=SETUP.validator_keys[1],
        storage=Storage(tmp_path / "chain.sqlite"),
    )
    app = peer_app(source, None if how == "from write sets" else drop_write_sets)
    try:
        node.submit(early.to_wire())
        stats = TransferStats()
        assert await node_catch_up(node, app, stats=stats) == 8
        assert (stats.blocks_checked > 0) == (how == "from write sets")
        height, ok, error = _receipt(node, early)
        assert (height, ok) == (1, False) and AHEAD in error
        assert early.hash in node.mempool
        assert node.mempool.next_nonce(SETUP.identities["supplier"].public_key) == 0
    finally:
        node.storage.close()
        source.close()


# -- a cluster whose primary includes a transaction early -------------------------------------


async def _until(what: str, holds: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not holds():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.02)


def test_a_transaction_a_faulty_primary_took_early_commits_at_its_turn_without_a_resubmission(
    tmp_path: Path,
) -> None:
    with in_process_cluster(tmp_path, params=Params()) as cluster:
        nodes = cluster.nodes
        early = steel_receipt(cluster.identities, 1)
        first = steel_receipt(cluster.identities, 0)

        async def post(node: int, tx: Transaction) -> tuple[int, bytes]:
            status, _, body = await cluster.request(node, "POST", "/tx", body=tx.to_wire())
            return status, body

        async def scenario() -> None:
            status, body = await post(1, early)
            assert status == 202, body
            await _until(
                "the early transaction did not reach every mempool",
                lambda: all(early.hash in node.mempool for node in nodes),
                10,
            )
            # Validator 0, the primary, proposes it before its turn, as a faulty one could.
            nodes[0].feed(ProposeBatch(txs=(early,), now_ms=service.now_ms()))
            await cluster.wait_height(1, 15)
            for node in nodes:
                height, ok, error = _receipt(node, early)
                assert (height, ok) == (1, False) and AHEAD in error
            kept = [early.hash in node.mempool for node in nodes]
            status, body = await post(2, first)  # the sender's next; not `early` again
            assert status == 202, body
            await _until(
                f"the early transaction was not proposed at its turn (in the mempools: {kept})",
                lambda: all(node.storage.tx_succeeded(early.hash) for node in nodes),
                15,
            )
            assert kept == [True] * 4
            assert all(len(node.mempool) == 0 for node in nodes)

        cluster.run(scenario(), timeout_s=60)
