"""Peer batches on a link no validator opened (POST /peer/batch, GET /peer/stream without a link
proof) are anybody's: they must not be a way around the client rate limit. Consensus messages
need no proof, but each costs the node a decoding and signature checks before it can tell a
forged one, so they are counted as transactions are, and so is the batch itself."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from consensus.messages import Prepare, encode_message
from ledger.encoding import encode
from node.api import create_app
from node.limits import ApiLimits
from node.peer_auth import link_headers
from node.peers import STREAM_PATH, parse_ack
from node.service import Node
from tests.node.conftest import CHAIN_ID, PEER_PROTOCOL, Client, Setup

BURST = 100


def _forged_prepares(count: int) -> list[bytes]:
    """Prepares in the backup's window, naming validator 2, with signatures nobody made."""
    return [
        encode_message(
            Prepare(
                view=0,
                seq=1 + index % 32,
                block_hash=os.urandom(32),
                sender=2,
                signature=os.urandom(64),
            )
        )
        for index in range(count)
    ]


def _batch(messages: list[bytes]) -> bytes:
    return encode({"sender": 2, "messages": messages, "txs": []})


@pytest.fixture
async def client(node: Node) -> AsyncIterator[Client]:
    limits = ApiLimits(rate_limit_per_s=0.001, rate_limit_burst=BURST)
    async with TestClient(
        TestServer(create_app(node, limits), host="127.0.0.1"), headers=PEER_PROTOCOL
    ) as test_client:
        yield test_client


async def test_forged_consensus_messages_from_anybody_take_tokens_and_are_refused_over_the_limit(
    client: Client,
    node: Node,
) -> None:
    # Before: 200, and the node decoded and checked the signatures of all 300 (at the
    # default limits, 40,000 such messages in one 6 MB request held its loop for ~1.7 s).
    # More tokens than the burst: 413, not 429, since no wait lets it through (a sender keeps
    # a 429's batch and sends it again; a 413's it splits: see node/peers.py).
    response = await client.post("/peer/batch", data=_batch(_forged_prepares(300)))
    assert response.status == 413, await response.text()
    assert "burst" in (await response.json())["error"]
    assert node.counters.messages_received == 0
    async with client.ws_connect(STREAM_PATH) as stream:
        await stream.send_bytes(_batch(_forged_prepares(300)))
        status, problem = parse_ack((await stream.receive(timeout=10)).data)
    assert status == 413 and problem is not None
    assert node.counters.messages_received == 0


async def test_many_small_batches_from_anybody_run_out_of_tokens(
    client: Client,
    node: Node,
) -> None:
    # Before: every one was taken, uncounted, however many came.
    statuses = [
        (await client.post("/peer/batch", data=_batch(_forged_prepares(1)))).status
        for _ in range(BURST)
    ]
    assert statuses.count(200) == BURST // 2  # a token for the batch, one for its message
    assert set(statuses[BURST // 2 :]) == {429}
    assert node.counters.messages_received == BURST // 2


async def test_a_validators_link_is_not_counted(
    client: Client,
    node: Node,
    setup: Setup,
) -> None:
    # What validators send each other is the hot path: no token, however much of it.
    proof = link_headers(
        setup.validator_keys[2],
        CHAIN_ID,
        sender=2,
        receiver=node.index,
        now_ms=int(time.time() * 1000),
    )
    async with client.ws_connect(STREAM_PATH, headers=proof) as stream:
        for _ in range(3):
            await stream.send_bytes(_batch(_forged_prepares(300)))
            assert parse_ack((await stream.receive(timeout=10)).data) == (200, None)
    assert node.counters.messages_received == 900
    assert node.counters.messages_rejected == 900  # dropped and counted, as ever
