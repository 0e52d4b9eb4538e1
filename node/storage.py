"""SQLite storage (WAL mode): blocks with their commit certificates, receipts, events and state.

A committed block, its receipts, its events and the state writes it produced land in one database
transaction, so a crash leaves either all of a block or none of it. The storage is also the state
reader the contract runtime executes against.

Transactions are found by hash in two tables. A committed block's rows go to `recent_txs`,
appended in commit order with no index (a node keeps their hashes in memory), and once there are
RECENT_TXS_MAX of them they move to `txs`, keyed by hash, in sorted inserts: one slice of the
hash range with each of the next MOVE_SLICES blocks, so no commit pauses long. Inserting each
block's rows straight into `txs` put every row on a random leaf of its index: about one page
written a transaction, and 7 to 19 us a row as the table grew from 56,000 to 224,000 rows,
against 4 to 7 with the sorted moves (a microbenchmark of 560-row blocks).

For peers catching up (node/catchup.py) it also keeps, per block, one blob with the block's net
writes (and the rare receipts the txs table cannot hold), and the proofs of stable checkpoints:
with those a peer can rebuild the state without executing anything, and check it against a
digest a quorum signed.

A transaction can be included in more than one block (re-proposed after a view change, or put in
a block early by a faulty primary), and the hash finds one inclusion: the one that counts. A
transaction failing an admission gate (contracts/runtime.py) changes nothing, not even its
nonce, so it may run when included again; at most one inclusion ever uses its nonce, and that
one, once it comes, is found by hash instead of an earlier one that failed a gate. Every other
receipt stays in its own block's write-set blob, so each block still shows what it did.
Whether an inclusion used its nonce is read from the receipt and the nonce state the block
found and left (`_NonceUse`), the same on every node whether it executed the block or rebuilt
it from fetched writes. Databases written before this rule (layouts 0 and 1: see LAYOUT_VERSION)
found such a transaction at its first inclusion; opening one moves its rows by the same rule
(`Storage._upgrade_layout`) before the node reads anything.

The meta table also records the protocol version (node/protocol.py) the chain and the consensus
log were written with, beside the genesis. A database of version 1 (which records none: written
before versions were recorded) is upgraded in place as it opens: its blocks, state and receipts
read alike, and in its log only view changes and new views changed meaning. Those no longer
verify, so replaying the log refuses them, as it would refuse a forged message: a view change in
progress when the node stopped starts again, and what the replica signed (the `signed` table) it
still never signs differently. A database of a later version (written by a newer millchain), or
one whose version cannot be read, is refused as it opens, before anything is written: its node
must run that version, or start again from an empty data directory and catch up.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack

from contracts import accounts
from contracts.receipt import Receipt
from contracts.runtime import BlockResult
from contracts.state import Overlay, StateReader
from ledger.block import ZERO_HASH, Block
from ledger.certificate import CommitCertificate
from ledger.encoding import decode, encode
from ledger.errors import LedgerError
from ledger.hashing import HASH_BYTES, sha256
from node.errors import StorageError
from node.protocol import PROTOCOL_VERSION, UNSTATED_VERSION
from node.sync import FETCH_BYTES_MAX
from node.txfilter import TxFilter

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS blocks (
    height INTEGER PRIMARY KEY,
    hash BLOB NOT NULL UNIQUE,
    block BLOB NOT NULL,
    certificate BLOB NOT NULL,
    state_digest BLOB NOT NULL,
    timestamp_ms INTEGER NOT NULL,
    tx_count INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS txs (
    hash BLOB PRIMARY KEY,
    height INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    receipt BLOB NOT NULL
);
-- Rows of transactions committed since their last move into txs (see Storage.commit_record);
-- id is slice * 2**57 + height * 2**24 + idx, so a slice's rows lie together in commit order.
CREATE TABLE IF NOT EXISTS recent_txs (
    id INTEGER PRIMARY KEY,
    hash BLOB NOT NULL,
    height INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    receipt BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    height INTEGER NOT NULL,
    tx_hash BLOB NOT NULL,
    contract TEXT NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    data BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS events_subject ON events (subject, id);
CREATE TABLE IF NOT EXISTS state (key BLOB PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS block_writes (height INTEGER PRIMARY KEY, writes BLOB NOT NULL);
-- Databases written before receipts were read by their transactions' ids have an index of txs
-- by height that nothing reads any more, and every commit would keep paying to update.
DROP INDEX IF EXISTS txs_height;
CREATE TABLE IF NOT EXISTS checkpoint_proofs (seq INTEGER PRIMARY KEY, proof BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS wal (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    view INTEGER,
    seq INTEGER,
    entry BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS wal_seq ON wal (seq);
CREATE TABLE IF NOT EXISTS signed (
    kind TEXT NOT NULL,
    view INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    message BLOB NOT NULL,
    PRIMARY KEY (kind, view, seq)
);
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class Head:
    height: int
    hash: bytes
    state_digest: bytes
    timestamp_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredBlock:
    block: Block
    certificate: CommitCertificate | None
    state_digest: bytes


# An event as stored: (tx hash, contract, kind, subject, canonical encoding of its data).
EventRow = tuple[bytes, str, str, str, bytes]


@dataclass(frozen=True, slots=True, kw_only=True)
class BlockRecord:
    """A committed block as the store keeps it, in encoded form: what an executed block
    becomes (Storage.commit_block), and what a peer catching up builds from fetched history
    without decoding it into objects (node/catchup.py)."""

    height: int
    hash: bytes
    wire: bytes  # the block's canonical encoding
    certificate: bytes  # the commit certificate's canonical encoding
    timestamp_ms: int
    state_digest: bytes  # after this block
    receipts: Sequence[tuple[bytes, bytes]]  # (tx hash, receipt encoding), by index
    events: Sequence[EventRow]
    writes: Mapping[bytes, bytes | None]  # the block's net writes; None deletes


@dataclass(frozen=True, slots=True, kw_only=True)
class HistoryRow:
    """What a peer needs to rebuild the state after one block without executing it (raw)."""

    height: int
    block: bytes  # the block's wire form
    certificate: bytes
    receipts: list[bytes]  # the receipts held in the txs table, in index order
    writes: bytes | None  # the block's write-set blob (encode_write_set); None if not kept

    @property
    def size(self) -> int:
        """The bytes the row brings to a /peer/history answer, which is cut by their sum."""
        return (
            len(self.block)
            + len(self.certificate)
            + len(self.writes or b"")
            + sum(map(len, self.receipts))
        )


def encode_write_set(
    writes: Mapping[bytes, bytes | None], shadowed: Sequence[tuple[int, bytes]]
) -> bytes:
    """A block's write-set blob: [[[key, value or nil], ...sorted by key], [[index, receipt
    encoding], ...sorted by index]]. The second list holds the block's receipts the txs tables
    do not find by hash: those of transactions another inclusion counts for (see
    commit_record)."""
    return encode(
        [[[key, writes[key]] for key in sorted(writes)], [list(item) for item in sorted(shadowed)]]
    )


STATE_CACHE_MAX = 100_000
# Rows recent_txs gathers before they move into txs in sorted inserts: a larger batch writes
# fewer of the txs index's pages a row, and holds more hashes in memory (about 150 bytes each).
RECENT_TXS_MAX = 20_000
# The move goes one slice of the hash range (by the hash's first byte) a commit: all at once,
# 20,000 rows held the commit that moved them, and the node's event loop, for about 50 ms, and
# in eighths the extra work still came in a burst that lengthened the latency's tail near
# saturation.
MOVE_SLICES = 32  # at most 64: see _row_id
_SLICE_SHIFT = 57
_HEIGHT_SHIFT = 24
_SQL_VARIABLES_MAX = 500  # parameters per statement (SQLite allows at least 999)
# SQLite's page cache while a catch-up writes history (see Storage.large_cache).
BULK_CACHE_KIB = 64 * 1024
CHECKPOINT_EVERY_S = 1.0
TX_FILTER_LOAD_ROWS = 65_536  # hashes a step while the filter of committed ones is built
# Should background checkpoints fall behind or stop, the writer checkpoints itself past this many
# WAL pages (64 MiB), as SQLite does past 1,000 by default.
CHECKPOINT_BACKSTOP_PAGES = 16_384

# The layout of the tables, kept in the database's user_version. A number above this one was
# written by newer code, whose layout this code could misread: it refuses to open it. An older one
# is brought up to this one as the database opens (Storage._upgrade_layout):
# 0  from before the number was kept; the schema script above brings its tables up to date.
# 0, 1  written (until the rule of _place_receipts came) with a transaction included more than
#    once found by hash at its first inclusion, even where that one failed a gate and a later one
#    used its nonce (the module docstring says why the later one counts): the rule moves such
#    rows. Code after the rule wrote layout 1 too, in which it finds nothing to move.
# 2  every row placed by the rule.
LAYOUT_VERSION = 2
# The meta key of the protocol version (node/protocol.py) the chain and its log were written with.
PROTOCOL_KEY = "protocol_version"
# Write sets read at a time while a database of layout 0 or 1 is brought up to date.
UPGRADE_BLOCKS_STEP = 32
# How a nonce record's key ends (contracts.accounts.nonce_key).
_NONCE_KEY_END = b"/nonce"


def _decoded_version(raw: bytes) -> int | None:
    """The protocol version a meta value records, None if it records none that can be read."""
    try:
        version = decode(raw)
    except LedgerError:
        return None
    return version if isinstance(version, int) and not isinstance(version, bool) else None


class Storage:
    """One node's database. Not thread-safe: the node's event loop is its only user."""

    def __init__(self, path: Path, *, fsync: bool = False) -> None:
        """Open (or create) the database at `path`. `fsync`: force every commit to disk before
        it returns (synchronous=FULL), so a power cut loses no commit; without it a commit
        reaches the OS (synchronous=NORMAL), which is enough when only the process dies."""
        self.fsync = fsync
        # Why the storage stopped taking writes (a commit the database refused), or None; and
        # who to tell when it does (see _commit_batch).
        self.failed: str | None = None
        self.on_failure: Callable[[str], None] | None = None
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            layout = self._check_layout(path)
            upgrade = self._check_protocol(path)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={'FULL' if fsync else 'NORMAL'}")
            self._db.executescript(_SCHEMA)
            if upgrade:
                self._set_meta(PROTOCOL_KEY, encode(PROTOCOL_VERSION))
                log.warning(
                    "%s was written under protocol %d, now recorded as %d: view changes in its "
                    "log from before are refused as it replays (upgrade every validator together: "
                    "nodes of different versions refuse each other's links)",
                    path,
                    UNSTATED_VERSION,
                    PROTOCOL_VERSION,
                )
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise StorageError(
                f"cannot open {path}: {exc}. Restore it from a copy, or delete the node's data "
                "directory and start the node again: it fetches the chain from its peers"
            ) from exc
        except BaseException:
            self._db.close()
            raise
        # A write-through cache of the state table (this process is its only writer): hot keys
        # (identities, nonces, stock) are read by admission and execution for every transaction.
        self._state_cache: dict[bytes, bytes | None] = {}
        self._batch_depth = 0
        self._bulk_depth = 0
        self._cache_size = int(self._db.execute("PRAGMA cache_size").fetchone()[0])
        self._path = path
        self._checkpointer: _Checkpointer | None = None
        # Built from the transaction tables by `load_tx_filter` (a node does so as it starts) or
        # else on the first `has_tx` or commit: readers that never ask spare the scan.
        self._tx_filter: TxFilter | None = None
        # The slice of the hash range the next commit moves into txs, while a move goes on.
        self._move_slice: int | None = None
        # hash -> id of every row in recent_txs (the table has no index of its own).
        self._recent = _RecentIds()
        try:
            self._recent.update(
                (bytes(tx_hash), row_id)
                for tx_hash, row_id in self._db.execute("SELECT hash, id FROM recent_txs")
            )
            if layout < LAYOUT_VERSION:
                self._upgrade_layout(path, layout)
        except (sqlite3.DatabaseError, StorageError) as exc:
            self._db.close()
            raise StorageError(
                f"cannot read {path}: {exc}. Restore it from a copy, or delete the node's data "
                "directory and start the node again: it fetches the chain from its peers"
            ) from exc
        except BaseException:
            self._db.close()
            raise

    def _check_layout(self, path: Path) -> int:
        """The layout number of the tables in `path` (0 for a new file). Refuse, before
        anything is written, a file that is not an SQLite database or one in a layout newer
        than this code's."""
        try:
            version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
        except sqlite3.DatabaseError as exc:
            raise StorageError(f"{path} is not a millchain database ({exc})") from exc
        if version > LAYOUT_VERSION:
            raise StorageError(
                f"{path} holds tables in layout {version}, written by a newer millchain; this "
                f"one reads layouts up to {LAYOUT_VERSION}"
            )
        return version

    def _check_protocol(self, path: Path) -> bool:
        """Whether the database holds a chain of protocol version 1, to be recorded as this
        code's; refuses, before anything is written, one of a later version or of a version it
        cannot read (see the module docstring)."""
        has_meta = self._db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
        ).fetchone()
        if has_meta is None or self._meta("genesis_hash") is None:
            return False  # no chain yet: `initialise` records this code's version with the genesis
        raw = self._meta(PROTOCOL_KEY)
        if raw is None:
            return True  # written before versions were recorded: version 1
        found = _decoded_version(raw)
        if found == PROTOCOL_VERSION:
            return False
        if found == UNSTATED_VERSION:
            return True
        recorded = "an unreadable protocol version" if found is None else f"protocol {found}"
        raise StorageError(
            f"{path} holds a chain written under {recorded}, and this millchain speaks protocol "
            f"{PROTOCOL_VERSION}, which cannot read it. Run the millchain that wrote it, or "
            f"delete the node's data directory ({path.parent}) and start the node again: it "
            "fetches the chain from its peers (which must run this version too)"
        )

    def checkpoint_in_background(self) -> None:
        """Copy the WAL into the database file from a thread of its own from now on.

        SQLite's automatic checkpoint runs inside the COMMIT that crosses 1,000 WAL pages, on
        the event loop: at full load a node's loop spent about 4 % of its time there, most of it
        waiting for fdatasync (some 16 ms a time on this kind of VM) while every peer waited on
        it. The thread's own connection does the same work concurrently (sqlite3 releases the
        GIL while it runs); the writer keeps its automatic checkpoint as a backstop only."""
        if self._checkpointer is None:
            self._db.execute(f"PRAGMA wal_autocheckpoint = {CHECKPOINT_BACKSTOP_PAGES}")
            self._checkpointer = _Checkpointer(self._path)

    def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()
            self._checkpointer = None
        self._db.close()

    # -- genesis -----------------------------------------------------------------------------

    def initialise(
        self,
        *,
        genesis_hash: bytes,
        writes: Mapping[bytes, bytes | None],
        digest: bytes,
        time_ms: int,
    ) -> None:
        """Write genesis state once; on later starts check the database belongs to this chain."""
        stored = self._meta("genesis_hash")
        if stored is not None:
            if stored != genesis_hash:
                raise StorageError(
                    "the data directory belongs to another chain (genesis hash "
                    f"{stored.hex()[:16]}, expected {genesis_hash.hex()[:16]})"
                )
            return
        with self._transaction():
            self._apply_writes(writes)
            self._set_meta("genesis_hash", genesis_hash)
            self._set_meta("genesis_digest", digest)
            self._set_meta("genesis_time_ms", encode(time_ms))
            self._set_meta(PROTOCOL_KEY, encode(PROTOCOL_VERSION))

    def head(self) -> Head:
        row = self._db.execute(
            "SELECT height, hash, state_digest, timestamp_ms FROM blocks "
            "ORDER BY height DESC LIMIT 1"
        ).fetchone()
        if row is None:
            return self.genesis_head()
        return Head(height=row[0], hash=row[1], state_digest=row[2], timestamp_ms=row[3])

    def genesis_head(self) -> Head:
        """The chain's start (height 0): what block 1 builds on."""
        digest = self._meta("genesis_digest")
        time_raw = self._meta("genesis_time_ms")
        if digest is None or time_raw is None:
            raise StorageError("storage is not initialised with a genesis")
        return Head(height=0, hash=ZERO_HASH, state_digest=digest, timestamp_ms=decode(time_raw))

    # -- blocks ------------------------------------------------------------------------------

    def commit_block(
        self, block: Block, certificate: CommitCertificate, result: BlockResult
    ) -> None:
        """Persist an executed block, its receipts, events and state writes atomically."""
        self.commit_record(
            BlockRecord(
                height=block.height,
                hash=block.hash,
                wire=block.to_wire(),
                certificate=certificate.to_wire(),
                timestamp_ms=block.header.timestamp_ms,
                state_digest=result.state_digest,
                receipts=[(r.tx_hash, r.encoded()) for r in result.receipts],
                events=[
                    (r.tx_hash, e.contract, e.kind, e.subject, e.data_encoded())
                    for r in result.receipts
                    for e in r.events
                ],
                writes=result.writes,
            )
        )

    def commit_record(self, record: BlockRecord) -> None:
        """Persist a block in encoded form (see BlockRecord) atomically."""
        head = self.head()
        if record.height != head.height + 1:
            raise StorageError(f"block {record.height} does not follow the head {head.height}")
        height = record.height
        # Read before anything is written: where each receipt goes depends on the state the
        # block found (see _NonceUse).
        placed = _place_receipts(
            record, self._stored_rows([tx_hash for tx_hash, _ in record.receipts]), self
        )
        with self._block_unit():
            self._db.execute(
                "INSERT INTO blocks VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    height,
                    record.hash,
                    record.wire,
                    record.certificate,
                    record.state_digest,
                    record.timestamp_ms,
                    len(record.receipts),
                ),
            )
            self._displace(placed.displaced)
            self._db.executemany("INSERT INTO recent_txs VALUES (?, ?, ?, ?, ?)", placed.rows)
            self._db.execute(
                "INSERT INTO block_writes VALUES (?, ?)",
                (height, encode_write_set(record.writes, list(placed.shadowed.items()))),
            )
            self._db.executemany(
                "INSERT INTO events (height, tx_hash, contract, kind, subject, data) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [(height, *event) for event in record.events],
            )
            self._apply_writes(record.writes)
            move_slice = self._move_slice
            if move_slice is None and len(self._recent) + len(placed.rows) >= RECENT_TXS_MAX:
                move_slice = 0
            if move_slice is not None:
                low, high = _slice_ids(move_slice)
                # In hash order, so each page of the txs index is written once a move.
                self._db.execute(
                    "INSERT INTO txs SELECT hash, height, idx, receipt FROM recent_txs "
                    "WHERE id BETWEEN ? AND ? ORDER BY hash",
                    (low, high),
                )
                self._db.execute("DELETE FROM recent_txs WHERE id BETWEEN ? AND ?", (low, high))
        # Once the rows are written (an enclosing batch commits them even when it ends with an
        # error); a savepoint rolled back above leaves the memory as it was. A displaced row's
        # hash gets its new row's id here (both lie in the hash's slice).
        self._recent.update((row[1], row[0]) for row in placed.rows)
        if move_slice is not None:
            self._recent.drop_slice(move_slice)
            self._move_slice = move_slice + 1 if move_slice + 1 < MOVE_SLICES else None
        if self._tx_filter is not None:
            # A hash missing from the filter must be missing from the tables.
            joined = b"".join(h for h, _ in record.receipts if len(h) == HASH_BYTES)
            self._tx_filter.add_joined(joined, HASH_BYTES)

    def _displace(self, displaced: Mapping[bytes, _TxRow]) -> None:
        """Drop the rows found by hash for `displaced` (a new row takes their place) and keep
        each one's receipt in its own block's write-set blob, so that block still shows it."""
        by_height: dict[int, list[tuple[int, bytes]]] = {}
        for tx_hash, row in displaced.items():
            if row.recent_id is None:
                self._db.execute("DELETE FROM txs WHERE hash = ?", (tx_hash,))
            else:
                self._db.execute("DELETE FROM recent_txs WHERE id = ?", (row.recent_id,))
            by_height.setdefault(row.height, []).append((row.index, row.receipt))
        for height, receipts in sorted(by_height.items()):
            found = self._db.execute(
                "SELECT writes FROM block_writes WHERE height = ?", (height,)
            ).fetchone()
            if found is None:
                # Stored by a version that kept no write sets: the block shows no receipt for
                # these (block_receipts), and peers execute it rather than rebuild it.
                log.warning(
                    "block %d keeps no write set; the receipts of %d of its transactions, "
                    "included again later, are no longer kept",
                    height,
                    len(receipts),
                )
                continue
            try:
                changes, extra = decode(bytes(found[0]))
                kept = {int(index): bytes(receipt) for index, receipt in extra}
            except (LedgerError, TypeError, ValueError) as exc:
                raise StorageError(
                    f"the write set of block {height} cannot be read: {exc}"
                ) from exc
            kept.update(receipts)
            blob = encode([changes, [[index, kept[index]] for index in sorted(kept)]])
            self._db.execute("UPDATE block_writes SET writes = ? WHERE height = ?", (blob, height))

    # -- databases of earlier layouts ------------------------------------------------------------

    def _upgrade_layout(self, path: Path, found: int) -> None:
        """Bring the tables from layout `found` (see LAYOUT_VERSION) to this code's, the number
        with them, in one database transaction: an error or a crash leaves the file in layout
        `found`, and the next start begins again. The schema script has added what was missing;
        what is left is which inclusion a transaction's hash finds. Running it on tables already
        placed by the rule finds nothing to move, so a start cut short costs only time."""
        try:
            with self._transaction():
                moved = self._replace_reincluded_receipts()
                self._db.execute(f"PRAGMA user_version = {LAYOUT_VERSION}")
        except StorageError as exc:
            raise StorageError(
                f"its tables cannot be brought from layout {found} to layout {LAYOUT_VERSION} "
                f"(they are left as they were): {exc}"
            ) from exc
        if moved:
            log.warning(
                "%s: brought from layout %d to %d; %d transactions included more than once are "
                "now found at the inclusion that used their nonce, not an earlier one that "
                "failed a gate",
                path,
                found,
                LAYOUT_VERSION,
                moved,
            )

    def _replace_reincluded_receipts(self) -> int:
        """Place again, in height order, the receipts of every block whose write-set blob keeps
        a receipt of a transaction found by hash at an earlier inclusion, by the rule a commit
        applies (_place_receipts); the number of rows moved. Blobs are read UPGRADE_BLOCKS_STEP
        at a time, and only a block that keeps such a receipt is read further."""
        moved = 0
        after = 0
        while found := self._db.execute(
            "SELECT height, writes FROM block_writes WHERE height > ? ORDER BY height LIMIT ?",
            (after, UPGRADE_BLOCKS_STEP),
        ).fetchall():
            for height, blob in found:
                after = height
                placed = self._replace_block_receipts(height, bytes(blob))
                if placed:
                    moved += placed
                    break  # it rewrote blobs: those left in `found` are read again
        return moved

    def _replace_block_receipts(self, height: int, blob: bytes) -> int:
        """Place block `height`'s receipts again (its write-set blob is `blob`) if it keeps one
        of a transaction found by hash at an earlier inclusion, as the block's commit would
        have placed them with the rows the earlier blocks now hold; the number of rows moved.
        The displaced rows' receipts go to their own blocks' blobs (_displace), the new rows to
        recent_txs, as in a commit."""
        kept = _kept_receipts(blob, height)
        if not kept:
            return 0
        stored = self._db.execute(
            "SELECT hash, block, certificate, state_digest, timestamp_ms FROM blocks "
            "WHERE height = ?",
            (height,),
        ).fetchone()
        if stored is None:
            raise StorageError(f"block {height} has a write set but no block")
        wire = bytes(stored[1])
        tx_ids = _tx_ids(wire)
        if max(kept) >= len(tx_ids):
            raise StorageError(
                f"the write set of block {height} keeps a receipt for transaction {max(kept)}; "
                f"the block holds {len(tx_ids)}"
            )
        rows = self._tx_rows(tx_ids)
        if not any(
            (row := rows.get(tx_ids[index])) is not None
            and (row.height, row.index) < (height, index)
            for index in kept
        ):
            return 0
        record = BlockRecord(
            height=height,
            hash=bytes(stored[0]),
            wire=wire,
            certificate=bytes(stored[2]),
            timestamp_ms=int(stored[4]),
            state_digest=bytes(stored[3]),
            receipts=_block_receipts(height, tx_ids, rows, kept),
            events=(),  # placing receipts reads none
            writes=_write_set_changes(blob, height),
        )
        placed = _place_receipts(
            record,
            {tx_hash: row for tx_hash, row in rows.items() if row.height != height},
            _StateBefore(self._db, height),
        )
        here = {tx_hash: row for tx_hash, row in rows.items() if row.height == height}
        moved = [
            new
            for new in placed.rows
            if (old := here.get(new[1])) is None or (old.height, old.index) != (new[2], new[3])
        ]
        if not moved:
            return 0
        self._displace(placed.displaced)
        for new in moved:
            old = here.get(new[1])
            if old is None:
                continue
            # Another inclusion in this block used the nonce: its receipt stays in the blob.
            if old.recent_id is None:
                self._db.execute("DELETE FROM txs WHERE hash = ?", (new[1],))
            else:
                self._db.execute("DELETE FROM recent_txs WHERE id = ?", (old.recent_id,))
        self._db.executemany("INSERT INTO recent_txs VALUES (?, ?, ?, ?, ?)", moved)
        self._db.execute(
            "UPDATE block_writes SET writes = ? WHERE height = ?",
            (encode_write_set(record.writes, list(placed.shadowed.items())), height),
        )
        # Now, not once the transaction commits: later blocks look these rows up. An error
        # closes the storage, so nothing is left of this memory.
        self._recent.update((new[1], new[0]) for new in moved)
        return len(moved)

    def block(self, height: int) -> StoredBlock | None:
        row = self._db.execute(
            "SELECT block, certificate, state_digest FROM blocks WHERE height = ?", (height,)
        ).fetchone()
        return None if row is None else _stored_block(row)

    def block_by_hash(self, block_hash: bytes) -> StoredBlock | None:
        row = self._db.execute(
            "SELECT block, certificate, state_digest FROM blocks WHERE hash = ?", (block_hash,)
        ).fetchone()
        return None if row is None else _stored_block(row)

    def block_range(self, start: int, end: int) -> list[tuple[int, bytes, bytes]]:
        """Raw (height, block wire, certificate wire) for start <= height <= end, as far as a
        /peer/blocks answer takes them: up to the first that brings their bytes past
        FETCH_BYTES_MAX, where node/sync.py cuts the answer (`encode_blocks`). Anybody may ask
        for FETCH_BLOCKS_MAX blocks: reading them all held the event loop, and their bytes,
        for an answer of a fraction of them (as history_range did)."""
        cursor = self._db.execute(
            "SELECT height, block, certificate FROM blocks WHERE height BETWEEN ? AND ? "
            "ORDER BY height",
            (start, end),
        )
        rows: list[tuple[int, bytes, bytes]] = []
        size = 0
        while size <= FETCH_BYTES_MAX and (found := cursor.fetchone()) is not None:
            height, block, certificate = found
            rows.append((height, block, certificate))
            size += len(block) + len(certificate)
        return rows

    def history_range(self, start: int, end: int) -> list[HistoryRow]:
        """Blocks start..end with what rebuilds the state after each (see HistoryRow), as far
        as a /peer/history answer takes them: up to the first that brings their bytes past
        FETCH_BYTES_MAX, where node/history.py cuts the answer (`encode_history`). Reading all
        FETCH_BLOCKS_MAX a peer may ask for, receipts looked up by hash, held the serving
        node's event loop through 200 blocks of 200 KiB to send 39 (0.3-0.7 s, not 25-45 ms)."""
        cursor = self._db.execute(
            "SELECT blocks.height, block, certificate, writes FROM blocks "
            "LEFT JOIN block_writes ON block_writes.height = blocks.height "
            "WHERE blocks.height BETWEEN ? AND ? ORDER BY blocks.height",
            (start, end),
        )
        rows: list[HistoryRow] = []
        size = 0
        while size <= FETCH_BYTES_MAX and (found := cursor.fetchone()) is not None:
            height, block, certificate, writes = found
            row = HistoryRow(
                height=height,
                block=block,
                certificate=certificate,
                receipts=self._held_receipts(height, block),
                writes=writes,
            )
            rows.append(row)
            size += row.size
        return rows

    def put_checkpoint_proof(self, seq: int, proof: bytes) -> None:
        """Keep the proof that a quorum signed the state after block `seq` (msgpack list of
        signed checkpoint messages), for peers catching up."""
        self._db.execute("INSERT OR REPLACE INTO checkpoint_proofs VALUES (?, ?)", (seq, proof))

    def latest_checkpoint_proof(self, at_most: int) -> tuple[int, bytes] | None:
        """(seq, proof) of the highest stable checkpoint kept at or below `at_most`, if any."""
        row = self._db.execute(
            "SELECT seq, proof FROM checkpoint_proofs WHERE seq <= ? ORDER BY seq DESC LIMIT 1",
            (at_most,),
        ).fetchone()
        return None if row is None else (int(row[0]), bytes(row[1]))

    def checkpoint_proofs(self, start: int, end: int) -> list[tuple[int, bytes]]:
        """(seq, proof) of the stable checkpoints kept for start <= seq <= end, ascending."""
        rows = self._db.execute(
            "SELECT seq, proof FROM checkpoint_proofs WHERE seq BETWEEN ? AND ? ORDER BY seq",
            (start, end),
        ).fetchall()
        return [(int(row[0]), bytes(row[1])) for row in rows]

    def recent_blocks(self, limit: int) -> list[dict[str, Any]]:
        rows = self._db.execute(
            "SELECT height, hash, timestamp_ms, tx_count, state_digest FROM blocks "
            "ORDER BY height DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [
            {
                "height": r[0],
                "hash": r[1].hex(),
                "timestamp_ms": r[2],
                "tx_count": r[3],
                "state_digest": r[4].hex(),
            }
            for r in rows
        ]

    def receipt(self, tx_hash: bytes) -> Receipt | None:
        """The receipt of the inclusion that counts for the transaction (see commit_record);
        None if no block included it."""
        raw = self._receipt_raw(tx_hash)
        return None if raw is None else Receipt.from_map(decode(raw))

    def tx_succeeded(self, tx_hash: bytes) -> bool | None:
        """Whether the transaction's inclusion that counts succeeded; None if no block
        included it. Cheaper than `receipt`: only the outcome is read."""
        if len(tx_hash) == HASH_BYTES and not self.load_tx_filter().may_contain(tx_hash):
            return None
        raw = self._receipt_raw(tx_hash)
        return None if raw is None else _receipt_ok(raw, f"the receipt of {tx_hash.hex()}")

    def _receipt_raw(self, tx_hash: bytes) -> bytes | None:
        row_id = self._recent.get(tx_hash)
        if row_id is not None:
            row = self._db.execute("SELECT receipt FROM recent_txs WHERE id = ?", (row_id,))
        else:
            row = self._db.execute("SELECT receipt FROM txs WHERE hash = ?", (tx_hash,))
        found = row.fetchone()
        return None if found is None else bytes(found[0])

    def block_receipts(self, height: int, block: Block) -> list[Receipt | None]:
        """The receipt each transaction of stored block `height` (`block`) got there, in block
        order. A transaction whose row found by hash is another inclusion's has its receipt
        for this block in the block's write set (see commit_record); None where neither holds
        one (a block stored by a version that kept no write sets)."""
        held = self._receipts_held(height, [tx.hash for tx in block.txs])
        row = self._db.execute(
            "SELECT writes FROM block_writes WHERE height = ?", (height,)
        ).fetchone()
        extra: dict[int, bytes] = {}
        if row is not None:
            _, shadowed = decode(bytes(row[0]))
            extra = {int(index): bytes(receipt) for index, receipt in shadowed}
        return [
            None if raw is None else Receipt.from_map(decode(raw))
            for raw in (extra.get(index) if raw is None else raw for index, raw in enumerate(held))
        ]

    def load_tx_filter(self) -> TxFilter:
        """The filter of committed hashes, built now if it was not yet (about a second a
        million): a node builds it as it starts, lest its first admission stall the event loop."""
        if self._tx_filter is None:
            self._tx_filter = self._load_tx_filter()
        return self._tx_filter

    def _load_tx_filter(self) -> TxFilter:
        loaded = TxFilter()
        # Every stored hash has HASH_BYTES; the query says so rather than trust it.
        for table in ("txs", "recent_txs"):
            cursor = self._db.execute(
                f"SELECT hash FROM {table} WHERE length(hash) = ?", (HASH_BYTES,)
            )
            while rows := cursor.fetchmany(TX_FILTER_LOAD_ROWS):
                loaded.add_joined(b"".join(row[0] for row in rows), HASH_BYTES)
        return loaded

    def has_tx(self, tx_hash: bytes) -> bool:
        if len(tx_hash) == HASH_BYTES and not self.load_tx_filter().may_contain(tx_hash):
            return False  # certainly not committed: see node/txfilter.py
        if tx_hash in self._recent:
            return True
        row = self._db.execute("SELECT 1 FROM txs WHERE hash = ?", (tx_hash,)).fetchone()
        return row is not None

    def _stored_rows(self, tx_hashes: Sequence[bytes]) -> dict[bytes, _TxRow]:
        """The rows of those of `tx_hashes` a committed block included already."""
        tx_filter = self.load_tx_filter()
        maybe = [h for h in tx_hashes if len(h) != HASH_BYTES or tx_filter.may_contain(h)]
        return self._tx_rows(maybe) if maybe else {}

    def events(self, subject: str, limit: int = 1000) -> list[dict[str, Any]]:
        """The newest `limit` events about `subject`, oldest first. The newest: a subject's
        history grows with the chain (a machine's every report), and its first `limit`
        events would hide for good what happened since."""
        rows = self._db.execute(
            "SELECT height, tx_hash, contract, kind, subject, data FROM events "
            "WHERE subject = ? ORDER BY id DESC LIMIT ?",
            (subject, limit),
        ).fetchall()
        rows.reverse()
        return [
            {
                "height": r[0],
                "tx_hash": r[1].hex(),
                "contract": r[2],
                "kind": r[3],
                "subject": r[4],
                "data": decode(r[5]),
            }
            for r in rows
        ]

    # -- the consensus input log (write-ahead: an input is on disk before what follows leaves) --

    def wal_append(self, kind: str, view: int | None, seq: int | None, entry: bytes) -> None:
        self._db.execute(
            "INSERT INTO wal (kind, view, seq, entry) VALUES (?, ?, ?, ?)", (kind, view, seq, entry)
        )

    def wal_entries(self) -> Iterator[tuple[str, bytes]]:
        cursor = self._db.execute("SELECT kind, entry FROM wal ORDER BY id")
        for kind, entry in cursor:
            yield str(kind), bytes(entry)

    def signed_put(self, kind: str, view: int, seq: int, message: bytes) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO signed VALUES (?, ?, ?, ?)", (kind, view, seq, message)
        )

    def signed_all(self) -> list[bytes]:
        rows = self._db.execute("SELECT message FROM signed ORDER BY view, seq, kind").fetchall()
        return [bytes(row[0]) for row in rows]

    def log_prune(self, *, stable_seq: int, view: int) -> int:
        """Forget consensus records a restart no longer needs: those for sequence numbers at or
        below a stable checkpoint, and view-change records of views before the current one."""
        pruned = 0
        for table in ("wal", "signed"):
            cursor = self._db.execute(
                f"DELETE FROM {table} WHERE (seq IS NOT NULL AND seq > 0 AND seq <= ?)"
                " OR (view < ? AND (seq IS NULL OR seq = 0))",
                (stable_seq, view),
            )
            pruned += cursor.rowcount
        return pruned

    def wal_size(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM wal").fetchone()[0])

    def set_meta_value(self, key: str, value: bytes) -> None:
        self._set_meta(key, value)

    def meta_value(self, key: str) -> bytes | None:
        return self._meta(key)

    # -- state (the contracts' StateReader) --------------------------------------------------

    def get(self, key: bytes) -> bytes | None:
        cache = self._state_cache
        if key in cache:
            return cache[key]
        row = self._db.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        value = None if row is None else bytes(row[0])
        if len(cache) >= STATE_CACHE_MAX:
            cache.clear()  # crude but bounded; hot keys come back at once
        cache[key] = value
        return value

    def scan(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        end = _prefix_end(prefix)
        if end is None:
            cursor = self._db.execute(
                "SELECT key, value FROM state WHERE key >= ? ORDER BY key", (prefix,)
            )
        else:
            cursor = self._db.execute(
                "SELECT key, value FROM state WHERE key >= ? AND key < ? ORDER BY key",
                (prefix, end),
            )
        for key, value in cursor.fetchall():
            yield bytes(key), bytes(value)

    def scan_last(self, prefix: bytes, limit: int) -> list[tuple[bytes, bytes]]:
        if limit <= 0:
            return []
        end = _prefix_end(prefix)
        if end is None:
            rows = self._db.execute(
                "SELECT key, value FROM state WHERE key >= ? ORDER BY key DESC LIMIT ?",
                (prefix, limit),
            ).fetchall()
        else:
            rows = self._db.execute(
                "SELECT key, value FROM state WHERE key >= ? AND key < ? ORDER BY key DESC LIMIT ?",
                (prefix, end, limit),
            ).fetchall()
        return [(bytes(key), bytes(value)) for key, value in reversed(rows)]

    def scan_after(self, prefix: bytes, after: bytes, limit: int) -> list[tuple[bytes, bytes]]:
        if limit <= 0:
            return []
        end = _prefix_end(prefix)
        if end is None:
            rows = self._db.execute(
                "SELECT key, value FROM state WHERE key >= ? AND key > ? ORDER BY key LIMIT ?",
                (prefix, after, limit),
            ).fetchall()
        else:
            rows = self._db.execute(
                "SELECT key, value FROM state WHERE key >= ? AND key > ? AND key < ? "
                "ORDER BY key LIMIT ?",
                (prefix, after, end, limit),
            ).fetchall()
        return [(bytes(key), bytes(value)) for key, value in rows]

    # -- internals ---------------------------------------------------------------------------

    def _apply_writes(self, writes: Mapping[bytes, bytes | None]) -> None:
        upserts = [(k, v) for k, v in writes.items() if v is not None]
        deletes = [(k,) for k, v in writes.items() if v is None]
        self._db.executemany("INSERT OR REPLACE INTO state VALUES (?, ?)", upserts)
        self._db.executemany("DELETE FROM state WHERE key = ?", deletes)
        # Only after both statements succeeded; a rolled-back block must not leave its writes
        # here, so callers that roll back drop the cache (see _Transaction).
        cache = self._state_cache
        for key, value in writes.items():
            if key in cache:
                cache[key] = value

    def _held_receipts(self, height: int, block: bytes) -> list[bytes]:
        """The receipts the txs tables find by hash for block `height` (stored as `block`), in
        index order: all but those kept in its write-set blob (see commit_record)."""
        return [raw for raw in self._receipts_held(height, _tx_ids(block)) if raw is not None]

    def _receipts_held(self, height: int, tx_ids: Sequence[bytes]) -> list[bytes | None]:
        """Per transaction of block `height` (by id, in order), the receipt the txs tables find
        by hash for it there; None where the row found is another inclusion's (the receipt
        here is in the block's write set)."""
        found = self._tx_rows(tx_ids)
        missing = [tx_id for tx_id in tx_ids if tx_id not in found]
        if missing:
            raise StorageError(f"block {height}'s transaction {missing[0].hex()} has no row")
        return [
            found[tx_id].receipt
            if (found[tx_id].height, found[tx_id].index) == (height, index)
            else None
            for index, tx_id in enumerate(tx_ids)
        ]

    def _tx_rows(self, tx_hashes: Sequence[bytes]) -> dict[bytes, _TxRow]:
        """The row found by hash for each of `tx_hashes` that a block included (by hash in
        txs, by id in recent_txs: neither table has an index by height)."""
        found: dict[bytes, _TxRow] = {}
        recent: list[int] = []
        older: list[bytes] = []
        for tx_hash in tx_hashes:
            row_id = self._recent.get(tx_hash)
            if row_id is None:
                older.append(tx_hash)
            else:
                recent.append(row_id)
        for keys, query in (
            (recent, "SELECT hash, height, idx, receipt, id FROM recent_txs WHERE id IN ({})"),
            (older, "SELECT hash, height, idx, receipt, NULL FROM txs WHERE hash IN ({})"),
        ):
            for start in range(0, len(keys), _SQL_VARIABLES_MAX):
                part = keys[start : start + _SQL_VARIABLES_MAX]
                rows = self._db.execute(query.format(", ".join("?" * len(part))), part)
                for tx_hash, height, index, receipt, row_id in rows:
                    found[bytes(tx_hash)] = _TxRow(
                        height=height, index=index, receipt=bytes(receipt), recent_id=row_id
                    )
        return found

    def _meta(self, key: str) -> bytes | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    def _set_meta(self, key: str, value: bytes) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db, self._state_cache)

    @contextlib.contextmanager
    def _block_unit(self) -> Iterator[None]:
        """Where a block's writes go: a unit of their own (_Transaction), or, in `bulk` inside a
        batch, the batch's database transaction, which a failure halfway then rolls back whole."""
        if not (self._bulk_depth and self._db.in_transaction):
            with self._transaction():
                yield
            return
        try:
            yield
        except BaseException as exc:
            # Part of the block may be written, with no savepoint to take it back: the batch
            # must not commit. The storage stops, as when a COMMIT is refused.
            self._state_cache.clear()
            self._stop(f"a block's writes failed halfway in a bulk batch ({exc!r})")
            raise

    @contextlib.contextmanager
    def bulk(self) -> Iterator[None]:
        """Blocks committed inside a batch (Storage.batch) share its database transaction
        instead of taking a savepoint each; re-entrant. For runs of fetched blocks (catching up).

        SQLite copies each page a savepoint's statements touch for the first time into a
        sub-journal, so it can roll the savepoint back: for a fetched block of 65 transactions
        that was about a fifth of what storing it cost (scripts/storage_bulk.py). The price
        is what a failure halfway through a block costs: with no savepoint to undo the part
        written, the whole batch is rolled back, and the storage stops (see _commit_batch)."""
        self._bulk_depth += 1
        try:
            yield
        finally:
            self._bulk_depth -= 1

    @contextlib.contextmanager
    def large_cache(self) -> Iterator[None]:
        """A page cache of BULK_CACHE_KIB while history is written in bulk (catching up).

        Every RECENT_TXS_MAX transactions move into the txs index, which is keyed by hash:
        with a million rows there, a move writes to most of its leaves, and with SQLite's
        default cache of a few MiB each of those reads its page from the OS again (when each
        row went in on its own, about a sixth of what an insert cost at that size). The default
        comes back at the end, which frees the extra pages: a node that follows the chain live
        does not keep the memory.
        """
        self._db.execute(f"PRAGMA cache_size = {-BULK_CACHE_KIB}")
        try:
            yield
        finally:
            self._db.execute(f"PRAGMA cache_size = {self._cache_size}")

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Group every write made inside into one database transaction (re-entrant).

        Used around one burst of input (a peer's batch, a client's batch, a timer tick), so
        its log records, signed messages and committed blocks cost one commit instead of one
        each. What was written is committed when the outermost batch ends, also when it ends
        with an error (as it would have been without the batch); a block's own writes stay
        atomic inside it (a savepoint).
        """
        if self._batch_depth:
            self._batch_depth += 1
            try:
                yield
            finally:
                self._batch_depth -= 1
            return
        if self.failed is not None:
            raise StorageError(f"storage stopped: {self.failed}")
        self._db.execute("BEGIN IMMEDIATE")
        self._batch_depth = 1
        try:
            yield
        finally:
            self._batch_depth = 0
            self._commit_batch()

    def _commit_batch(self) -> None:
        """COMMIT the batch; if the database refuses (a full disk, an I/O error), stop for good.
        A batch during which the storage stopped (a block failed halfway in `bulk`) is rolled
        back instead.

        What the batch did in memory (the state cache, the hashes of committed transactions,
        the node's replica and the messages it queued for its peers) is then ahead of the
        database, with no way back: the storage refuses every later batch, and `on_failure`
        lets the node halt before anything it did leaves the process. A restart rebuilds
        everything from what the database holds."""
        if self.failed is not None:  # stopped during the batch: none of it may land
            self._roll_back()
            raise StorageError(f"storage stopped: {self.failed}")
        try:
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            reason = f"the database refused a commit: {exc}"
            self._stop(reason)
            self._roll_back()
            raise StorageError(reason) from exc

    def _stop(self, reason: str) -> None:
        """Refuse every later batch, and tell `on_failure`."""
        self.failed = reason
        log.critical(reason)
        if self.on_failure is not None:
            self.on_failure(reason)

    def _roll_back(self) -> None:
        self._state_cache.clear()  # it may hold the batch's writes
        try:
            self._db.execute("ROLLBACK")
        except sqlite3.Error as rollback:
            log.critical("and the database refused to roll the batch back: %s", rollback)


class _Checkpointer:
    """Passive WAL checkpoints every CHECKPOINT_EVERY_S on a connection and thread of their own
    (Storage.checkpoint_in_background). A passive checkpoint never waits for the writer."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="wal-checkpoints", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.wait(CHECKPOINT_EVERY_S):
                self._db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as exc:
            log.error(
                "background WAL checkpoints stopped (%s); the writer checkpoints past %d pages",
                exc,
                CHECKPOINT_BACKSTOP_PAGES,
            )
        finally:
            self._db.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


class _Transaction:
    def __init__(self, db: sqlite3.Connection, cache: dict[bytes, bytes | None]) -> None:
        self._db = db
        self._cache = cache

        self._nested = False

    def __enter__(self) -> None:
        # Inside a batch (Storage.batch) a savepoint keeps this unit atomic on its own.
        self._nested = self._db.in_transaction
        self._db.execute("SAVEPOINT unit" if self._nested else "BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            self._cache.clear()  # it may hold writes that are being rolled back
            if self._nested:
                self._db.execute("ROLLBACK TO unit")
                self._db.execute("RELEASE unit")
            else:
                self._db.execute("ROLLBACK")
        elif self._nested:
            self._db.execute("RELEASE unit")
        else:
            self._db.execute("COMMIT")


class _RecentIds:
    """hash -> id of the rows in recent_txs, kept per slice of the hash range, so a move drops
    its slice's hashes without walking the others'."""

    def __init__(self) -> None:
        self._slices: list[dict[bytes, int]] = [{} for _ in range(MOVE_SLICES)]

    def get(self, tx_hash: bytes) -> int | None:
        return self._slices[_slice_of(tx_hash)].get(tx_hash)

    def __contains__(self, tx_hash: object) -> bool:
        return isinstance(tx_hash, bytes) and tx_hash in self._slices[_slice_of(tx_hash)]

    def __len__(self) -> int:
        return sum(len(ids) for ids in self._slices)

    def __iter__(self) -> Iterator[bytes]:
        for ids in self._slices:
            yield from ids

    def update(self, items: Iterable[tuple[bytes, int]]) -> None:
        for tx_hash, row_id in items:
            self._slices[_slice_of(tx_hash)][tx_hash] = row_id

    def drop_slice(self, index: int) -> None:
        self._slices[index] = {}


@dataclass(frozen=True, slots=True, kw_only=True)
class _TxRow:
    """A transaction's row found by hash: where it was included, and its receipt there."""

    height: int
    index: int
    receipt: bytes
    recent_id: int | None  # its id in recent_txs; None if it is in txs


@dataclass(frozen=True, slots=True, kw_only=True)
class _Placement:
    """Where a block's receipts go (_place_receipts)."""

    # New recent_txs rows (id, hash, height, idx, receipt): the transactions found by hash at
    # this inclusion from now on.
    rows: list[tuple[int, bytes, int, int, bytes]]
    shadowed: dict[int, bytes]  # by index, the receipts this block's blob keeps
    displaced: dict[bytes, _TxRow]  # earlier blocks' rows that new ones replace


def _place_receipts(
    record: BlockRecord, stored: Mapping[bytes, _TxRow], before: StateReader
) -> _Placement:
    """Where each of the block's receipts goes: a new row found by hash, or the block's
    write-set blob. `stored` holds the rows other blocks' inclusions of its transactions have
    (those found by hash), `before` the state the block found. A transaction already found by
    hash keeps that row unless this inclusion used its nonce (it is then the one inclusion that
    ever can); the row it displaces goes to its own block's blob (see Storage._displace). The
    one rule for a block being committed (Storage.commit_record) and for the blocks of a
    database of an earlier layout (Storage._replace_block_receipts)."""
    height = record.height
    nonce_use = _NonceUse(before, record)
    rows: dict[bytes, tuple[int, bytes, int, int, bytes]] = {}
    shadowed: dict[int, bytes] = {}
    displaced: dict[bytes, _TxRow] = {}
    for index, (tx_hash, receipt) in enumerate(record.receipts):
        earlier_here = rows.get(tx_hash)
        if earlier_here is not None or tx_hash in stored:
            if not nonce_use.used(index, receipt):
                shadowed[index] = receipt
                continue
            if earlier_here is not None:  # a well-formed block holds a transaction once
                shadowed[earlier_here[3]] = earlier_here[4]
            else:
                displaced[tx_hash] = stored[tx_hash]
        rows[tx_hash] = (_row_id(tx_hash, height, index), tx_hash, height, index, receipt)
    return _Placement(
        rows=list(rows.values()), shadowed=dict(sorted(shadowed.items())), displaced=displaced
    )


class _NonceUse:
    """Whether a transaction's inclusion in the block being stored used its nonce, i.e. passed
    the runtime's gates (past them the nonce is used whatever happens; a gate failure uses
    nothing). Asked only of transactions a block includes again, so the block's bodies are
    read only then.

    A success passed the gates. A failure passed them only if the block used the nonce: the
    sender's next nonce went past it between the state before the block and after, and the
    block holds no other transaction of that sender with that nonce (which would then be the
    one that used it). Both read data every node holds alike, whether it executed the block or
    rebuilt it from fetched writes; where they cannot tell (the sender signed two
    transactions with one nonce, both in the block, both failed) the answer is no, so an
    earlier row is kept rather than replaced by a receipt that may not count.
    """

    def __init__(self, before: StateReader, record: BlockRecord) -> None:
        self._before = before
        self._record = record
        self._senders: list[tuple[bytes, int]] | None = None

    def used(self, index: int, receipt: bytes) -> bool:
        record = self._record
        if _receipt_ok(receipt, f"receipt {index} of block {record.height}"):
            return True
        if self._senders is None:
            self._senders = _tx_senders(record.wire, record.height)
        if len(self._senders) != len(record.receipts):
            raise StorageError(
                f"block {record.height} holds {len(self._senders)} transactions and "
                f"{len(record.receipts)} receipts"
            )
        sender, nonce = self._senders[index]
        if self._senders.count((sender, nonce)) != 1:
            return False
        key = accounts.nonce_key(sender)
        after = Overlay(self._before)
        if key in record.writes:
            after.apply({key: record.writes[key]})
        before_next = accounts.next_nonce(self._before, sender)
        return before_next <= nonce < accounts.next_nonce(after, sender)


def _receipt_ok(raw: bytes, where: str) -> bool:
    """The `ok` of a receipt's encoding."""
    try:
        receipt = msgpack.unpackb(raw)
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise StorageError(f"{where} is not a msgpack receipt: {exc}") from exc
    ok = receipt.get("ok") if isinstance(receipt, dict) else None
    if not isinstance(ok, bool):
        raise StorageError(f"{where} is not a receipt: expected a map with a bool 'ok'")
    return ok


def _tx_senders(block: bytes, height: int) -> list[tuple[bytes, int]]:
    """(sender, nonce) of each of a stored block's transactions, in block order, read from its
    canonical encoding (see _tx_ids)."""
    try:
        senders: list[tuple[bytes, int]] = []
        for wire in msgpack.unpackb(block)["txs"]:
            body = msgpack.unpackb(msgpack.unpackb(wire)["body"])
            sender, nonce = body["sender"], body["nonce"]
            if not isinstance(sender, bytes) or not isinstance(nonce, int):
                raise TypeError("a transaction's sender is bytes and its nonce an integer")
            senders.append((sender, nonce))
    except (ValueError, TypeError, KeyError, msgpack.UnpackException) as exc:
        raise StorageError(f"block {height}'s transactions cannot be read: {exc}") from exc
    return senders


def _kept_receipts(blob: bytes, height: int) -> dict[int, bytes]:
    """The receipts block `height`'s write-set blob keeps (see encode_write_set), by index; its
    writes are skipped, not decoded (bringing a database up to date reads every block's)."""
    unpacker = msgpack.Unpacker(raw=False, max_buffer_size=max(len(blob), 1))
    unpacker.feed(blob)
    try:
        if unpacker.read_array_header() != 2:
            raise ValueError("expected [writes, receipts]")
        unpacker.skip()
        kept = unpacker.unpack()
        if not isinstance(kept, list):
            raise TypeError("the receipts are not a list")
        receipts: dict[int, bytes] = {}
        for item in kept:
            if not isinstance(item, list) or len(item) != 2:
                raise TypeError("a receipt kept is not [index, receipt]")
            index, receipt = item
            if not isinstance(index, int) or index < 0 or not isinstance(receipt, bytes):
                raise TypeError("a receipt kept is not [index >= 0, bytes]")
            receipts[index] = receipt
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise StorageError(f"the write set of block {height} cannot be read: {exc}") from exc
    return receipts


def _write_set_changes(blob: bytes, height: int) -> dict[bytes, bytes | None]:
    """The net writes block `height`'s write-set blob holds (see encode_write_set)."""
    try:
        changes, _ = msgpack.unpackb(blob, raw=False)
        writes: dict[bytes, bytes | None] = {}
        for key, value in changes:
            if not isinstance(key, bytes) or not (value is None or isinstance(value, bytes)):
                raise TypeError("a write is not [bytes, bytes or nil]")
            writes[key] = value
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise StorageError(f"the write set of block {height} cannot be read: {exc}") from exc
    return writes


def _block_receipts(
    height: int, tx_ids: Sequence[bytes], rows: Mapping[bytes, _TxRow], kept: Mapping[int, bytes]
) -> list[tuple[bytes, bytes]]:
    """(tx hash, receipt) of each of block `height`'s transactions (`tx_ids`), in block order:
    from the row found by hash where that row is this inclusion's, else from those its
    write-set blob keeps (`kept`)."""
    receipts: list[tuple[bytes, bytes]] = []
    for index, tx_id in enumerate(tx_ids):
        row = rows.get(tx_id)
        if index in kept:
            receipts.append((tx_id, kept[index]))
        elif row is not None and (row.height, row.index) == (height, index):
            receipts.append((tx_id, row.receipt))
        else:
            raise StorageError(
                f"block {height} keeps no receipt for its transaction {index} ({tx_id.hex()})"
            )
    return receipts


class _StateBefore:
    """The state before block `height` as the nonce rule reads it (_NonceUse), read back from
    the write sets of the blocks below while a database of an earlier layout is brought up to
    date (Storage._replace_block_receipts): a key holds what the latest of them wrote there.

    A key none of them wrote holds its genesis value, which the database does not keep; for a
    nonce record that is none, as genesis writes no nonce record (only executing a transaction
    does: contracts/accounts.py). So only nonce records are read: any other key, or a block
    below kept without a write set, is refused rather than guessed.
    """

    def __init__(self, db: sqlite3.Connection, height: int) -> None:
        self._db = db
        self._height = height

    def get(self, key: bytes) -> bytes | None:
        if not (key.startswith(accounts.ACCOUNT_PREFIX) and key.endswith(_NONCE_KEY_END)):
            raise StorageError(
                f"the state before block {self._height} is read back for nonce records only, "
                f"not {key!r}"
            )
        cursor = self._db.execute(
            "SELECT blocks.height, writes FROM blocks "
            "LEFT JOIN block_writes ON block_writes.height = blocks.height "
            "WHERE blocks.height < ? ORDER BY blocks.height DESC",
            (self._height,),
        )
        try:
            for height, blob in cursor:
                if blob is None:
                    raise StorageError(
                        f"block {height} keeps no write set, so the state before block "
                        f"{self._height} cannot be read back"
                    )
                writes = _write_set_changes(bytes(blob), height)
                if key in writes:
                    return writes[key]
        finally:
            cursor.close()
        return None

    def scan(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        raise StorageError(f"the state before block {self._height} is read back by key only")

    def scan_last(self, prefix: bytes, limit: int) -> list[tuple[bytes, bytes]]:
        raise StorageError(f"the state before block {self._height} is read back by key only")

    def scan_after(self, prefix: bytes, after: bytes, limit: int) -> list[tuple[bytes, bytes]]:
        raise StorageError(f"the state before block {self._height} is read back by key only")


def _slice_of(tx_hash: bytes) -> int:
    """The slice of the hash range `tx_hash` falls in (by its first byte)."""
    return (tx_hash[0] if tx_hash else 0) * MOVE_SLICES // 256


def _row_id(tx_hash: bytes, height: int, index: int) -> int:
    """A recent_txs row's id: its slice of the hash range (by the first byte), then its place in
    commit order."""
    if not 0 <= index < 1 << _HEIGHT_SHIFT or not 0 <= height < 1 << (_SLICE_SHIFT - _HEIGHT_SHIFT):
        raise StorageError(f"transaction {index} of block {height} is beyond what ids can hold")
    return (_slice_of(tx_hash) << _SLICE_SHIFT) | (height << _HEIGHT_SHIFT) | index


def _slice_ids(index: int) -> tuple[int, int]:
    """The first and last recent_txs id of slice `index` (the first and the last slice reach to
    the ends of the range, so every row is in one)."""
    low = 0 if index == 0 else index << _SLICE_SHIFT
    high = 2**63 - 1 if index == MOVE_SLICES - 1 else ((index + 1) << _SLICE_SHIFT) - 1
    return low, high


def _tx_ids(block: bytes) -> list[bytes]:
    """The ids (sha256 of the body) of a stored block's transactions, in block order, read
    straight from its canonical encoding: {"header": ..., "txs": [{"body", "signature"}...]}."""
    return [sha256(msgpack.unpackb(wire)["body"]) for wire in msgpack.unpackb(block)["txs"]]


def _stored_block(row: tuple[bytes, bytes, bytes]) -> StoredBlock:
    return StoredBlock(
        block=Block.from_wire(row[0]),
        certificate=CommitCertificate.from_wire(row[1]),
        state_digest=bytes(row[2]),
    )


def _prefix_end(prefix: bytes) -> bytes | None:
    """The smallest key greater than every key starting with `prefix` (None if unbounded)."""
    trimmed = prefix.rstrip(b"\xff")
    if not trimmed:
        return None
    return trimmed[:-1] + bytes([trimmed[-1] + 1])
