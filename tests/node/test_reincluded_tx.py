"""A transaction included in more than one block: the hash finds the inclusion that counts.

A transaction that fails an admission gate of the runtime (unknown or suspended sender, a nonce
ahead of or behind the sender's next) changes nothing, not even its nonce, so a faulty primary
can put it in a block early and a later block can include it again and run it. The hash then
finds the later inclusion (it used the nonce; at most one ever does), each block still shows the
receipt it produced, admission takes the same bytes again while no inclusion used their nonce,
and a client waiting for the transaction waits past a receipt that did not settle it. A node
that rebuilt the blocks from fetched write sets ends with the same rows as one that executed
them, and a commit cut short (an error, a crash) replays to the same rows.

Blocks are built by hand and executed by the real runtime on a real Storage (or a real Node).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from consensus.messages import sign_checkpoint
from contracts.receipt import Receipt
from contracts.runtime import Runtime
from ledger.block import Block
from ledger.crypto import KeyPair
from ledger.genesis import Genesis
from ledger.tx import Transaction
from node.catchup import TransferStats
from node.client import NodeClient
from node.executor import execute_and_store
from node.history import encode_proof
from node.service import Node
from node.storage import Storage
from tests.node.conftest import Client, Setup, certify, next_block
from tests.node.transfer.chain import SETUP, Target, catch_up_from, drop_write_sets, peer_app

AHEAD = "is ahead of the next nonce"
REPO = Path(__file__).resolve().parents[2]


def _tx(
    keys: KeyPair, nonce: int, *, qty: int = 1, method: str = "receive", genesis: Genesis
) -> Transaction:
    """An inventory transaction of `keys`'s; method "nope" passes the gates and then fails."""
    return Transaction.create(
        keys,
        chain_id=genesis.chain_id,
        nonce=nonce,
        contract="inventory",
        method=method,
        args={"item": "steel", "location": "main", "qty": qty},
    )


def _store(setup: Setup, storage: Storage, txs: Sequence[Transaction]) -> Block:
    """Execute a block of `txs` on top of the head and store it."""
    block = next_block(setup, storage, txs)
    execute_and_store(Runtime.default(), storage, setup.genesis, block, certify(setup, block))
    return block


def _new_chain(setup: Setup, path: Path) -> Storage:
    runtime = Runtime.default()
    storage = Storage(path)
    storage.initialise(
        genesis_hash=setup.genesis.hash,
        writes=runtime.genesis_writes(setup.genesis),
        digest=runtime.genesis_digest(setup.genesis),
        time_ms=setup.genesis.genesis_time_ms,
    )
    return storage


def _supplier(nonce: int, **fields: Any) -> Transaction:
    return _tx(SETUP.identities["supplier"], nonce, genesis=SETUP.genesis, **fields)


def _receipts_by_block(storage: Storage) -> list[list[Receipt | None]]:
    blocks = [storage.block(height) for height in range(1, storage.head().height + 1)]
    return [
        storage.block_receipts(stored.block.height, stored.block)
        for stored in blocks
        if stored is not None
    ]


def _rows(storage: Storage) -> dict[bytes, tuple[int, int, bytes]]:
    """(height, index, receipt) of the row found by hash for every transaction stored."""
    hashes: list[bytes] = []
    for height in range(1, storage.head().height + 1):
        stored = storage.block(height)
        assert stored is not None
        hashes.extend(tx.hash for tx in stored.block.txs)
    return {h: (r.height, r.index, r.receipt) for h, r in storage._tx_rows(hashes).items()}


def _where(storage: Storage, tx: Transaction) -> tuple[int, int, bool]:
    receipt = storage.receipt(tx.hash)
    assert receipt is not None
    return receipt.height, receipt.index, receipt.ok


# -- storage ----------------------------------------------------------------------------------


