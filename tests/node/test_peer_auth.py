"""Peer links: a validator proves it opened one (node/peer_auth.py); transactions that arrive on
any other link are clients' transactions, under the client rate limit and the clients' share of
the pool, whatever route they take."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from ledger.encoding import encode
from ledger.genesis import Params
from ledger.tx import Transaction
from node.api import create_app
from node.limits import ApiLimits
from node.peer_auth import (
    PEER_HEADER,
    PROOF_WINDOW_MS,
    SIGNATURE_HEADER,
    TIME_HEADER,
    LinkProofError,
    link_headers,
    linked_validator,
)
from node.peers import STREAM_PATH, parse_ack
from node.service import Node
from tests.node.conftest import BODY_BYTES_MAX, CHAIN_ID, PEER_PROTOCOL, Client, Setup, make_setup
from tests.node.test_openapi import check_answer

NOW_MS = 1_800_000_000_000
RECEIVER = 1  # the node under test is validator 1
SETUP = make_setup(Params(mempool_txs_max=40, body_bytes_max=BODY_BYTES_MAX))  # client share: 20


def _proof(sender: int = 0, receiver: int = RECEIVER, now_ms: int = NOW_MS) -> dict[str, str]:
    return link_headers(
        SETUP.validator_keys[sender], CHAIN_ID, sender=sender, receiver=receiver, now_ms=now_ms
    )


def test_a_validators_proof_names_it_and_no_headers_name_nobody() -> None:
    assert linked_validator(_proof(), SETUP.genesis, receiver=RECEIVER, now_ms=NOW_MS) == 0
    late = NOW_MS + PROOF_WINDOW_MS
    assert linked_validator(_proof(3), SETUP.genesis, receiver=RECEIVER, now_ms=late) == 3
    assert linked_validator({}, SETUP.genesis, receiver=RECEIVER, now_ms=NOW_MS) is None


def _signed_by_another_key() -> dict[str, str]:
    return link_headers(
        SETUP.identities["supplier"], CHAIN_ID, sender=0, receiver=RECEIVER, now_ms=NOW_MS
    )


@pytest.mark.parametrize(
    ("headers", "fragment"),
    [
        (_proof(receiver=2), "not validator 0's"),  # made for another node
        (_signed_by_another_key(), "not validator 0's"),
        (_proof(now_ms=NOW_MS - PROOF_WINDOW_MS - 1), "from this node's clock"),
        (_proof(sender=RECEIVER), "no other validator"),
        ({**_proof(), PEER_HEADER: "7"}, "no other validator"),
        ({**_proof(), PEER_HEADER: "-1"}, "decimal integers"),
        ({**_proof(), TIME_HEADER: "soon"}, "decimal integers"),
        ({**_proof(), SIGNATURE_HEADER: "zz"}, "not validator 0's"),
        ({PEER_HEADER: "0", TIME_HEADER: str(NOW_MS)}, "not validator 0's"),
    ],
    ids=[
        "other-receiver",
        "other-key",
        "stale",
        "itself",
        "no-validator",
        "negative",
        "time-not-a-number",
        "signature-not-hex",
        "no-signature",
    ],
)
def test_a_proof_that_does_not_hold_is_refused(headers: dict[str, str], fragment: str) -> None:
    with pytest.raises(LinkProofError, match=fragment):
        linked_validator(headers, SETUP.genesis, receiver=RECEIVER, now_ms=NOW_MS)


def _tx(nonce: int) -> bytes:
    return Transaction.create(
        SETUP.identities["supplier"],
        chain_id=CHAIN_ID,
        nonce=nonce,
        contract="inventory",
        method="receive",
        args={"item": "steel", "location": "main", "qty": 1},
    ).to_wire()


@pytest.fixture
def setup() -> Setup:
    """The chain of the conftest's `node` (validator 1): this module's, with a small pool."""
    return SETUP


@pytest.fixture
async def client(node: Node) -> AsyncIterator[Client]:
    limits = ApiLimits(rate_limit_per_s=0.001, rate_limit_burst=25)
    async with TestClient(
        TestServer(create_app(node, limits)), headers=PEER_PROTOCOL
    ) as test_client:
        yield test_client


async def _admitted(node: Node) -> None:
    deadline = asyncio.get_running_loop().time() + 10
    while node.admission_backlog:
        assert asyncio.get_running_loop().time() < deadline, "forwards were never admitted"
        await asyncio.sleep(0.01)


def _batch(nonces: range) -> bytes:
    return encode({"messages": [], "txs": [_tx(n) for n in nonces]})


async def test_transactions_on_a_link_no_validator_opened_are_clients(
    client: Client,
    node: Node,
) -> None:
    # As POST /txs would take them: at most the client share of the pool (20 of 40) ...
    response = await client.post("/peer/batch", data=_batch(range(24)))
    assert response.status == 200
    await _admitted(node)
    assert len(node.mempool) == node.mempool.client_max == 20
    # ... and within the client rate limit (a burst of 25 tokens, 24 taken).
    response = await client.post("/peer/batch", data=_batch(range(24, 26)))
    assert response.status == 429
    check_answer("POST", "/peer/batch", 429, response.headers, await response.read())
    await _admitted(node)
    assert len(node.mempool) == 20


async def test_transactions_on_a_validators_link_are_forwards(
    client: Client,
    node: Node,
) -> None:
    response = await client.post(
        "/peer/batch", data=_batch(range(30)), headers=_proof(now_ms=_wall_ms())
    )
    assert response.status == 200
    await _admitted(node)
    assert len(node.mempool) == 30  # past the client share, and no tokens taken


async def test_a_false_proof_is_refused_on_either_route(
    client: Client,
    node: Node,
) -> None:
    forged = {**_proof(now_ms=_wall_ms()), SIGNATURE_HEADER: bytes(64).hex()}
    response = await client.post("/peer/batch", data=_batch(range(2)), headers=forged)
    assert response.status == 403
    check_answer("POST", "/peer/batch", 403, response.headers, await response.read())
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect(STREAM_PATH, headers=forged)
    assert refused.value.status == 403
    async with client.ws_connect(STREAM_PATH, headers=_proof(now_ms=_wall_ms())) as stream:
        await stream.send_bytes(_batch(range(2)))
        assert parse_ack((await stream.receive(timeout=10)).data) == (200, None)
    await _admitted(node)
    assert len(node.mempool) == 2


def _wall_ms() -> int:
    return int(time.time() * 1000)
