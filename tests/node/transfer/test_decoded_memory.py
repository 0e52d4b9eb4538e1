"""What a peer's history costs the node in memory is bounded by what it counts, decoded too.

node/catchup.py reads an answer up to HISTORY_BYTES_MAX and holds a run until RUN_BYTES_MAX of
fetched history, and tests/node/transfer/test_run_memory.py bounds the peak by RUN_BYTES_MAX +
8 * HISTORY_BYTES_MAX. Both count encoded bytes, which a byzantine peer can make cost far more:

1. One byte 0x90 is an empty list, some 72 bytes as an object plus an 8-byte slot: an answer of
   HISTORY_BYTES_MAX (64 MiB) of them was about 5 GiB once decoded, before its shape was looked
   at. `verify_history` now builds no more lists and maps than an honest answer holds.
2. A write set's changes are held decoded (a dict of bytes) while the run waits for a proof. A
   change [key, nil] of a 3-byte key is 6 bytes encoded and some 55 held: counted by its
   encoded bytes, a peer withholding proofs made the node hold ~9x RUN_BYTES_MAX (over 1 GiB)
   before it executed the run. Each change is now counted with what it holds.

Scaled down as in test_run_memory.py.
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
from tests.node.test_reincluded_tx import _new_chain, _store, _supplier
from tests.node.transfer.chain import SETUP, Target, catch_up_from, peer_app, state_of

HISTORY_BYTES_MAX = 1 << 20
RUN_BYTES_MAX = 2 << 20


def _app(body_of: object) -> web.Application:
    async def history(request: web.Request) -> web.Response:
        return web.Response(body=body_of(request), content_type="application/msgpack")  # type: ignore[operator]

    app = web.Application()
    app.router.add_get("/peer/history", history)
    return app


async def test_an_answer_within_the_cap_does_not_cost_many_times_its_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(catchup, "HISTORY_BYTES_MAX", HISTORY_BYTES_MAX)
    source = _new_chain(SETUP, tmp_path / "source.sqlite")
    target = Target(
        storage=_new_chain(SETUP, tmp_path / "target.sqlite"),
        runtime=Runtime.default(),
        stats=TransferStats(),
    )
    for nonce in range(3):
        _store(SETUP, source, [_supplier(nonce)])
    # Canonical msgpack, within the cap: {"blocks": [[], [], ...], "checkpoints": []}.
    body = encode({"blocks": [[]] * (HISTORY_BYTES_MAX - 64), "checkpoints": []})
    assert len(body) <= HISTORY_BYTES_MAX
    try:
        tracemalloc.start()
        try:
            async with aiohttp.ClientSession() as session:
                applied = await catch_up_from(
                    session, target, _app(lambda request: body), peer_app(source)
                )
            peak_bytes = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert applied == 3 and target.stats.runs_refused == 1  # refused, then the next peer
        # The bound test_run_memory.py holds a catch-up to (with no run at all here).
        assert peak_bytes < 8 * HISTORY_BYTES_MAX, f"peak {peak_bytes >> 20} MiB"
    finally:
        source.close()
        target.storage.close()


def _padded_writes(source: Storage, entries: int) -> web.Application:
    """Serves one block an answer with its write set replaced by `entries` tiny changes (shape
    valid, keys ascending), and withholds every proof: nothing checks the writes before a
    proof, and with none the run is executed in the end (sound). The answers are encoded up
    front, so the peer's own work (in this process) stays out of the node's peak."""
    bodies: dict[int, bytes] = {}
    changes = [[index.to_bytes(3, "big"), None] for index in range(entries)]
    for height in range(1, source.head().height + 1):
        answer = decode(encode_history(source.history_range(height, height), []))
        for entry in answer["blocks"]:
            _, extra = decode(entry[3])
            entry[3] = encode([changes, extra])
        bodies[height] = encode(answer)
    bodies[source.head().height + 1] = encode_history([], [])
    del changes

    def body(request: web.Request) -> bytes:
        return bodies[int(request.query["from"])]

    return _app(body)


async def test_a_run_held_without_proof_costs_about_its_counted_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(catchup, "FETCH_BLOCKS_MAX", 1)  # one block an answer is a full one
    monkeypatch.setattr(catchup, "HISTORY_BYTES_MAX", HISTORY_BYTES_MAX)
    monkeypatch.setattr(catchup, "RUN_BYTES_MAX", RUN_BYTES_MAX)
    blocks = 40
    source = _new_chain(SETUP, tmp_path / "source.sqlite")
    target = Target(
        storage=_new_chain(SETUP, tmp_path / "target.sqlite"),
        runtime=Runtime.default(),
        stats=TransferStats(),
    )
    for nonce in range(blocks):
        _store(SETUP, source, [_supplier(nonce)])
    entries = 10_000  # 60 KB of write set a block: its decoding costs little at a time, but
    # the run holds every block's until it counts RUN_BYTES_MAX (some 34 blocks)
    peer = _padded_writes(source, entries)
    try:
        tracemalloc.start()
        try:
            async with aiohttp.ClientSession() as session:
                applied = await catch_up_from(session, target, peer)
            peak_bytes = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert applied == blocks
        assert state_of(target.storage) == state_of(source)  # executed in the end: sound
        # test_run_memory.py's bound for a run padded with receipts.
        bound = RUN_BYTES_MAX + 8 * HISTORY_BYTES_MAX
        assert peak_bytes < bound, f"peak {peak_bytes >> 20} MiB, bound {bound >> 20} MiB"
    finally:
        source.close()
        target.storage.close()