def test_a_transaction_that_failed_a_gate_is_found_where_it_later_succeeded(
    tmp_path: Path,
) -> None:
    path = tmp_path / "chain.sqlite"
    storage = _new_chain(SETUP, path)
    early = _supplier(1)
    try:
        _store(SETUP, storage, [early])  # before its turn: fails the nonce gate, uses nothing
        _store(SETUP, storage, [_supplier(0), early])
        assert _where(storage, early) == (2, 1, True)
        assert storage.tx_succeeded(early.hash) is True
        first, second = _receipts_by_block(storage)
        # Each block still shows the receipt it produced, at its own height and index.
        assert first[0] is not None and (first[0].height, first[0].index) == (1, 0)
        assert not first[0].ok and AHEAD in (first[0].error or "")
        assert [(r.height, r.index, r.ok) for r in second if r is not None] == [
            (2, 0, True),
            (2, 1, True),
        ]
        rows, by_block = _rows(storage), _receipts_by_block(storage)
    finally:
        storage.close()
    reopened = Storage(path)
    try:
        assert _where(reopened, early) == (2, 1, True)
        assert _rows(reopened) == rows and _receipts_by_block(reopened) == by_block
    finally:
        reopened.close()


def test_an_inclusion_that_failed_past_the_gates_counts_for_it_used_the_nonce(
    tmp_path: Path,
) -> None:
    storage = _new_chain(SETUP, tmp_path / "chain.sqlite")
    broken = _supplier(1, method="nope")  # routing fails only once the gates passed
    try:
        _store(SETUP, storage, [broken])
        _store(SETUP, storage, [_supplier(0), broken])
        receipt = storage.receipt(broken.hash)
        assert receipt is not None and (receipt.height, receipt.index) == (2, 1)
        assert not receipt.ok and "has no method 'nope'" in (receipt.error or "")
        assert storage.tx_succeeded(broken.hash) is False
        first = _receipts_by_block(storage)[0][0]
        assert first is not None and first.height == 1 and AHEAD in (first.error or "")
    finally:
        storage.close()


def test_a_later_inclusion_that_failed_a_gate_leaves_the_row_where_it_was(
    tmp_path: Path,
) -> None:
    storage = _new_chain(SETUP, tmp_path / "chain.sqlite")
    tx = _supplier(0)
    try:
        _store(SETUP, storage, [tx])
        _store(SETUP, storage, [tx])  # again (as after a view change): its nonce is used
        assert _where(storage, tx) == (1, 0, True)
        again = _receipts_by_block(storage)[1][0]
        assert again is not None and (again.height, again.index, again.ok) == (2, 0, False)
        assert "nonce 0 already used" in (again.error or "")
    finally:
        storage.close()


@pytest.mark.parametrize("rival_method", ["receive", "nope"])
def test_a_transaction_whose_nonce_another_one_used_keeps_its_row(
    tmp_path: Path, rival_method: str
) -> None:
    # The sender signed two transactions with nonce 1; the rival used it (succeeding, or failing
    # past the gates), so the first one's second inclusion failed a gate again.
    storage = _new_chain(SETUP, tmp_path / "chain.sqlite")
    early = _supplier(1)
    rival = _supplier(1, qty=2, method=rival_method)
    try:
        _store(SETUP, storage, [early])
        _store(SETUP, storage, [_supplier(0), rival, early])
        assert _where(storage, early) == (1, 0, False)
        assert _where(storage, rival) == (2, 1, rival_method == "receive")
        again = _receipts_by_block(storage)[1][2]
        assert again is not None and "nonce 1 already used" in (again.error or "")
    finally:
        storage.close()


class _Crash(Exception):
    pass


