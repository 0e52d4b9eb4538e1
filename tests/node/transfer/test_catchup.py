"""Catching up from write sets (node/catchup.py): a run is applied only once the digest its
fetched writes and receipts chain to equals one a quorum signed in a checkpoint proof; a run
that does not match is dropped whole and the next peer is asked.

The history is built in-process: blocks executed on a source node's storage, certified and
checkpointed by signing with the validators' keys, served by a small aiohttp app that can lie.
"""

from __future__ import annotations

import logging
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from consensus.config import ChainPoint
from consensus.events import BlockState, BlocksTransferred, Event
from ledger.block import ZERO_HASH, Block
from ledger.encoding import decode, encode
from node import catchup
from node.peers import read_capped
from node.service import Node
from node.storage import Storage
from tests.node.transfer.chain import (
    BLOCKS,
    PARAMS,
    REPEATED_AT,
    SETUP,
    TXS_PER_BLOCK,
    Tamper,
    Target,
    catch_up_from,
    drop_write_sets,
    node_catch_up,
    peer_app,
    state_of,
    tamper_write_at,
)


def _tamper_write(blocks: list[list[object]]) -> None:
    """Change one value in the write set of the answer's second block."""
    for entry in blocks:
        block = Block.from_wire(entry[0])  # type: ignore[arg-type]
        if block.height != 2:
            continue
        changes, extra = decode(entry[3])  # type: ignore[arg-type]
        key, value = changes[0]
        changes[0] = [key, value + b"\x00"] if value is not None else [key, b"\x00"]
        entry[3] = encode([changes, extra])


def _tamper_receipt(blocks: list[list[object]]) -> None:
    """Rewrite one receipt's result in the answer's second block (same tx, height, index)."""
    for entry in blocks:
        block = Block.from_wire(entry[0])  # type: ignore[arg-type]
        if block.height != 2:
            continue
        receipts = entry[2]
        assert isinstance(receipts, list)
        receipt = decode(receipts[0])
        receipt["result"] = {"forged": 1}
        receipts[0] = encode(receipt)


def _drop_first_write_sets(blocks: list[list[object]]) -> None:
    """As a peer upgraded after block 2 would serve: no write sets up to there."""
    for entry in blocks:
        if Block.from_wire(entry[0]).height <= 2:  # type: ignore[arg-type]
            entry[3] = None


async def test_a_good_run_is_applied_without_executing_up_to_the_last_proof(
    session: aiohttp.ClientSession, source: Storage, target: Target
) -> None:
    applied = await catch_up_from(session, target, peer_app(source))

    assert applied == BLOCKS
    assert target.storage.head() == source.head()
    assert state_of(target.storage) == state_of(source)
    assert (target.stats.blocks_checked, target.stats.blocks_executed) == (8, 2)
    assert target.stats.runs_refused == 0
    for part in range(3):
        subject = f"item:part-{part}@main"
        assert target.storage.events(subject) == source.events(subject) != []
    for stored in (source.block(height) for height in range(1, BLOCKS + 1)):
        assert stored is not None
        for tx in stored.block.txs:
            assert target.storage.receipt(tx.hash) == source.receipt(tx.hash)
    # What it checked it can serve on, proofs included.
    assert target.storage.history_range(1, 8) == source.history_range(1, 8)
    assert target.storage.checkpoint_proofs(1, 8) == source.checkpoint_proofs(1, 8)


async def test_the_repeated_transaction_keeps_its_receipt_in_the_write_set(
    source: Storage,
) -> None:
    row = source.history_range(REPEATED_AT, REPEATED_AT)[0]
    assert len(row.receipts) == TXS_PER_BLOCK  # the txs table holds the first inclusion only
    assert row.writes is not None
    _, extra = decode(row.writes)
    assert [index for index, _ in extra] == [TXS_PER_BLOCK]


