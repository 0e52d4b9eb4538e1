"""The Bloom filter over committed transaction hashes (node/txfilter.py), and Storage.has_tx,
which asks the database only when the filter says a hash may be there."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from node import storage as storage_module
from node.storage import BlockRecord, Storage
from node.txfilter import TxFilter


def _hashes(count: int, salt: bytes = b"") -> list[bytes]:
    return [hashlib.sha256(salt + i.to_bytes(8, "big")).digest() for i in range(count)]


def _add(tx_filter: TxFilter, hashes: list[bytes]) -> None:
    tx_filter.add_joined(b"".join(hashes), 32)


def test_every_added_hash_may_be_contained() -> None:
    tx_filter = TxFilter(bits_log2=12)
    added = _hashes(300)
    _add(tx_filter, added)
    assert all(tx_filter.may_contain(h) for h in added)
    assert tx_filter.added == 300


def test_hashes_never_added_are_mostly_refused() -> None:
    tx_filter = TxFilter(bits_log2=16)
    _add(tx_filter, _hashes(2_000))
    others = _hashes(20_000, salt=b"other")
    # 4 probes, 2,000 entries in 65,536 bits: about 1 in 6,000 expected.
    assert sum(tx_filter.may_contain(h) for h in others) < 40
    assert not TxFilter(bits_log2=16).may_contain(others[0])  # empty: nothing at all


def test_each_hash_sets_the_bits_its_first_four_words_name() -> None:
    hashes = _hashes(5_000)
    tx_filter = TxFilter(bits_log2=14)
    _add(tx_filter, hashes)
    expected = bytearray(2**14 // 8)
    for tx_hash in hashes:
        for i in range(4):
            position = int.from_bytes(tx_hash[4 * i : 4 * i + 4], "little") % 2**14
            expected[position // 8] |= 1 << (position % 8)
    assert tx_filter._bits == expected
    assert tx_filter.added == 5_000


@pytest.mark.parametrize(("length", "hash_bytes"), [(33, 32), (64, 12), (96, 40)])
def test_joined_bytes_that_are_not_whole_hashes_are_refused(length: int, hash_bytes: int) -> None:
    tx_filter = TxFilter(bits_log2=10)
    with pytest.raises(ValueError, match="not whole hashes"):
        tx_filter.add_joined(b"\0" * length, hash_bytes)
    assert tx_filter.added == 0 and not any(tx_filter._bits)


@pytest.mark.parametrize("bits_log2", [2, 33])
def test_a_size_out_of_range_is_refused(bits_log2: int) -> None:
    with pytest.raises(ValueError, match="bits_log2"):
        TxFilter(bits_log2=bits_log2)


def _commit(storage: Storage, tx_hashes: list[bytes]) -> None:
    """The next block, holding transactions with these hashes (the rest is placeholder)."""
    height = storage.head().height + 1
    storage.commit_record(
        BlockRecord(
            height=height,
            hash=hashlib.sha256(b"block" + height.to_bytes(8, "big")).digest(),
            wire=b"block",
            certificate=b"certificate",
            timestamp_ms=height,
            state_digest=b"d" * 32,
            receipts=[(h, b"receipt") for h in tx_hashes],
            events=[],
            writes={},
        )
    )


def _storage_with_blocks(path: Path, blocks: list[list[bytes]]) -> Storage:
    storage = Storage(path)
    storage.initialise(genesis_hash=b"g" * 32, writes={}, digest=b"d" * 32, time_ms=0)
    for tx_hashes in blocks:
        _commit(storage, tx_hashes)
    return storage


def _txs_lookups(storage: Storage) -> list[str]:
    statements: list[str] = []
    storage._db.set_trace_callback(statements.append)
    return statements


def test_has_tx_asks_the_database_only_for_hashes_the_filter_may_hold(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The second block moves every row into the txs table, where lookups go to SQLite.
    monkeypatch.setattr(storage_module, "RECENT_TXS_MAX", 25)
    monkeypatch.setattr(storage_module, "MOVE_SLICES", 1)
    committed = _hashes(50)
    storage = _storage_with_blocks(tmp_path / "chain.sqlite", [committed[:20], committed[20:]])
    try:
        unknown = _hashes(200, salt=b"unknown")
        assert not any(storage.has_tx(h) for h in unknown)  # builds the filter first
        lookups = _txs_lookups(storage)
        assert not any(storage.has_tx(h) for h in unknown)
        assert all(storage.has_tx(h) for h in committed)
        asked = [s for s in lookups if s.startswith("SELECT 1 FROM txs")]
        assert len(asked) == len(committed)  # the unknown ones never reached the database
    finally:
        storage.close()


def test_transactions_committed_after_the_filter_was_built_are_found(tmp_path: Path) -> None:
    first, later = _hashes(10), _hashes(10, salt=b"later")
    storage = _storage_with_blocks(tmp_path / "chain.sqlite", [first])
    try:
        assert not storage.has_tx(later[0])  # builds the filter
        _commit(storage, later)
        assert all(storage.has_tx(h) for h in first + later)
    finally:
        storage.close()


def test_a_reopened_database_fills_its_filter_from_the_txs_table(tmp_path: Path) -> None:
    path = tmp_path / "chain.sqlite"
    committed = _hashes(70_000)  # more than one step of the load
    blocks = [committed[i : i + 10_000] for i in range(0, len(committed), 10_000)]
    _storage_with_blocks(path, blocks).close()
    storage = Storage(path)
    try:
        assert all(storage.has_tx(h) for h in committed[::97])
        assert not storage.has_tx(_hashes(1, salt=b"absent")[0])
    finally:
        storage.close()


def test_a_hash_of_another_length_is_looked_up_in_the_database(tmp_path: Path) -> None:
    path = tmp_path / "chain.sqlite"
    _storage_with_blocks(path, [_hashes(3)]).close()
    with sqlite3.connect(path) as db:  # a row the filter cannot describe
        db.execute("INSERT INTO txs VALUES (?, 1, 9, ?)", (b"short", b"receipt"))
    storage = Storage(path)
    try:
        assert all(storage.has_tx(h) for h in _hashes(3))  # the filter loads around the row
        assert storage.has_tx(b"short")
        assert not storage.has_tx(b"other")
    finally:
        storage.close()


def test_a_block_with_a_hash_of_another_length_commits_once_the_filter_is_built(
    tmp_path: Path,
) -> None:
    storage = _storage_with_blocks(tmp_path / "chain.sqlite", [_hashes(3)])
    try:
        assert not storage.has_tx(_hashes(1, salt=b"absent")[0])  # builds the filter
        full = _hashes(2, salt=b"full")
        _commit(storage, [full[0], b"odd-length", full[1]])
        assert storage.has_tx(b"odd-length") and all(storage.has_tx(h) for h in full)
    finally:
        storage.close()


def test_loading_the_filter_up_front_spares_the_first_lookup_the_scan(tmp_path: Path) -> None:
    path = tmp_path / "chain.sqlite"
    committed = _hashes(10)
    _storage_with_blocks(path, [committed]).close()
    storage = Storage(path)
    try:
        storage.load_tx_filter()
        lookups = _txs_lookups(storage)
        assert all(storage.has_tx(h) for h in committed)
        assert not any(s.startswith("SELECT hash FROM txs") for s in lookups)
        storage.load_tx_filter()  # once only
        assert not any(s.startswith("SELECT hash FROM txs") for s in lookups)
    finally:
        storage.close()
