"""A consensus message with a forged signature is refused for the price of one signature check.
Anybody can send such messages (they need no link proof, see
test_review_transport_peer_rate_limit.py), and a byzantine validator can send them without
limit on its own link, so each check they cost is the price of a flood."""

from __future__ import annotations

import os
import time
from typing import Any

import pytest

from consensus import messages as m
from consensus.messages import Prepare, encode_message
from ledger.encoding import encode
from node.peer_auth import link_headers
from node.peers import STREAM_PATH, parse_ack
from node.service import Node
from tests.node.conftest import CHAIN_ID, Client, Setup

FORGED = 100


async def test_a_forged_consensus_signature_is_checked_once(
    client: Client,
    node: Node,
    setup: Setup,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    checks: list[bytes] = []
    real = m.plain_verifier

    def counting(*args: Any) -> bool:
        checks.append(args[-1])
        return real(*args)

    monkeypatch.setattr(m, "plain_verifier", counting)
    forged = [
        encode_message(
            Prepare(
                view=0,
                seq=1 + index % 32,
                block_hash=os.urandom(32),
                sender=2,
                signature=os.urandom(64),
            )
        )
        for index in range(FORGED)
    ]
    proof = link_headers(
        setup.validator_keys[2],
        CHAIN_ID,
        sender=2,
        receiver=node.index,
        now_ms=int(time.time() * 1000),
    )
    async with client.ws_connect(STREAM_PATH, headers=proof) as stream:
        await stream.send_bytes(encode({"sender": 2, "messages": forged, "txs": []}))
        assert parse_ack((await stream.receive(timeout=10)).data) == (200, None)
    assert node.counters.messages_rejected == FORGED
    assert len(checks) == FORGED