@pytest.mark.parametrize("tamper", [_tamper_write, _tamper_receipt], ids=["write", "receipt"])
async def test_a_tampered_run_is_refused_and_nothing_of_it_is_applied(
    session: aiohttp.ClientSession,
    source: Storage,
    target: Target,
    tamper: Tamper,
    caplog: pytest.LogCaptureFixture,
) -> None:
    before = (target.storage.head(), state_of(target.storage))

    applied = await catch_up_from(session, target, peer_app(source, tamper))

    assert applied == 0
    assert (target.storage.head(), state_of(target.storage)) == before
    assert target.stats.runs_refused == 1
    assert "a quorum signed" in caplog.text


async def test_after_a_lying_peer_the_next_one_is_asked_from_the_head(
    session: aiohttp.ClientSession, source: Storage, target: Target
) -> None:
    applied = await catch_up_from(
        session, target, peer_app(source, _tamper_write), peer_app(source)
    )

    assert applied == BLOCKS
    assert target.storage.head() == source.head()
    assert state_of(target.storage) == state_of(source)
    assert target.stats.runs_refused == 1


@pytest.mark.parametrize("to_height", [None, BLOCKS])
async def test_a_peer_feeding_a_block_at_a_time_is_not_asked_again(
    session: aiohttp.ClientSession, source: Storage, target: Target, to_height: int | None
) -> None:
    # Each answer valid but one block long: asked on, such a peer (answering just within the
    # timeout) would keep the node behind as long as it liked.
    asked: list[int] = []

    def count(blocks: list[list[object]]) -> None:
        asked.append(len(blocks))

    trickle = peer_app(source, count, page=1)
    applied = await catch_up_from(session, target, trickle, peer_app(source), to_height=to_height)

    assert asked == [1]
    assert applied == BLOCKS
    assert target.storage.head() == source.head()
    assert state_of(target.storage) == state_of(source)


def _resplit_receipts(blocks: list[list[object]]) -> None:
    """Cut the second block's receipts elsewhere: [r0 + r1, b"", r2, ...] chains to the same
    state digest as the honest [r0, r1, r2, ...]."""
    for entry in blocks:
        if Block.from_wire(entry[0]).height == 2:  # type: ignore[arg-type]
            receipts = entry[2]
            assert isinstance(receipts, list) and len(receipts) >= 2
            receipts[0], receipts[1] = receipts[0] + receipts[1], b""


async def test_receipts_cut_elsewhere_are_refused_and_the_next_peer_asked(
    session: aiohttp.ClientSession, source: Storage, target: Target
) -> None:
    applied = await catch_up_from(
        session, target, peer_app(source, _resplit_receipts), peer_app(source)
    )

    assert applied == BLOCKS
    assert target.storage.head() == source.head()
    assert state_of(target.storage) == state_of(source)
    assert target.stats.runs_refused == 1


