"""Opening a database of an earlier layout: a transaction included twice is found where it counts.

Layouts 0 and 1 (node/storage.py, LAYOUT_VERSION) found a transaction included in more than one
block at its first inclusion, even where that one failed a gate without using the nonce and a
later one used it. Opening such a database moves those rows to the inclusion that used the
nonce, by the rule a commit applies, in one transaction with the layout number; a database of a
newer layout is refused and left as it was.

An old database is made the way the code before the rule wrote one: blocks executed by the real
runtime on a real Storage, then every transaction's row put back at its first inclusion and the
receipts of its later inclusions into their blocks' write-set blobs (`_as_first_inclusion`), as
that code's commit did, in recent_txs or (as after a move) in txs, with the layout number 0 or 1.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from contracts import accounts
from contracts.receipt import Receipt
from contracts.runtime import Runtime
from ledger.block import Block
from ledger.encoding import decode, encode
from ledger.tx import Transaction
from node.api import create_app
from node.errors import StorageError
from node.executor import execute_and_store
from node.storage import LAYOUT_VERSION, HistoryRow, Storage, _row_id
from tests.node.conftest import Setup, backup_node, certify, next_block

AHEAD = "is ahead of the next nonce"


def _tx(setup: Setup, who: str, nonce: int, *, method: str = "receive") -> Transaction:
    """An inventory transaction of `who`'s; method "nope" passes the gates and then fails."""
    return Transaction.create(
        setup.identities[who],
        chain_id=setup.genesis.chain_id,
        nonce=nonce,
        contract="inventory",
        method=method,
        args={"item": "steel", "location": "main", "qty": 1},
    )


def _new_chain(setup: Setup, path: Path) -> Storage:
    runtime = Runtime.default()
    storage = Storage(path)
    storage.initialise(
        genesis_hash=setup.genesis.hash,
        writes=runtime.genesis_writes(setup.genesis),
        digest=runtime.genesis_digest(setup.genesis),
        time_ms=setup.genesis.genesis_time_ms,
    )
    return storage


def _store(setup: Setup, storage: Storage, txs: Sequence[Transaction]) -> Block:
    block = next_block(setup, storage, txs)
    execute_and_store(Runtime.default(), storage, setup.genesis, block, certify(setup, block))
    return block


@dataclass(frozen=True, slots=True, kw_only=True)
class _Chain:
    """Transactions of a chain included twice: the first inclusion failed a gate without using
    the nonce, and the later one used it (`moved`), or the later one failed a gate on a nonce
    used before (`kept`)."""

    early: Transaction  # later ran, and succeeded
    broken: Transaction  # later ran, and failed past the gates (no such method)
    # Later ran, and failed past the gates (a customer may not receive stock); its sender had
    # no nonce record before.
    newcomer: Transaction
    again: Transaction  # ran first (failing past the gates, as newcomer), included again after

    @property
    def moved(self) -> list[Transaction]:
        return [self.early, self.broken, self.newcomer]


# Where the hash finds each, (height, index, ok): with the rule, and as the code before it wrote.
WITH_THE_RULE = {"early": (2, 1, True), "broken": (4, 1, False), "newcomer": (6, 1, False)}
BEFORE_THE_RULE = {"early": (1, 0, False), "broken": (3, 0, False), "newcomer": (5, 0, False)}


def _build(setup: Setup, path: Path) -> _Chain:
    """Seven blocks, each transaction of `_Chain` in two of them, stored by this code."""
    chain = _Chain(
        early=_tx(setup, "supplier", 1),
        broken=_tx(setup, "supplier", 3, method="nope"),
        newcomer=_tx(setup, "customer", 1),
        again=_tx(setup, "planner", 0),
    )
    storage = _new_chain(setup, path)
    try:
        for txs in (
            [chain.early],  # before its turn
            [_tx(setup, "supplier", 0), chain.early],
            [chain.broken],
            [_tx(setup, "supplier", 2), chain.broken],
            [chain.newcomer],  # the customer has signed nothing before
            [_tx(setup, "customer", 0), chain.newcomer, chain.again],
            [chain.again],  # as after a view change: its nonce is used
        ):
            _store(setup, storage, txs)
    finally:
        storage.close()
    return chain


