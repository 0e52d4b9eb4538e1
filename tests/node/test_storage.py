"""Storage's schema as it meets databases written by earlier versions."""

from __future__ import annotations

import sqlite3
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
