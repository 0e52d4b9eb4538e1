"""What a node holds of a peer's history before a checkpoint proof confirms it is bounded in
bytes, not only in transactions.

Fetched blocks pile up in a run until a proof confirms them (node/catchup.py); a run that grew
past RUN_TXS_MAX transactions without one is executed instead of held. Nothing bounded its
bytes: a peer withholding the proofs and padding the receipts or write sets of small blocks
(each answer full, so it is asked on) made the node hold every answer it sent, up to
HISTORY_BYTES_MAX (64 MiB) an answer until the run reached RUN_TXS_MAX transactions, which
with blocks of one transaction is 50,000 answers. The run is now executed once it holds
RUN_BYTES_MAX, as it is once it holds RUN_TXS_MAX transactions.

Scaled down here: one block an answer (so an answer of one block is full), answers of at most
2 MiB, runs of at most 4 MiB, 1 MiB of padding a block.
"""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from contracts.runtime import Runtime
from ledger.encoding import decode, encode
from node import catchup
from node.catchup import TransferStats
from node.history import encode_history
from node.storage import Storage
from node.sync import blocks_query
from tests.node.test_reincluded_tx import _new_chain, _store, _supplier
from tests.node.transfer.chain import SETUP, Target, catch_up_from, state_of

BLOCKS = 40
PADDING = b"\x00" * (1 << 20)
HISTORY_BYTES_MAX = 2 << 20
RUN_BYTES_MAX = 4 << 20


def _padding_withholder(source: Storage) -> web.Application:
    """Serves what it is asked for, each block's first receipt padded, and no proof."""

    async def history(request: web.Request) -> web.Response:
        start, end = blocks_query(request.query, source.head().height)
        answer = decode(encode_history(source.history_range(start, end), []))
        for entry in answer["blocks"]:
            entry[2][0] += PADDING
        return web.Response(body=encode(answer), content_type="application/msgpack")

    app = web.Application()
    app.router.add_get("/peer/history", history)
    return app


async def test_a_run_no_proof_confirms_is_executed_once_it_holds_run_bytes_max(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(catchup, "FETCH_BLOCKS_MAX", 1)
    monkeypatch.setattr(catchup, "HISTORY_BYTES_MAX", HISTORY_BYTES_MAX)
    monkeypatch.setattr(catchup, "RUN_BYTES_MAX", RUN_BYTES_MAX, raising=False)
    source = _new_chain(SETUP, tmp_path / "source.sqlite")
    target = Target(
        storage=_new_chain(SETUP, tmp_path / "target.sqlite"),
        runtime=Runtime.default(),
        stats=TransferStats(),
    )
    try:
        for nonce in range(BLOCKS):
            _store(SETUP, source, [_supplier(nonce)])
        tracemalloc.start()
        try:
            async with aiohttp.ClientSession() as session:
                applied = await catch_up_from(session, target, _padding_withholder(source))
            peak_bytes = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

        assert applied == BLOCKS
        assert target.storage.head() == source.head()
        assert state_of(target.storage) == state_of(source)
        # Held whole, the run alone is BLOCKS MiB (45 MiB at the peak, measured); bounded, it
        # is RUN_BYTES_MAX and a block, with two answers on top in a few copies each (the one
        # read and the one asked ahead, raw and decoded, and the peer's own, in this process).
        assert peak_bytes < RUN_BYTES_MAX + 8 * HISTORY_BYTES_MAX < BLOCKS * len(PADDING)
    finally:
        source.close()
        target.storage.close()
