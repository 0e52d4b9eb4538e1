"""A backup refuses a proposed block with more transactions than the genesis allows."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from consensus.codec import encode_message
from consensus.messages import sign_pre_prepare
from ledger.block import Block
from ledger.encoding import encode
from ledger.genesis import Params
from ledger.tx import Transaction
from node.api import create_app
from node.service import Node
from node.storage import Storage
from tests.node.conftest import BODY_BYTES_MAX, CHAIN_ID, PEER_PROTOCOL, Setup, make_setup

BLOCK_TXS_MAX = 3


@pytest.fixture
def small_blocks() -> Setup:
    return make_setup(Params(body_bytes_max=BODY_BYTES_MAX, block_txs_max=BLOCK_TXS_MAX))


@pytest.fixture
async def backup(small_blocks: Setup, tmp_path: Path) -> AsyncIterator[Node]:
    node = Node(
        name="node1",
        genesis=small_blocks.genesis,
        keys=small_blocks.validator_keys[1],
        storage=Storage(tmp_path / "chain.sqlite"),
    )
    await node.start()
    try:
        yield node
    finally:
        await node.stop()


def _pre_prepare(setup: Setup, node: Node, tx_count: int) -> bytes:
    head = node.storage.head()
    txs = [
        Transaction.create(
            setup.identities["supplier"],
            chain_id=CHAIN_ID,
            nonce=n,
            contract="inventory",
            method="receive",
            args={"item": "steel", "location": "main", "qty": 1},
        )
        for n in range(tx_count)
    ]
    block = Block.build(
        chain_id=CHAIN_ID,
        height=1,
        prev_hash=head.hash,
        state_height=0,
        state_digest=head.state_digest,
        proposer=0,
        view=0,
        timestamp_ms=setup.genesis.genesis_time_ms + 1000,
        txs=txs,
    )
    message = sign_pre_prepare(
        setup.validator_keys[0], CHAIN_ID, view=0, seq=1, block=block, sender=0
    )
    return encode({"sender": 0, "messages": [encode_message(message)], "txs": []})


@pytest.mark.parametrize(
    ("tx_count", "accepted"), [(BLOCK_TXS_MAX + 1, False), (BLOCK_TXS_MAX, True)]
)
async def test_backup_prepares_only_blocks_within_block_txs_max(
    small_blocks: Setup, backup: Node, tx_count: int, accepted: bool
) -> None:
    async with TestClient(TestServer(create_app(backup)), headers=PEER_PROTOCOL) as client:
        response = await client.post(
            "/peer/batch", data=_pre_prepare(small_blocks, backup, tx_count)
        )
        assert response.status == 200
    if accepted:
        assert backup.counters.messages_rejected == 0
        assert backup.counters.messages_sent_by_type.get("prepare") == 3  # to the three others
    else:
        assert backup.counters.messages_rejected == 1
        assert "prepare" not in backup.counters.messages_sent_by_type
    assert backup.storage.head().height == 0
