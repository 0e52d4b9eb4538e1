"""A node serving /peer/history or /peer/blocks reads the blocks its answer carries, not every
block asked for.

A peer may ask for up to FETCH_BLOCKS_MAX (200) blocks, and the answer is cut at
FETCH_BYTES_MAX (8 MiB: node/history.py, `encode_history`), but Storage.history_range read
every block of the range first, with its receipts looked up by hash, on the serving node's event
loop: with blocks of a few hundred KiB (some 500 transactions, a full block at full load) about
35 blocks are sent and 200 read, each transaction costing some 10 us. It now stops at the
block that takes its rows past the cut, and the answer is the same byte for byte.

GET /peer/blocks (served to anybody) had the same fault in Storage.block_range, cut at the same
place by node/sync.py `encode_blocks`: some 40 MiB read and held for an answer of 8.

Blocks are stored in encoded form (Storage.commit_record) with stand-in transactions: the
history is read from their encodings, which is all the serving side looks at.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from ledger.encoding import decode, encode
from node.history import encode_history
from node.storage import BlockRecord, HistoryRow, Storage
from node.sync import FETCH_BLOCKS_MAX, FETCH_BYTES_MAX, encode_blocks

TXS_PER_BLOCK = 50
BODY_BYTES = 4096  # 200 KiB a block with its receipts


def _block(height: int) -> tuple[bytes, list[bytes]]:
    """A block's stand-in encoding, {"header", "txs": [{"body", "signature"}, ...]}, and its
    transactions' ids (sha256 of each body)."""
    bodies = [
        hashlib.sha256(b"%d/%d" % (height, i)).digest() * (BODY_BYTES // 32)
        for i in range(TXS_PER_BLOCK)
    ]
    wires = [encode({"body": body, "signature": bytes(64)}) for body in bodies]
    wire = encode({"header": {"height": height}, "txs": wires})
    return wire, [hashlib.sha256(body).digest() for body in bodies]


def _chain(path: Path, blocks: int) -> Storage:
    storage = Storage(path)
    storage.initialise(genesis_hash=b"g" * 32, writes={}, digest=b"d" * 32, time_ms=0)
    for height in range(1, blocks + 1):
        wire, tx_ids = _block(height)
        storage.commit_record(
            BlockRecord(
                height=height,
                hash=hashlib.sha256(wire).digest(),
                wire=wire,
                certificate=b"certificate %d" % height,
                timestamp_ms=height,
                state_digest=b"d" * 32,
                receipts=[
                    (tx_id, encode({"ok": True, "index": i})) for i, tx_id in enumerate(tx_ids)
                ],
                events=[],
                writes={b"key %d" % height: b"value"},
            )
        )
    return storage


def test_an_answer_cut_for_size_reads_no_block_past_the_cut(tmp_path: Path) -> None:
    storage = _chain(tmp_path / "chain.sqlite", FETCH_BLOCKS_MAX)
    try:
        rows = storage.history_range(1, FETCH_BLOCKS_MAX)  # what /peer/history asks for
        one_by_one: list[HistoryRow] = [
            row
            for height in range(1, FETCH_BLOCKS_MAX + 1)
            for row in storage.history_range(height, height)
        ]

        answer = encode_history(rows, [])
        sent = len(decode(answer)["blocks"])
        assert sent < FETCH_BLOCKS_MAX // 4  # the cut at FETCH_BYTES_MAX came early
        assert sum(len(row.block) for row in rows[:sent]) <= FETCH_BYTES_MAX
        assert len(rows) == sent + 1  # read all FETCH_BLOCKS_MAX before
        assert answer == encode_history(one_by_one, [])  # what a peer gets is the same
    finally:
        storage.close()


def test_a_blocks_answer_cut_for_size_reads_no_block_past_the_cut(tmp_path: Path) -> None:
    storage = _chain(tmp_path / "chain.sqlite", FETCH_BLOCKS_MAX)
    try:
        rows = storage.block_range(1, FETCH_BLOCKS_MAX)  # what /peer/blocks asks for
        one_by_one = [
            row
            for height in range(1, FETCH_BLOCKS_MAX + 1)
            for row in storage.block_range(height, height)
        ]

        answer = encode_blocks(rows)
        sent = len(decode(answer))
        assert sent < FETCH_BLOCKS_MAX // 4  # the cut at FETCH_BYTES_MAX came early
        assert sum(len(block) for _, block, _ in rows[:sent]) <= FETCH_BYTES_MAX
        assert len(rows) <= sent + 1, f"read {len(rows)} blocks to send {sent}"
        assert answer == encode_blocks(one_by_one)  # what a peer gets is the same
    finally:
        storage.close()
