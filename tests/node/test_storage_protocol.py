"""A database records the protocol version (node/protocol.py) its chain and log were written
with. One of version 1 (recording none: written before versions were recorded) is upgraded in
place; one of a later version, or of a version that cannot be read, is refused as it opens,
naming both versions and what to do, and left as it was."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import pytest

from contracts.runtime import Runtime
from ledger.encoding import encode
from ledger.genesis import Genesis
from node.errors import StorageError
from node.protocol import PROTOCOL_VERSION
from node.storage import Storage
from tests.node.conftest import Setup, backup_node

# The meta key of the recorded version, as it is on disk.
PROTOCOL_KEY = "protocol_version"
ADVICE = "delete the node's data directory ({}) and start the node again"


def written_chain(genesis: Genesis, path: Path) -> None:
    """A database at `path` holding `genesis`, as this code writes it, closed."""
    runtime = Runtime.default()
    storage = Storage(path)
    storage.initialise(
        genesis_hash=genesis.hash,
        writes=runtime.genesis_writes(genesis),
        digest=runtime.genesis_digest(genesis),
        time_ms=genesis.genesis_time_ms,
    )
    storage.close()


def record_version(path: Path, raw: bytes | None) -> None:
    """Record `raw` as the database's protocol version; None: record none, as databases written
    before versions were recorded."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("DELETE FROM meta WHERE key = ?", (PROTOCOL_KEY,))
        if raw is not None:
            db.execute("INSERT INTO meta VALUES (?, ?)", (PROTOCOL_KEY, raw))
        db.commit()


def stored_version(path: Path) -> bytes | None:
    with contextlib.closing(sqlite3.connect(path)) as db:
        row = db.execute("SELECT value FROM meta WHERE key = ?", (PROTOCOL_KEY,)).fetchone()
    return None if row is None else bytes(row[0])


def test_a_new_data_directory_records_this_version(setup: Setup, tmp_path: Path) -> None:
    path = tmp_path / "chain.sqlite"
    node = backup_node(setup, path)
    node.storage.close()
    assert stored_version(path) == encode(PROTOCOL_VERSION)
    backup_node(setup, path).storage.close()  # and opens again


@pytest.mark.parametrize(
    ("raw", "recorded"),
    [
        (encode(PROTOCOL_VERSION + 1), f"written under protocol {PROTOCOL_VERSION + 1}"),
        (encode("two"), "written under an unreadable protocol version"),
        (b"\xc1", "written under an unreadable protocol version"),
    ],
)
def test_a_data_directory_of_another_version_is_refused_and_left_as_it_was(
    setup: Setup, tmp_path: Path, raw: bytes | None, recorded: str
) -> None:
    path = tmp_path / "chain.sqlite"
    written_chain(setup.genesis, path)
    record_version(path, raw)
    before = path.read_bytes()
    with pytest.raises(StorageError) as refused:
        backup_node(setup, path)
    message = str(refused.value)
    assert recorded in message, message
    assert f"this millchain speaks protocol {PROTOCOL_VERSION}" in message, message
    assert "Run the millchain that wrote it" in message, message
    assert ADVICE.format(tmp_path) in message, message
    assert path.read_bytes() == before
    assert stored_version(path) == raw


@pytest.mark.parametrize("raw", [None, encode(1)], ids=["unrecorded", "recorded-1"])
def test_a_data_directory_of_version_1_is_upgraded_in_place(
    setup: Setup, tmp_path: Path, raw: bytes | None, caplog: pytest.LogCaptureFixture
) -> None:
    # Version 1 changed only what view changes sign: its chain reads alike, and the log's old
    # view changes are refused as they replay.
    path = tmp_path / "chain.sqlite"
    written_chain(setup.genesis, path)
    record_version(path, raw)
    with caplog.at_level("WARNING", logger="node.storage"):
        node = backup_node(setup, path)
    assert node.storage.head().height == 0
    node.storage.close()
    assert stored_version(path) == encode(PROTOCOL_VERSION)
    assert f"written under protocol 1, now recorded as {PROTOCOL_VERSION}" in caplog.text
    backup_node(setup, path).storage.close()  # and opens again, as this version's