def _as_first_inclusion(path: Path, *, table: str, layout: int) -> None:
    """Rewrite the rows of the database at `path` as the code before the rule wrote them: each
    transaction found by hash at its first inclusion, the receipts of the others in their own
    blocks' write-set blobs; rows in `table`, and the layout number `layout`."""
    storage = Storage(path)
    try:
        inclusions: dict[bytes, list[tuple[int, int, bytes]]] = {}
        for height in range(1, storage.head().height + 1):
            stored = storage.block(height)
            assert stored is not None
            receipts = storage.block_receipts(height, stored.block)
            for index, (tx, receipt) in enumerate(zip(stored.block.txs, receipts, strict=True)):
                assert receipt is not None
                inclusions.setdefault(tx.hash, []).append((height, index, receipt.encoded()))
        blobs = {
            int(height): decode(bytes(blob))
            for height, blob in storage._db.execute("SELECT height, writes FROM block_writes")
        }
    finally:
        storage.close()
    kept: dict[int, list[list[Any]]] = {height: [] for height in blobs}
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM recent_txs")
        db.execute("DELETE FROM txs")
        for tx_hash, found in inclusions.items():
            (height, index, encoded), *later = found
            if table == "recent_txs":
                db.execute(
                    "INSERT INTO recent_txs VALUES (?, ?, ?, ?, ?)",
                    (_row_id(tx_hash, height, index), tx_hash, height, index, encoded),
                )
            else:
                db.execute("INSERT INTO txs VALUES (?, ?, ?, ?)", (tx_hash, height, index, encoded))
            for height, index, encoded in later:
                kept[height].append([index, encoded])
        for height, (changes, _) in blobs.items():
            db.execute(
                "UPDATE block_writes SET writes = ? WHERE height = ?",
                (encode([changes, sorted(kept[height])]), height),
            )
        db.execute(f"PRAGMA user_version = {layout}")
    db.close()


def _user_version(path: Path) -> int:
    with sqlite3.connect(path) as db:
        version = int(db.execute("PRAGMA user_version").fetchone()[0])
    db.close()
    return version


