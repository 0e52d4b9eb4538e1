"""Storage's schema as it meets databases written by earlier versions; its WAL checkpoints."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from node.storage import Storage


def test_an_older_database_loses_the_unused_txs_height_index(tmp_path: Path) -> None:
    path = tmp_path / "chain.sqlite"
    Storage(path).close()
    with sqlite3.connect(path) as db:
        db.execute("CREATE INDEX txs_height ON txs (height, idx)")
    Storage(path).close()
    with sqlite3.connect(path) as db:
        names = {
            row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")
        }
    assert "txs_height" not in names
    assert "events_subject" in names


def _database_file_bytes(path: Path) -> int:
    return path.stat().st_size


def _wal_pages_written(storage: Storage, pages: int) -> None:
    for index in range(pages):
        with storage.batch():
            storage.wal_append("message", 0, index, bytes([index % 256]) * 4000)


def test_background_checkpoints_copy_the_wal_into_the_database_file(tmp_path: Path) -> None:
    path = tmp_path / "chain.sqlite"
    storage = Storage(path)
    try:
        storage.checkpoint_in_background()
        assert any(t.name == "wal-checkpoints" for t in threading.enumerate())
        before = _database_file_bytes(path)
        # 100 commits of a page each write a few hundred WAL frames: fewer than the 1,000
        # at which the writer checkpoints by itself (see the test below).
        _wal_pages_written(storage, 100)
        deadline = time.monotonic() + 10
        while _database_file_bytes(path) < before + 80 * 4096:
            assert time.monotonic() < deadline, "the WAL was not checkpointed in time"
            time.sleep(0.05)
        assert len(list(storage.wal_entries())) == 100
    finally:
        storage.close()
    assert not any(t.name == "wal-checkpoints" for t in threading.enumerate())


def test_without_background_checkpoints_the_wal_keeps_the_pages(tmp_path: Path) -> None:
    path = tmp_path / "chain.sqlite"
    storage = Storage(path)
    try:
        before = _database_file_bytes(path)
        _wal_pages_written(storage, 100)
        assert _database_file_bytes(path) == before
    finally:
        storage.close()
