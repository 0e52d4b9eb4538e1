"""Committed transactions are found by hash in two tables: recent_txs (appended, hashes held in
memory) and txs (keyed by hash), which takes recent_txs's rows in sorted inserts, a slice of the
hash range a commit, once there are RECENT_TXS_MAX. Every lookup answers the same on either side
of a move, in the middle of one and after a reopen; a transaction included again is found at the
inclusion that counts, whichever table held its earlier row."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from contracts.receipt import Receipt
from ledger.encoding import decode
from node import storage as storage_module
from node.storage import BlockRecord, Storage


def _hash(tag: str) -> bytes:
    return hashlib.sha256(tag.encode()).digest()


def _commit(
    storage: Storage, tx_hashes: list[bytes], receipts: dict[int, bytes] | None = None
) -> int:
    """Commit a block of `tx_hashes`, with stand-in receipts but those `receipts` gives by
    index."""
    height = storage.head().height + 1
    given = receipts or {}
    storage.commit_record(
        BlockRecord(
            height=height,
            hash=_hash(f"block {height}"),
            wire=b"block",
            certificate=b"certificate",
            timestamp_ms=height,
            state_digest=b"d" * 32,
            receipts=[
                (h, given.get(i, b"receipt of %d/%d" % (height, i)))
                for i, h in enumerate(tx_hashes)
            ],
            events=[],
            writes={},
        )
    )
    return height


def _new_chain(path: Path) -> Storage:
    storage = Storage(path)
    storage.initialise(genesis_hash=b"g" * 32, writes={}, digest=b"d" * 32, time_ms=0)
    return storage


def _rows(path: Path, table: str) -> int:
    with sqlite3.connect(path) as db:
        count: int = db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    return count


def _where(storage: Storage, tx_hash: bytes) -> tuple[int, bytes] | None:
    row = storage._tx_rows([tx_hash]).get(tx_hash)
    return None if row is None else (row.height, row.receipt)


def _moves(monkeypatch: pytest.MonkeyPatch, *, rows: int, slices: int) -> None:
    monkeypatch.setattr(storage_module, "RECENT_TXS_MAX", rows)
    monkeypatch.setattr(storage_module, "MOVE_SLICES", slices)


def _assert_found(storage: Storage, height: int, tx_hashes: list[bytes]) -> None:
    """Every one of block `height`'s transactions is known, with the receipt it committed."""
    for index, tx_hash in enumerate(tx_hashes):
        assert storage.has_tx(tx_hash)
        assert _where(storage, tx_hash) == (height, b"receipt of %d/%d" % (height, index))


@pytest.fixture
def small_moves(monkeypatch: pytest.MonkeyPatch) -> None:
    """Moves of 10 rows, whole in one commit."""
    _moves(monkeypatch, rows=10, slices=1)


@pytest.mark.usefixtures("small_moves")
def test_rows_are_found_alike_before_and_after_they_move_and_after_a_reopen(
    tmp_path: Path,
) -> None:
    path = tmp_path / "chain.sqlite"
    storage = _new_chain(path)
    blocks = [[_hash(f"tx {b}/{i}") for i in range(4)] for b in range(5)]
    try:
        for number, tx_hashes in enumerate(blocks, start=1):
            _commit(storage, tx_hashes)
            # 4 rows a block: the third block's commit moves 12 rows, the next two wait.
            expected_recent = 0 if number == 3 else 4 * (number % 3)
            assert len(storage._recent) == expected_recent
        assert _rows(path, "txs") == 12 and _rows(path, "recent_txs") == 8
        for height, tx_hashes in enumerate(blocks, start=1):
            _assert_found(storage, height, tx_hashes)
        assert not storage.has_tx(_hash("never committed"))
    finally:
        storage.close()
    reopened = Storage(path)
    try:
        assert set(reopened._recent) == set(blocks[3] + blocks[4])
        assert all(reopened.has_tx(h) for block in blocks for h in block)
        assert _where(reopened, blocks[4][1]) == (5, b"receipt of 5/1")
        _commit(reopened, [_hash("one more")])  # 9 rows: no move yet
        _commit(reopened, [_hash("and another")])  # 10: every recent row moves
        assert _rows(path, "recent_txs") == 0 and _rows(path, "txs") == 22
        assert _where(reopened, blocks[4][1]) == (5, b"receipt of 5/1")
    finally:
        reopened.close()


def _blob_receipts(storage: Storage, height: int) -> list[list[object]]:
    (blob,) = storage._db.execute(
        "SELECT writes FROM block_writes WHERE height = ?", (height,)
    ).fetchone()
    extra: list[list[object]] = decode(blob)[1]
    return extra