def test_a_commit_that_fails_midway_changes_no_row_and_is_stored_whole_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = _new_chain(SETUP, tmp_path / "chain.sqlite")
    early = _supplier(1)
    try:
        _store(SETUP, storage, [early])
        before = _rows(storage), _receipts_by_block(storage), storage.history_range(1, 1)
        block = next_block(SETUP, storage, [_supplier(0), early])

        def crash(writes: object) -> None:
            raise _Crash("the disk went away")

        # The state writes come after the rows moved and the first block's blob was rewritten.
        monkeypatch.setattr(storage, "_apply_writes", crash)
        with pytest.raises(_Crash), storage.batch():
            execute_and_store(
                Runtime.default(), storage, SETUP.genesis, block, certify(SETUP, block)
            )
        monkeypatch.undo()
        assert storage.head().height == 1
        assert (_rows(storage), _receipts_by_block(storage), storage.history_range(1, 1)) == before
        assert early.hash in storage._recent
        execute_and_store(Runtime.default(), storage, SETUP.genesis, block, certify(SETUP, block))
        assert _where(storage, early) == (2, 1, True)
        assert _receipts_by_block(storage)[0][0] == before[1][0][0]
    finally:
        storage.close()


_CRASHING_COMMIT = """
import os, sys
from pathlib import Path
from contracts.runtime import Runtime
from ledger.block import Block
from ledger.certificate import CommitCertificate
from node.executor import execute_and_store
from node.storage import Storage
from tests.node.transfer.chain import SETUP

path, block, certificate, tx_hash = sys.argv[1:]
storage = Storage(Path(path))
with storage.batch():
    execute_and_store(
        Runtime.default(), storage, SETUP.genesis,
        Block.from_wire(Path(block).read_bytes()),
        CommitCertificate.from_wire(Path(certificate).read_bytes()),
    )
    receipt = storage.receipt(bytes.fromhex(tx_hash))
    print(receipt.height, receipt.ok, flush=True)
    os._exit(0)  # the process dies before its batch commits
"""


