"""A peer cannot pass a one-block answer off as full by padding it with bytes nothing checks.

A peer is asked again only after a full answer: every block asked for, or cut for size
(node/catchup.py, `_full`). Size used to count every byte of the answer, so a peer feeding one
block at a time (each answer just within the timeout) could pad each answer past the mark with
what the node checks only at a checkpoint proof, or never: the receipts of a block served
without a write set (ignored: the block is executed), or receipts of a block with one while it
withholds the proofs. It was then asked for the next block, and the next, for as long as it
liked. Only the bytes the certificates vouch for count now.

History is served in-process by the helpers of tests/node/transfer/chain.py.
"""

from __future__ import annotations

from collections.abc import Callable

import aiohttp
import pytest
from aiohttp import web

from ledger.encoding import decode, encode
from node.history import encode_history
from node.storage import Storage
from node.sync import FETCH_BYTES_MAX, blocks_query
from tests.node.transfer.chain import (
    BLOCKS,
    Target,
    catch_up_from,
    peer_app,
    state_of,
)

PADDING = b"\x00" * (FETCH_BYTES_MAX // 2 + 1024)  # past the old mark on its own

Pad = Callable[[list[object]], None]


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

    applied = await catch_up_from(
        session, target, _padding_trickler(source, pad, asked), peer_app(source)
    )

    assert asked == [1]  # was one a block: [1] * BLOCKS, and then the empty answer
    assert applied == BLOCKS
    assert target.storage.head() == source.head()
    assert state_of(target.storage) == state_of(source)