def _tables(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the tables that say where a receipt is, and the layout number."""
    with sqlite3.connect(path) as db:
        found: dict[str, list[tuple[Any, ...]]] = {
            table: db.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()
            for table in ("txs", "recent_txs", "block_writes")
        }
        found["user_version"] = db.execute("PRAGMA user_version").fetchall()
    db.close()
    return found


def _where(storage: Storage, tx: Transaction) -> tuple[int, int, bool]:
    receipt = storage.receipt(tx.hash)
    assert receipt is not None
    return receipt.height, receipt.index, receipt.ok


def _found(storage: Storage, chain: _Chain) -> dict[str, tuple[int, int, bool]]:
    return {
        name: _where(storage, tx)
        for name, tx in (
            ("early", chain.early),
            ("broken", chain.broken),
            ("newcomer", chain.newcomer),
        )
    }


@dataclass(frozen=True, slots=True, kw_only=True)
class _Seen:
    """What a storage answers about every block and transaction of a chain."""

    rows: dict[bytes, tuple[int, int, bytes]]
    receipts: list[list[Receipt | None]]
    history: list[HistoryRow]


def _seen(storage: Storage) -> _Seen:
    hashes: list[bytes] = []
    receipts: list[list[Receipt | None]] = []
    for height in range(1, storage.head().height + 1):
        stored = storage.block(height)
        assert stored is not None
        hashes.extend(tx.hash for tx in stored.block.txs)
        receipts.append(storage.block_receipts(height, stored.block))
    rows = {h: (r.height, r.index, r.receipt) for h, r in storage._tx_rows(hashes).items()}
    return _Seen(rows=rows, receipts=receipts, history=storage.history_range(1, 100))


def _seen_at(path: Path) -> _Seen:
    storage = Storage(path)
    try:
        return _seen(storage)
    finally:
        storage.close()


@pytest.fixture
def built(setup: Setup, tmp_path: Path) -> tuple[Path, _Chain, _Seen]:
    """A chain stored by this code: its path, its transactions, and what it answers."""
    path = tmp_path / "chain.sqlite"
    chain = _build(setup, path)
    return path, chain, _seen_at(path)


# -- the old layout as the tests make it ------------------------------------------------------


def test_the_old_layout_finds_a_transaction_at_its_first_inclusion(
    built: tuple[Path, _Chain, _Seen],
) -> None:
    # What the tests below start from, read from the tables directly: Storage would move it.
    path, chain, _ = built
    _as_first_inclusion(path, table="recent_txs", layout=1)
    with sqlite3.connect(path) as db:
        found = {
            bytes(tx_hash): (height, index, Receipt.from_map(decode(bytes(receipt))).ok)
            for tx_hash, height, index, receipt in db.execute(
                "SELECT hash, height, idx, receipt FROM recent_txs"
            )
        }
    db.close()
    assert {
        name: found[tx.hash]
        for name, tx in (
            ("early", chain.early),
            ("broken", chain.broken),
            ("newcomer", chain.newcomer),
        )
    } == BEFORE_THE_RULE
    assert found[chain.again.hash] == (6, 2, False)


def test_the_rule_needs_no_genesis_nonce_record(setup: Setup) -> None:
    # The state before a block is read back from the write sets below it, and a nonce record
    # none of them wrote is taken to be none: genesis writes no nonce record.
    writes = Runtime.default().genesis_writes(setup.genesis)
    assert writes
    assert not [key for key in writes if key.startswith(accounts.ACCOUNT_PREFIX)]


# -- opening a database of the previous layout ------------------------------------------------


@pytest.mark.parametrize("layout", [0, 1])
@pytest.mark.parametrize("table", ["recent_txs", "txs"])
def test_opening_an_old_database_finds_each_transaction_where_it_used_its_nonce(
    built: tuple[Path, _Chain, _Seen], table: str, layout: int
) -> None:
    path, chain, with_the_rule = built
    _as_first_inclusion(path, table=table, layout=layout)
    storage = Storage(path)
    try:
        assert _found(storage, chain) == WITH_THE_RULE
        assert [storage.tx_succeeded(tx.hash) for tx in chain.moved] == [True, False, False]
        assert _where(storage, chain.again) == (6, 2, False)
        # The same rows, per-block receipts and served history as the chain stored with the
        # rule from the start: each block still shows the receipt it produced.
        assert _seen(storage) == with_the_rule
        first = storage.block_receipts(1, _block(storage, 1))[0]
        assert first is not None and (first.height, first.ok) == (1, False)
        assert AHEAD in (first.error or "")
    finally:
        storage.close()
    assert _user_version(path) == LAYOUT_VERSION


def _block(storage: Storage, height: int) -> Block:
    stored = storage.block(height)
    assert stored is not None
    return stored.block


async def test_the_api_answers_an_old_database_with_the_inclusion_that_used_the_nonce(
    built: tuple[Path, _Chain, _Seen], setup: Setup
) -> None:
    path, chain, _ = built
    _as_first_inclusion(path, table="txs", layout=1)
    node = backup_node(setup, path)
    await node.start()
    try:
        async with TestClient(TestServer(create_app(node))) as client:
            for tx, (height, index, ok) in zip(chain.moved, WITH_THE_RULE.values(), strict=True):
                response = await client.get(f"/tx/{tx.hash.hex()}")
                assert response.status == 200, await response.text()
                answer = await response.json()
                assert (answer["height"], answer["receipt"]["index"]) == (height, index)
                assert (answer["receipt"]["ok"], answer["settled"]) == (ok, True)
            response = await client.get("/blocks/1")
            assert response.status == 200, await response.text()
            first = (await response.json())["txs"][0]["receipt"]
            assert (first["height"], first["ok"]) == (1, False) and AHEAD in first["error"]
    finally:
        await node.stop()


async def test_a_node_keeps_the_layout_as_it_commits_after_the_upgrade(
    built: tuple[Path, _Chain, _Seen], setup: Setup
) -> None:
    path, chain, _ = built
    _as_first_inclusion(path, table="recent_txs", layout=1)
    storage = Storage(path)
    try:
        _store(setup, storage, [chain.early, _tx(setup, "supplier", 4)])  # early: nonce used
        assert _found(storage, chain) == WITH_THE_RULE
        assert _where(storage, _tx(setup, "supplier", 4)) == (8, 1, True)
    finally:
        storage.close()
    assert _user_version(path) == LAYOUT_VERSION


def test_a_database_already_placed_by_the_rule_is_left_as_it_is(
    built: tuple[Path, _Chain, _Seen],
) -> None:
    # Code from before the layout number moved to 2 placed rows by the rule in layout 1.
    path, _, with_the_rule = built
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 1")
    db.close()
    before = _tables(path)
    assert _seen_at(path) == with_the_rule
    after = _tables(path)
    assert after.pop("user_version") == [(LAYOUT_VERSION,)]
    before.pop("user_version")
    assert after == before


def test_the_upgrade_runs_once(
    built: tuple[Path, _Chain, _Seen], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, _, with_the_rule = built
    _as_first_inclusion(path, table="recent_txs", layout=1)
    Storage(path).close()
    upgraded = _tables(path)
    upgrades: list[int] = []

    def counted(self: Storage, path: Path, found: int) -> None:
        upgrades.append(found)

    monkeypatch.setattr(Storage, "_upgrade_layout", counted)
    assert _seen_at(path) == with_the_rule
    assert upgrades == []
    assert _tables(path) == upgraded


def test_an_upgrade_that_fails_leaves_the_database_as_it_was(
    built: tuple[Path, _Chain, _Seen],
) -> None:
    path, _, _ = built
    _as_first_inclusion(path, table="recent_txs", layout=1)
    # Block 7's write set is unreadable: blocks 2, 4 and 6 were placed again before it.
    with sqlite3.connect(path) as db:
        db.execute("UPDATE block_writes SET writes = ? WHERE height = 7", (b"\xc1",))
    db.close()
    before = _tables(path)
    with pytest.raises(
        StorageError,
        match=rf"from layout 1 to layout {LAYOUT_VERSION} \(they are left as they were\): "
        "the write set of block 7 cannot be read",
    ):
        Storage(path)
    assert _tables(path) == before


def test_an_upgrade_that_cannot_read_back_the_nonces_refuses_to_open(
    built: tuple[Path, _Chain, _Seen],
) -> None:
    # `broken` failed at block 4: whether it used its nonce there is read from the nonce
    # record block 3 left, and block 3 keeps no write set (as blocks stored by a version
    # that kept none): the storage says so rather than guess.
    path, _, _ = built
    _as_first_inclusion(path, table="recent_txs", layout=1)
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM block_writes WHERE height = 3")
    db.close()
    before = _tables(path)
    with pytest.raises(StorageError, match="block 3 keeps no write set"):
        Storage(path)
    assert _tables(path) == before


# -- the layout number ------------------------------------------------------------------------


def test_a_new_database_is_created_at_the_current_layout(tmp_path: Path) -> None:
    path = tmp_path / "chain.sqlite"
    Storage(path).close()
    assert _user_version(path) == LAYOUT_VERSION == 2


def test_a_database_of_a_newer_layout_is_refused_and_left_as_it_was(
    built: tuple[Path, _Chain, _Seen], setup: Setup
) -> None:
    path, _, _ = built
    _as_first_inclusion(path, table="recent_txs", layout=LAYOUT_VERSION + 1)
    before = path.read_bytes()
    names = sorted(p.name for p in path.parent.iterdir())
    expected = (
        f"layout {LAYOUT_VERSION + 1}, written by a newer millchain; "
        f"this one reads layouts up to {LAYOUT_VERSION}"
    )
    with pytest.raises(StorageError, match=expected):
        Storage(path)
    with pytest.raises(StorageError, match=expected):
        backup_node(setup, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == names