def test_a_batch_a_crash_cut_short_replays_to_the_rows_of_an_uninterrupted_commit(
    tmp_path: Path,
) -> None:
    early = _supplier(1)
    reference = _new_chain(SETUP, tmp_path / "reference.sqlite")
    path = tmp_path / "chain.sqlite"
    crashed = _new_chain(SETUP, path)
    try:
        for storage in (reference, crashed):
            _store(SETUP, storage, [early])
        block = next_block(SETUP, crashed, [_supplier(0), early])
        certificate = certify(SETUP, block)
        (tmp_path / "block").write_bytes(block.to_wire())
        (tmp_path / "certificate").write_bytes(certificate.to_wire())
        before = _rows(crashed), crashed.history_range(1, 1)
        crashed.close()
        child = subprocess.run(
            [
                sys.executable,
                "-c",
                _CRASHING_COMMIT,
                str(path),
                str(tmp_path / "block"),
                str(tmp_path / "certificate"),
                early.hash.hex(),
            ],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert child.returncode == 0, child.stderr
        assert child.stdout.split() == ["2", "True"]  # it got as far as the new row
        crashed = Storage(path)
        assert crashed.head().height == 1
        assert (_rows(crashed), crashed.history_range(1, 1)) == before
        # Restart replay: the block is executed again, as it would be after a crash.
        execute_and_store(Runtime.default(), crashed, SETUP.genesis, block, certificate)
        _store(SETUP, reference, [_supplier(0), early])
        assert _rows(crashed) == _rows(reference)
        assert _receipts_by_block(crashed) == _receipts_by_block(reference)
        assert crashed.history_range(1, 2) == reference.history_range(1, 2)
    finally:
        reference.close()
        crashed.close()


# -- catching up ------------------------------------------------------------------------------


def _source_chain(path: Path) -> tuple[Storage, list[Transaction]]:
    """Ten blocks with checkpoint proofs at 4 and 8 (what a catching-up node checks) in which
    transactions come before their turn and again later: the later inclusion succeeds within
    the checked blocks (2), after them (9), and fails past the gates after them (10)."""
    storage = _new_chain(SETUP, path)
    early, later, broken = _supplier(1), _supplier(4), _supplier(5, method="nope")
    plan: list[list[Transaction]] = [
        [early],
        [_supplier(0), early],
        [later],
        [_supplier(2), _supplier(3), broken],
        [],
        [],
        [],
        [],
        [later],
        [broken],
    ]
    runtime = Runtime.default()
    for txs in plan:
        block = next_block(SETUP, storage, txs)
        result = execute_and_store(runtime, storage, SETUP.genesis, block, certify(SETUP, block))
        if block.height % SETUP.genesis.params.checkpoint_interval == 0:
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
    return storage, [early, later, broken]


@pytest.mark.parametrize("how", ["from write sets", "executing"])
async def test_a_node_catching_up_ends_with_the_rows_of_one_that_executed(
    tmp_path: Path, how: str
) -> None:
    source, repeated = _source_chain(tmp_path / "source.sqlite")
    runtime = Runtime.default()
    target = Target(
        storage=_new_chain(SETUP, tmp_path / "target.sqlite"),
        runtime=runtime,
        stats=TransferStats(),
    )
    app = peer_app(source, None if how == "from write sets" else drop_write_sets)
    try:
        async with aiohttp.ClientSession() as session:
            applied = await catch_up_from(session, target, app)
        assert applied == source.head().height == 10
        if how == "from write sets":
            assert (target.stats.blocks_checked, target.stats.blocks_executed) == (8, 2)
        else:
            assert target.stats.blocks_checked == 0
        assert [_where(source, tx) for tx in repeated] == [
            (2, 1, True),
            (9, 0, True),
            (10, 0, False),
        ]
        assert _rows(target.storage) == _rows(source)
        assert _receipts_by_block(target.storage) == _receipts_by_block(source)
        # What it stored it serves on alike, the receipts its blobs keep included.
        assert target.storage.history_range(1, 10) == source.history_range(1, 10)
    finally:
        target.storage.close()
        source.close()


# -- the node: API, admission, a waiting client -----------------------------------------------


def _execute(node: Node, setup: Setup, txs: Sequence[Transaction]) -> Block:
    """Commit a block of `txs` through the node's own path for executed blocks (mempool,
    commit feed, waiters)."""
    block = next_block(setup, node.storage, txs)
    node._execute(block, certify(setup, block))
    return block


def _supplier_of(setup: Setup, nonce: int, **fields: Any) -> Transaction:
    return _tx(setup.identities["supplier"], nonce, genesis=setup.genesis, **fields)


async def _json(client: Client, path: str) -> Any:
    response = await client.get(path)
    assert response.status == 200, await response.text()
    return await response.json()


async def test_the_api_shows_the_inclusion_that_counts_and_each_block_its_own_receipt(
    client: Client,
    node: Node,
    setup: Setup,
) -> None:
    early = _supplier_of(setup, 1)
    _execute(node, setup, [early])
    answer = await _json(client, f"/tx/{early.hash.hex()}")
    assert (answer["height"], answer["receipt"]["ok"], answer["settled"]) == (1, False, False)
    _execute(node, setup, [_supplier_of(setup, 0), early])
    answer = await _json(client, f"/tx/{early.hash.hex()}")
    assert (answer["height"], answer["receipt"]["index"], answer["receipt"]["ok"]) == (2, 1, True)
    assert answer["settled"] is True and answer["tx"]["hash"] == early.hash.hex()
    first = (await _json(client, "/blocks/1"))["txs"][0]["receipt"]
    assert (first["height"], first["index"], first["ok"]) == (1, 0, False)
    assert AHEAD in first["error"]
    second = (await _json(client, "/blocks/2"))["txs"][1]["receipt"]
    assert (second["height"], second["index"], second["ok"]) == (2, 1, True)


async def test_admission_takes_again_a_transaction_no_inclusion_used_the_nonce_of(
    client: Client,
    node: Node,
    setup: Setup,
) -> None:
    early = _supplier_of(setup, 1)
    broken = _supplier_of(setup, 2, method="nope")
    _execute(node, setup, [early, broken])  # both before their turn
    _execute(node, setup, [_supplier_of(setup, 0)])
    headers = {"Content-Type": "application/msgpack"}
    # Its nonce is due now, and the same bytes are the only ones the sender can sign for it.
    response = await client.post("/tx", data=early.to_wire(), headers=headers)
    assert response.status == 202, await response.text()
    assert early.hash in node.mempool
    _execute(node, setup, [early, broken])  # broken fails past the gates: its nonce is used
    assert _where(node.storage, early) == (3, 0, True)
    for done, refusal in ((early, "is already known"), (broken, "nonce 2 already used")):
        response = await client.post("/tx", data=done.to_wire(), headers=headers)
        assert response.status == 409
        assert refusal in (await response.json())["error"]
    answer = await _json(client, f"/tx/{broken.hash.hex()}")
    assert (answer["height"], answer["receipt"]["ok"], answer["settled"]) == (3, False, True)


async def test_a_waiting_client_waits_past_a_receipt_that_did_not_use_the_nonce(
    client: Client,
    node: Node,
    setup: Setup,
) -> None:
    early = _supplier_of(setup, 1)
    _execute(node, setup, [early])
    async with NodeClient(str(client.make_url(""))) as node_client:
        # With nothing more committed, the deadline returns the receipt as it stands.
        answer = await node_client.wait_committed(early.hash.hex(), 0.2)
        assert (answer["height"], answer["settled"]) == (1, False)
        waiting = asyncio.ensure_future(node_client.wait_committed(early.hash.hex(), 30))
        deadline = asyncio.get_running_loop().time() + 10
        # Until the node holds the request, waiting for the next commit.
        while not waiting.done() and node.commit_feed._changed is None:
            assert asyncio.get_running_loop().time() < deadline, "the request never arrived"
            await asyncio.sleep(0.01)
        _execute(node, setup, [_supplier_of(setup, 0), early])
        answer = await asyncio.wait_for(waiting, 30)
    assert (answer["height"], answer["receipt"]["ok"], answer["settled"]) == (2, True, True)


def _answers_app(answers: list[dict[str, Any]], asked: list[int]) -> web.Application:
    """A node that answers GET /tx/{hash} with `answers` in turn (the last one from then on),
    each after the wait it was asked for if it is unsettled, as a node's answer is."""

    async def get_tx(request: web.Request) -> web.Response:
        answer = answers[min(len(asked), len(answers) - 1)]
        asked.append(int(request.query.get("wait_ms", "0")))
        if not answer.get("settled", True) and len(asked) >= len(answers):
            await asyncio.sleep(asked[-1] / 1000)
        return web.json_response(answer)

    app = web.Application()
    app.router.add_get("/tx/{hash}", get_tx)
    return app


def _committed(height: int, *, ok: bool, settled: bool | None) -> dict[str, Any]:
    answer: dict[str, Any] = {"status": "committed", "height": height, "receipt": {"ok": ok}}
    if settled is not None:
        answer["settled"] = settled
    return answer


@pytest.mark.parametrize(
    ("answers", "timeout_s", "expected", "requests"),
    [
        # Unsettled twice (each node's wait ran out), then the later inclusion settled it.
        (
            [
                _committed(1, ok=False, settled=False),
                _committed(1, ok=False, settled=False),
                _committed(2, ok=True, settled=True),
            ],
            30.0,
            2,
            3,
        ),
        # Never settled: at the deadline the receipt is returned as it stands.
        ([_committed(1, ok=False, settled=False)], 0.2, 1, None),
        # A node from before the flag: its answer is taken as it comes.
        ([_committed(1, ok=False, settled=None)], 30.0, 1, 1),
    ],
    ids=["settled later", "never settled", "a node from before the flag"],
)
async def test_a_client_waits_for_a_settled_answer_until_its_deadline(
    answers: list[dict[str, Any]], timeout_s: float, expected: int, requests: int | None
) -> None:
    asked: list[int] = []
    server = TestServer(_answers_app(answers, asked))
    await server.start_server()
    try:
        async with NodeClient(str(server.make_url(""))) as node_client:
            answer = await node_client.wait_committed("ab" * 32, timeout_s)
    finally:
        await server.close()
    assert answer["height"] == expected
    if requests is not None:
        assert len(asked) == requests
    assert all(0 < wait_ms <= 10_000 for wait_ms in asked)