@pytest.mark.usefixtures("small_moves")
@pytest.mark.parametrize("earlier_row", ["recent", "moved", "moving"])
def test_a_later_inclusion_that_succeeded_takes_the_row_from_either_table(
    tmp_path: Path, earlier_row: str
) -> None:
    # The first inclusion failed a gate (a faulty primary took the transaction before its
    # turn); the later one succeeded: the hash finds the later one, in every table layout.
    path = tmp_path / "chain.sqlite"
    storage = _new_chain(path)
    repeated = _hash("repeated")
    first = Receipt.failure(
        tx_hash=repeated, height=1, index=0, error="nonce 1 is ahead of the next nonce 0"
    ).encoded()
    try:
        _commit(storage, [repeated, _hash("other")], {0: first})
        fillers = {"recent": 0, "moved": 8, "moving": 6}[earlier_row]
        if fillers:
            _commit(storage, [_hash(f"filler {i}") for i in range(fillers)])
        assert (repeated in storage._recent) == (earlier_row != "moved")
        height = storage.head().height + 1
        later = Receipt(
            tx_hash=repeated, height=height, index=1, ok=True, error=None, result=1, events=()
        ).encoded()
        _commit(storage, [_hash("new"), repeated], {1: later})
        if earlier_row == "moving":  # 8 rows and these 2 reach the mark: all move at once
            assert _rows(path, "recent_txs") == 0
        assert _rows(path, "txs") + _rows(path, "recent_txs") == 3 + fillers
        assert _where(storage, repeated) == (height, later)
        assert storage.tx_succeeded(repeated) is True
        # The first inclusion's receipt now travels in its own block's write-set blob.
        assert _blob_receipts(storage, 1) == [[0, first]]
        assert _blob_receipts(storage, height) == []
    finally:
        storage.close()
    reopened = Storage(path)
    try:
        assert _where(reopened, repeated) == (height, later)
        assert (repeated in reopened._recent) == (earlier_row != "moving")
    finally:
        reopened.close()


def test_a_database_from_before_keeps_its_txs_rows_and_adds_recent_ones(tmp_path: Path) -> None:
    path = tmp_path / "chain.sqlite"
    older = _hash("written before recent_txs existed")
    storage = _new_chain(path)
    storage.close()
    with sqlite3.connect(path) as db:
        db.execute("DROP TABLE recent_txs")
        db.execute("INSERT INTO txs VALUES (?, 1, 0, ?)", (older, b"old receipt"))
    storage = Storage(path)
    try:
        assert storage.has_tx(older)
        assert _where(storage, older) == (1, b"old receipt")
        newer = _hash("newer")
        _commit(storage, [newer])
        assert storage.has_tx(newer) and _rows(path, "recent_txs") == 1
    finally:
        storage.close()


def test_a_move_goes_one_slice_of_the_hash_range_a_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _moves(monkeypatch, rows=40, slices=4)
    path = tmp_path / "chain.sqlite"
    storage = _new_chain(path)
    first = [_hash(f"first {i}") for i in range(40)]
    committed_at: dict[bytes, int] = dict.fromkeys(first, 0)  # hash -> step of its commit

    def moved_by(step: int, tx_hash: bytes) -> bool:
        # Slice k (first byte in [0x40 k, 0x40 (k + 1))) moves with the commit of step k, and
        # takes the rows committed by then.
        return committed_at[tx_hash] <= tx_hash[0] // 0x40 <= step

    try:
        _commit(storage, first)  # 40 rows: the move starts, with the first quarter (0x00-0x3f)
        assert _rows(path, "txs") == sum(moved_by(0, h) for h in first) > 0
        for step in range(1, 4):
            block = [_hash(f"later {step}/{i}") for i in range(6)]
            committed_at.update(dict.fromkeys(block, step))
            _commit(storage, block)
            assert _rows(path, "txs") == sum(moved_by(step, h) for h in committed_at)
            assert set(storage._recent) == {h for h in committed_at if not moved_by(step, h)}
            _assert_found(storage, 1, first)
            _assert_found(storage, step + 1, block)
        # Rows committed during the move into slices it had passed wait for the next one.
        waiting = [h for h in committed_at if not moved_by(3, h)]
        assert waiting and _rows(path, "recent_txs") == len(waiting)
        _commit(storage, [_hash("after the move")])  # below the mark: no move starts
        assert _rows(path, "recent_txs") == len(waiting) + 1
    finally:
        storage.close()


def test_a_reopened_database_finds_what_a_move_cut_short_left_in_either_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _moves(monkeypatch, rows=20, slices=4)
    path = tmp_path / "chain.sqlite"
    storage = _new_chain(path)
    tx_hashes = [_hash(f"tx {i}") for i in range(20)]
    _commit(storage, tx_hashes)  # the move's first quarter only
    storage.close()
    reopened = Storage(path)
    try:
        assert set(reopened._recent) == {h for h in tx_hashes if h[0] >= 0x40}
        _assert_found(reopened, 1, tx_hashes)
        _commit(reopened, [_hash("next")])  # 16 rows wait: below the mark, no move
        assert _rows(path, "recent_txs") == 1 + sum(h[0] >= 0x40 for h in tx_hashes)
    finally:
        reopened.close()