async def test_an_answer_larger_than_any_honest_one_is_not_read_whole(
    session: aiohttp.ClientSession,
    source: Storage,
    target: Target,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The lying peer streams 32 MiB without a length; the node stops reading past its limit
    # (1 MiB here) and asks the next peer. Read whole, all 32 MiB would have been taken.
    monkeypatch.setattr(catchup, "HISTORY_BYTES_MAX", 1 << 20, raising=False)
    written = [0]

    async def endless(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        chunk = bytes(64 << 10)
        try:
            for _ in range(512):
                await response.write(chunk)
                written[0] += len(chunk)
        except ConnectionError:
            pass  # the node hung up: the point of the test
        return response

    liar = web.Application()
    liar.router.add_get("/peer/history", endless)
    applied = await catch_up_from(session, target, liar, peer_app(source))

    assert applied == BLOCKS and target.storage.head() == source.head()
    assert written[0] < 16 << 20


async def test_a_peer_answer_is_read_up_to_its_limit_with_or_without_a_length(
    session: aiohttp.ClientSession,
) -> None:
    body = bytes(range(256)) * 4096  # 1 MiB

    async def sized(request: web.Request) -> web.Response:
        return web.Response(body=body)

    app = web.Application()
    app.router.add_get("/answer", sized)
    server = TestServer(app)
    await server.start_server()
    try:
        url = server.make_url("/answer")
        async with session.get(url) as response:
            assert await read_capped(response, len(body)) == body
        async with session.get(url) as response:
            with pytest.raises(aiohttp.ClientPayloadError, match="more than the 1048575"):
                await read_capped(response, len(body) - 1)
    finally:
        await server.close()


async def test_blocks_without_a_write_set_are_executed_and_said_so(
    session: aiohttp.ClientSession,
    source: Storage,
    target: Target,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        applied = await catch_up_from(session, target, peer_app(source, drop_write_sets))

    assert applied == BLOCKS
    assert target.storage.head() == source.head()
    assert (target.stats.blocks_checked, target.stats.blocks_executed) == (0, BLOCKS)
    assert "kept no write set" in caplog.text


@pytest.fixture
def answers_of_a_checkpoint_interval(monkeypatch: pytest.MonkeyPatch) -> int:
    """The node asks for a checkpoint interval's blocks at a time: a peer serving that many an
    answer gives full answers, and is asked on (see _full)."""
    monkeypatch.setattr(catchup, "FETCH_BLOCKS_MAX", PARAMS.checkpoint_interval)
    return PARAMS.checkpoint_interval


async def test_after_blocks_without_write_sets_the_next_run_is_checked_again(
    session: aiohttp.ClientSession,
    source: Storage,
    target: Target,
    answers_of_a_checkpoint_interval: int,
) -> None:
    peer = peer_app(source, _drop_first_write_sets, page=answers_of_a_checkpoint_interval)

    applied = await catch_up_from(session, target, peer)

    assert applied == BLOCKS
    assert target.storage.head() == source.head()
    assert state_of(target.storage) == state_of(source)
    # 1..4 executed (no digest chains through 1 and 2), 5..8 checked, 9..10 above the proofs.
    assert (target.stats.blocks_checked, target.stats.blocks_executed) == (4, 6)


async def test_what_a_proof_confirmed_before_the_peer_lied_is_kept(
    session: aiohttp.ClientSession,
    source: Storage,
    target: Target,
    answers_of_a_checkpoint_interval: int,
) -> None:
    peer = peer_app(source, tamper_write_at(6), page=answers_of_a_checkpoint_interval)

    applied = await catch_up_from(session, target, peer)

    assert applied == 4  # 1..4 confirmed by the proof at 4; 5..8 refused at the proof at 8
    assert target.stats.runs_refused == 1
    stored = source.block(4)
    assert stored is not None
    assert target.storage.head().state_digest == stored.state_digest


async def test_a_node_tells_its_replica_the_state_at_each_checkpoint_it_caught_up_past(
    session: aiohttp.ClientSession, source: Storage, tmp_path: Path
) -> None:
    # The replica signs its checkpoint for the highest of them (consensus/replica.py,
    # `_sign_transferred_checkpoint`): with a validator silent, the others may need that vote.
    node = Node(
        name="node1",
        genesis=SETUP.genesis,
        keys=SETUP.validator_keys[1],
        storage=Storage(tmp_path / "chain.sqlite"),
    )
    fed: list[BlocksTransferred] = []
    feed = node.feed

    def recording_feed(event: Event, *, raw: bytes | None = None) -> None:
        if isinstance(event, BlocksTransferred):
            fed.append(event)
        feed(event, raw=raw)

    node.feed = recording_feed  # type: ignore[method-assign]
    try:
        applied = await node_catch_up(node, peer_app(source))
        restart = node._replica_start()  # what the replica would start from after a restart
    finally:
        node.storage.close()
    assert applied == BLOCKS and fed
    # A new view built on the chain's start needs it, also once the head has moved on.
    assert restart.height == BLOCKS and restart.genesis == ChainPoint.genesis(
        block_hash=ZERO_HASH,
        timestamp_ms=SETUP.genesis.genesis_time_ms,
        state_digest=source.genesis_head().state_digest,
    )
    passed = [state for event in fed for state in event.states]
    expected = []
    for height in range(1, BLOCKS + 1):
        stored = source.block(height)
        assert stored is not None
        expected.append(
            BlockState(
                height=height, block_hash=stored.block.hash, state_digest=stored.state_digest
            )
        )
    assert passed == expected
    assert node.replica is not None and node.replica.committed_height == BLOCKS
