"""A peer cannot pass a one-block answer off as full by padding it with bytes nothing checks.

A peer is asked again only after a full answer: every block asked for, or cut for size
(node/catchup.py, `_full`). Size used to count every byte of the answer, so a peer feeding one
block at a time (each answer just within the timeout) could pad each answer past the mark with
what the node checks only at a checkpoint proof, or never: the receipts of a block served
without a write set (ignored: the block is executed), or receipts of a block with one while it
withholds the proofs. It was then asked for the next block, and the next, for as long as it
liked. Only the bytes the certificates vouch for count now.

History is served in-process by the helpers of tests/node/test_catchup.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from contracts.runtime import Runtime
from ledger.encoding import decode, encode
from node.catchup import TransferStats
from node.history import encode_history
from node.storage import Storage
from node.sync import FETCH_BYTES_MAX, blocks_query
from tests.node.test_catchup import (
    BLOCKS,
    SETUP,
    Target,
    _catch_up,
    _peer_app,
    _source_chain,
    _state,
)

PADDING = b"\x00" * (FETCH_BYTES_MAX // 2 + 1024)  # past the old mark on its own

Pad = Callable[[list[object]], None]


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Storage:
    return _source_chain(SETUP, tmp_path_factory.mktemp("source") / "chain.sqlite")


@pytest.fixture
def target(tmp_path: Path) -> Target:
    runtime = Runtime.default()
    storage = Storage(tmp_path / "target.sqlite")
    storage.initialise(
        genesis_hash=SETUP.genesis.hash,
        writes=runtime.genesis_writes(SETUP.genesis),
        digest=runtime.genesis_digest(SETUP.genesis),
        time_ms=SETUP.genesis.genesis_time_ms,
    )
    return Target(storage=storage, runtime=runtime, stats=TransferStats())


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def _pad_receipts_of_a_block_without_write_set(entry: list[object]) -> None:
    entry[3] = None
    entry[2] = [PADDING]


def _pad_a_receipt_of_a_block_with_a_write_set(entry: list[object]) -> None:
    receipts = entry[2]
    assert isinstance(receipts, list) and receipts
    receipts[0] = receipts[0] + PADDING


def _padding_trickler(source: Storage, pad: Pad, asked: list[int]) -> web.Application:
    """Serves one block an answer, padded by `pad`, with no checkpoint proof."""

    async def history(request: web.Request) -> web.Response:
        start, end = blocks_query(request.query, source.head().height)
        answer = decode(encode_history(source.history_range(start, min(end, start)), []))
        for entry in answer["blocks"]:
            pad(entry)
        asked.append(len(answer["blocks"]))
        return web.Response(body=encode(answer), content_type="application/msgpack")

    app = web.Application()
    app.router.add_get("/peer/history", history)
    return app


@pytest.mark.parametrize(
    "pad",
    [_pad_receipts_of_a_block_without_write_set, _pad_a_receipt_of_a_block_with_a_write_set],
    ids=["receipts-without-write-set", "receipt-proofs-withheld"],
)
async def test_a_peer_padding_one_block_answers_is_not_asked_again(
    session: aiohttp.ClientSession, source: Storage, target: Target, pad: Pad
) -> None:
    asked: list[int] = []

    applied = await _catch_up(
        session, target, _padding_trickler(source, pad, asked), _peer_app(source)
    )

    assert asked == [1]  # was one a block: [1] * BLOCKS, and then the empty answer
    assert applied == BLOCKS
    assert target.storage.head() == source.head()
    assert _state(target.storage) == _state(source)
