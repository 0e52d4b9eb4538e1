"""Storage's schema as it meets databases written by earlier versions; its WAL checkpoints."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from node.errors import StorageError
from node.storage import LAYOUT_VERSION, Storage


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


def _user_version(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute("PRAGMA user_version").fetchone()[0])


def test_a_database_keeps_its_layout_number_and_an_unnumbered_one_gets_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "chain.sqlite"
    Storage(path).close()
    assert _user_version(path) == LAYOUT_VERSION >= 1
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 0")  # as written before the number was kept
    Storage(path).close()
    assert _user_version(path) == LAYOUT_VERSION


def test_a_database_in_a_newer_layout_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "chain.sqlite"
    Storage(path).close()
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {LAYOUT_VERSION + 1}")
        db.execute("DROP TABLE recent_txs")  # a newer layout might not have it
    before = path.read_bytes()
    with pytest.raises(StorageError, match=f"layout {LAYOUT_VERSION + 1}, written by a newer"):
        Storage(path)
    assert path.read_bytes() == before
    assert _user_version(path) == LAYOUT_VERSION + 1


def test_a_file_that_is_not_a_database_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "chain.sqlite"
    path.write_bytes(b"not a database, " * 512)
    with pytest.raises(StorageError, match="is not a millchain database"):
        Storage(path)
    assert path.read_bytes() == b"not a database, " * 512
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chain.sqlite"]


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


@pytest.mark.parametrize(("fsync", "level"), [(False, 1), (True, 2)])  # NORMAL, FULL
def test_fsync_forces_every_commit_to_disk(tmp_path: Path, fsync: bool, level: int) -> None:
    storage = Storage(tmp_path / "chain.sqlite", fsync=fsync)
    try:
        assert storage.fsync is fsync
        assert storage._db.execute("PRAGMA synchronous").fetchone()[0] == level
    finally:
        storage.close()
