"""Blocks stored in bulk (Storage.bulk, as catching up stores a fetched run) share their batch's
database transaction instead of a savepoint each: the tables end up as block by block, and a
block that fails halfway rolls the whole batch back and stops the storage, since no savepoint
is left to undo the part of it that was written."""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
from pathlib import Path

import pytest

from node import storage as storage_module
from node.errors import StorageError
from node.storage import BlockRecord, Storage

TABLES = ("blocks", "txs", "recent_txs", "events", "state", "block_writes")
STOCK = b"stock/part-1"


def _hash(tag: str) -> bytes:
    return hashlib.sha256(tag.encode()).digest()


def _record(height: int, txs: int = 5) -> BlockRecord:
    hashes = [_hash(f"tx {height}/{index}") for index in range(txs)]
    return BlockRecord(
        height=height,
        hash=_hash(f"block {height}"),
        wire=b"block %d" % height,
        certificate=b"certificate",
        timestamp_ms=height,
        state_digest=_hash(f"digest {height}"),
        receipts=[(h, b"receipt of %d/%d" % (height, i)) for i, h in enumerate(hashes)],
        events=[
            (h, "inventory", "receive", f"item:part-{i % 2}@bench", b"\x80")
            for i, h in enumerate(hashes)
        ],
        writes={STOCK: b"%d" % height, b"gone/%d" % (height - 1): None, b"new/%d" % height: b"x"},
    )


def _new_chain(path: Path) -> Storage:
    storage = Storage(path)
    storage.initialise(genesis_hash=b"g" * 32, writes={}, digest=b"d" * 32, time_ms=0)
    return storage


def _dump(path: Path) -> dict[str, list[tuple[object, ...]]]:
    with sqlite3.connect(path) as db:
        return {
            table: db.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall() for table in TABLES
        }


@pytest.fixture
def moves(monkeypatch: pytest.MonkeyPatch) -> None:
    """Moves from recent_txs into txs every few blocks, so some happen inside the runs."""
    monkeypatch.setattr(storage_module, "RECENT_TXS_MAX", 12)
    monkeypatch.setattr(storage_module, "MOVE_SLICES", 3)


@pytest.mark.usefixtures("moves")
def test_blocks_stored_in_bulk_leave_the_tables_as_block_by_block(tmp_path: Path) -> None:
    paths = {"one by one": tmp_path / "a.sqlite", "in bulk": tmp_path / "b.sqlite"}
    for way, path in paths.items():
        storage = _new_chain(path)
        try:
            for first in range(1, 13, 4):  # three runs of four blocks, a batch each
                with (
                    storage.batch(),
                    storage.bulk() if way == "in bulk" else contextlib.nullcontext(),
                ):
                    for height in range(first, first + 4):
                        storage.commit_record(_record(height))
            assert storage.head().height == 12
            assert storage.get(STOCK) == b"12"
            assert storage.has_tx(_hash("tx 3/4")) and not storage.has_tx(_hash("tx 13/0"))
        finally:
            storage.close()
    one_by_one, in_bulk = (_dump(path) for path in paths.values())
    assert one_by_one == in_bulk
    assert len(in_bulk["txs"]) > 0 and len(in_bulk["events"]) == 60


def _failing_at(monkeypatch: pytest.MonkeyPatch, storage: Storage, height: int) -> None:
    """The database refuses the state writes of block `height`: after its block, receipts and
    events rows went in."""
    real = storage._apply_writes

    def apply_writes(writes: dict[bytes, bytes | None]) -> None:
        if writes.get(STOCK) == b"%d" % height:
            raise sqlite3.OperationalError("disk I/O error")
        real(writes)

    monkeypatch.setattr(storage, "_apply_writes", apply_writes)


def test_a_block_failing_halfway_in_bulk_rolls_its_batch_back_and_stops_the_storage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "chain.sqlite"
    storage = _new_chain(path)
    told: list[str] = []
    storage.on_failure = told.append
    try:
        with storage.batch(), storage.bulk():
            storage.commit_record(_record(1))
        before = _dump(path)
        _failing_at(monkeypatch, storage, 4)
        stopped = "storage stopped: a block's writes failed halfway"
        with pytest.raises(StorageError, match=stopped), storage.batch(), storage.bulk():
            for height in (2, 3, 4, 5):
                storage.commit_record(_record(height))
        # Blocks 2 and 3 went with the part of block 4 that was written: the batch committed
        # nothing, and nothing read afterwards comes from what was rolled back.
        assert _dump(path) == before
        assert storage.head().height == 1
        assert storage.get(STOCK) == b"1"
        assert storage.failed is not None and "disk I/O error" in storage.failed
        assert told == [storage.failed]
        with pytest.raises(StorageError, match="storage stopped"), storage.batch():
            pass
    finally:
        storage.close()
    reopened = Storage(path)
    try:
        assert reopened.head().height == 1 and reopened.failed is None
    finally:
        reopened.close()


def test_without_bulk_a_failing_block_is_undone_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The savepoint each block takes otherwise: the blocks before it in the batch commit."""
    path = tmp_path / "chain.sqlite"
    storage = _new_chain(path)
    try:
        _failing_at(monkeypatch, storage, 3)
        with pytest.raises(sqlite3.OperationalError), storage.batch():
            for height in (1, 2, 3):
                storage.commit_record(_record(height))
        assert storage.head().height == 2
        assert storage.get(STOCK) == b"2"
        assert storage.failed is None
    finally:
        storage.close()


def test_a_block_refused_before_its_writes_in_bulk_leaves_the_batch_to_commit(
    tmp_path: Path,
) -> None:
    """A block that does not follow the head is refused before anything of it is written: the
    blocks before it commit, and the storage goes on."""
    storage = _new_chain(tmp_path / "chain.sqlite")
    try:
        with pytest.raises(StorageError, match="does not follow"), storage.batch(), storage.bulk():
            storage.commit_record(_record(1))
            storage.commit_record(_record(3))
        assert storage.head().height == 1 and storage.failed is None
        with storage.batch(), storage.bulk():
            storage.commit_record(_record(2))
        assert storage.head().height == 2
    finally:
        storage.close()
