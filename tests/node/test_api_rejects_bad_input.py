"""Bad input to the client API gets a 4xx saying what was wrong, and nothing is stored."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientTimeout
from aiohttp.test_utils import TestClient, TestServer

from ledger.crypto import KeyPair
from ledger.encoding import encode
from ledger.tx import Transaction
from node import service
from node.api import create_app
from node.executor import execute_and_store
from node.openapi import TXS_PER_REQUEST_MAX
from node.service import ADMISSION_BACKLOG_MAX, Node
from node.storage import Storage
from tests.node.conftest import CHAIN_ID, Client, Setup, certify, next_block


def _tx(keys: KeyPair, *, nonce: int = 0, chain_id: str = CHAIN_ID, qty: int = 5) -> Transaction:
    return Transaction.create(
        keys,
        chain_id=chain_id,
        nonce=nonce,
        contract="inventory",
        method="receive",
        args={"item": "steel", "location": "main", "qty": qty},
    )


async def _post(client: Client, body: bytes) -> tuple[int, dict[str, Any]]:
    response = await client.post("/tx", data=body, headers={"Content-Type": "application/msgpack"})
    return response.status, await response.json()


def _nothing_stored(node: Node, mempool_before: int = 0) -> None:
    assert len(node.mempool) == mempool_before
    assert node.storage.head().height == 0


async def test_accepts_a_well_formed_transaction(
    client: Client,
    node: Node,
    setup: Setup,
) -> None:
    tx = _tx(setup.identities["supplier"])
    status, body = await _post(client, tx.to_wire())
    assert status == 202
    assert body["hash"] == tx.hash.hex()
    assert len(node.mempool) == 1
    response = await client.get(f"/tx/{tx.hash.hex()}")
    assert (await response.json())["status"] == "pending"


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        (b"\xc1not msgpack", 400, "malformed transaction"),
        (b"", 400, "empty body"),
        (encode([1, 2, 3]), 400, "must be a map"),
        (encode({"body": b"x", "signature": b"y" * 64, "extra": 1}), 400, "unknown field"),
        (
            encode({"body": encode({"chain_id": CHAIN_ID}), "signature": b"y" * 64}),
            400,
            "missing field",
        ),
    ],
)
async def test_rejects_malformed_bodies(
    client: Client,
    node: Node,
    body: bytes,
    status: int,
    fragment: str,
) -> None:
    got_status, got = await _post(client, body)
    assert got_status == status
    assert fragment in got["error"]
    _nothing_stored(node)


async def test_rejects_wrong_field_types(
    client: Client,
    node: Node,
    setup: Setup,
) -> None:
    keys = setup.identities["supplier"]
    fields = {
        "chain_id": CHAIN_ID,
        "sender": keys.public_key,
        "nonce": "zero",
        "contract": "inventory",
        "method": "receive",
        "args": {},
    }
    body = encode(fields)
    wire = encode({"body": body, "signature": bytes(64)})
    status, got = await _post(client, wire)
    assert status == 400
    assert "nonce must be an integer" in got["error"]
    _nothing_stored(node)


async def test_rejects_a_bad_signature(client: Client, node: Node, setup: Setup) -> None:
    tx = _tx(setup.identities["supplier"])
    forged = encode({"body": tx.body, "signature": bytes(64)})
    status, got = await _post(client, forged)
    assert status == 401
    assert "bad" in got["error"] and "signature" in got["error"]
    _nothing_stored(node)


async def test_rejects_an_unknown_sender(client: Client, node: Node) -> None:
    stranger = KeyPair.from_seed(b"\x77" * 32)
    status, got = await _post(client, _tx(stranger).to_wire())
    assert status == 403
    assert "not a registered identity" in got["error"]
    _nothing_stored(node)


async def test_rejects_a_wrong_chain_id(client: Client, node: Node, setup: Setup) -> None:
    status, got = await _post(client, _tx(setup.identities["supplier"], chain_id="other").to_wire())
    assert status == 400
    assert "is for chain 'other'" in got["error"]
    _nothing_stored(node)


async def test_rejects_a_replayed_transaction_and_a_reused_nonce(
    client: Client,
    node: Node,
    setup: Setup,
) -> None:
    keys = setup.identities["supplier"]
    first = _tx(keys, nonce=0)
    assert (await _post(client, first.to_wire()))[0] == 202
    status, got = await _post(client, first.to_wire())
    assert status == 409
    assert "already" in got["error"]
    status, got = await _post(client, _tx(keys, nonce=0, qty=6).to_wire())
    assert status == 409
    assert "nonce 0" in got["error"]
    _nothing_stored(node, mempool_before=1)


async def test_rejects_an_oversized_body(client: Client, node: Node) -> None:
    status, got = await _post(client, b"\x00" * (node.params.body_bytes_max + 1024))
    assert status == 413
    assert "too large" in got["error"]
    _nothing_stored(node)


async def test_rejects_a_transaction_over_the_size_limit(
    client: Client,
    node: Node,
    setup: Setup,
) -> None:
    tx = Transaction.create(
        setup.identities["supplier"],
        chain_id=CHAIN_ID,
        nonce=0,
        contract="inventory",
        method="receive",
        args={"note": "x" * 40_000},
    )
    status, got = await _post(client, tx.to_wire())
    assert status == 400
    assert "limit" in got["error"]
    _nothing_stored(node)


@pytest.mark.parametrize(
    ("path", "status", "fragment"),
    [
        ("/tx/zz", 400, "must be hex"),
        ("/tx/" + "ab" * 32, 404, "unknown"),
        ("/blocks/abc", 400, "an integer from 1 (the first block) to"),
        ("/blocks/0", 400, "an integer from 1 (the first block) to"),
        # More digits than int() converts:
        ("/blocks/" + "1" * 5000, 400, "an integer from 1 (the first block) to"),
        ("/blocks/99999999999999999999", 400, "an integer from 1 (the first block) to"),
        ("/blocks/5", 404, "no block at height 5"),
        ("/state/oracle/prediction/m1/" + "1" * 5000, 404, "oracle queries take"),
        ("/state/machines/m1/readings/" + "1" * 5000, 404, "machine"),
        ("/blocks?limit=-1", 400, "limit"),
        ("/state/nosuch", 404, "nosuch"),
        ("/accounts/12", 400, "32 bytes"),
    ],
)
async def test_bad_reads_answer_with_what_was_wrong(
    client: Client,
    path: str,
    status: int,
    fragment: str,
) -> None:
    response = await client.get(path)
    assert response.status == status
    assert fragment in (await response.json())["error"]


async def test_peer_batch_rejects_malformed_bodies(client: Client, node: Node) -> None:
    response = await client.post("/peer/batch", data=b"\xc1")
    assert response.status == 400
    response = await client.post("/peer/batch", data=encode({"messages": 1, "txs": []}))
    assert response.status == 400
    response = await client.post("/peer/batch", data=encode({"messages": [b"junk", 5], "txs": []}))
    assert response.status == 200
    assert node.counters.messages_rejected == 2


async def test_rejects_a_caller_without_the_role(
    client: Client,
    node: Node,
    setup: Setup,
) -> None:
    status, got = await _post(client, _tx(setup.identities["customer"]).to_wire())
    assert status == 403
    assert "needs role supplier or admin" in got["error"]
    _nothing_stored(node)


async def test_rejects_arguments_that_break_the_schema(
    client: Client,
    node: Node,
    setup: Setup,
) -> None:
    tx = Transaction.create(
        setup.identities["supplier"],
        chain_id=CHAIN_ID,
        nonce=0,
        contract="inventory",
        method="receive",
        args={"item": "steel", "location": "main", "qty": -4},
    )
    status, got = await _post(client, tx.to_wire())
    assert status == 400
    assert "qty" in got["error"]
    _nothing_stored(node)


# Starts like a canonical transaction, then a 32-bit bin header cut short.
_CUT_HEADER = b"\x82\xa4body\xc6\x00\x00"


async def test_a_transaction_cut_inside_a_header_is_refused_on_every_route(
    client: Client,
    node: Node,
) -> None:
    status, body = await _post(client, _CUT_HEADER)
    assert status == 400 and "malformed transaction" in body["error"]
    batch = await client.post("/txs", data=encode([_CUT_HEADER]), timeout=ClientTimeout(total=10))
    assert batch.status == 200
    assert (await batch.json())["results"][0]["status"] == 400
    peer = await client.post("/peer/batch", data=encode({"messages": [], "txs": [_CUT_HEADER]}))
    assert peer.status == 200
    deadline = asyncio.get_running_loop().time() + 10
    while node.admission_backlog and node.halted is None:  # forwarded: admitted in the background
        assert asyncio.get_running_loop().time() < deadline, "the forwarded tx was never admitted"
        await asyncio.sleep(0.01)
    assert node.halted is None
    _nothing_stored(node)


async def test_a_decoder_failing_unexpectedly_refuses_the_bytes_and_the_node_runs_on(
    client: Client,
    node: Node,
    setup: Setup,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A bug in decoding what clients and peers send must cost those bytes, not the node.
    def broken(raw: bytes, **_: object) -> Transaction:
        raise IndexError("a decoder bug")

    monkeypatch.setattr(Transaction, "from_wire", broken)
    monkeypatch.setattr(service, "decode_message", broken)
    wire = _tx(setup.identities["supplier"]).to_wire()
    status, body = await _post(client, wire)
    assert status == 400 and "IndexError: a decoder bug" in body["error"]
    batch = await client.post("/txs", data=encode([wire]), timeout=ClientTimeout(total=10))
    assert (await batch.json())["results"][0]["status"] == 400
    peer = await client.post("/peer/batch", data=encode({"messages": [b"\x01"], "txs": [wire]}))
    assert peer.status == 200
    deadline = asyncio.get_running_loop().time() + 10
    while node.admission_backlog and node.halted is None:
        assert asyncio.get_running_loop().time() < deadline, "the forwarded tx was never admitted"
        await asyncio.sleep(0.01)
    assert node.halted is None
    assert node.counters.messages_rejected == 1
    assert "decoding" in caplog.text and "a decoder bug" in caplog.text
    _nothing_stored(node)


async def test_an_observer_answers_a_batch_of_transactions(setup: Setup, tmp_path: Path) -> None:
    # Observers take clients' transactions and forward them to the validators.
    observer = Node(
        name="observer0",
        genesis=setup.genesis,
        keys=KeyPair.from_seed(b"\x55" * 32),
        storage=Storage(tmp_path / "observer.sqlite"),
        observer=True,
    )
    await observer.start()
    try:
        async with TestClient(TestServer(create_app(observer))) as client:
            txs = [_tx(setup.identities["supplier"], nonce=n) for n in range(2)]
            response = await client.post(
                "/txs", data=encode([tx.wire for tx in txs]), timeout=ClientTimeout(total=10)
            )
            assert response.status == 200
            results = (await response.json())["results"]
            assert [r.get("hash") for r in results] == [tx.hash.hex() for tx in txs]
            assert len(observer.mempool) == 2
    finally:
        await observer.stop()


async def test_a_batch_the_admission_queue_cannot_hold_is_refused_as_too_large(
    client: Client,
    node: Node,
) -> None:
    # Larger than the queue, it would get "busy, retry later" however empty the queue were.
    assert TXS_PER_REQUEST_MAX <= ADMISSION_BACKLOG_MAX
    response = await client.post("/txs", data=encode([b"x"] * (TXS_PER_REQUEST_MAX + 1)))
    assert response.status == 400
    assert f"at most {TXS_PER_REQUEST_MAX} transactions" in (await response.json())["error"]
    _nothing_stored(node)


async def test_a_block_shows_the_receipt_its_transactions_got_there(
    client: Client,
    node: Node,
    setup: Setup,
) -> None:
    # After a view change a transaction can be proposed again; the later block's receipt for
    # it fails on the nonce, and that block must show that receipt, not the first one.
    tx = _tx(setup.identities["supplier"])
    for _ in range(2):
        block = next_block(setup, node.storage, [tx])
        execute_and_store(node.runtime, node.storage, node.genesis, block, certify(setup, block))
    first, again = [
        (await (await client.get(f"/blocks/{height}")).json())["txs"][0]["receipt"]
        for height in (1, 2)
    ]
    assert (first["height"], first["ok"]) == (1, True)
    assert (again["height"], again["ok"]) == (2, False)
    assert "nonce 0 already used" in again["error"]
    assert (await (await client.get(f"/tx/{tx.hash.hex()}")).json())["receipt"]["height"] == 1
