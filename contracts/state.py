"""Key-value state: the read interface, an in-memory store, working copies and the state digest.

State is a flat map from byte keys to canonical msgpack values. Contracts never write to the store
directly: the runtime gives each block an `Overlay` over the committed state and each transaction a
child overlay, so a failing transaction is dropped by forgetting its overlay. The digest chains the
previous digest with one block's net writes and receipts, which costs O(changes) per block and is
the same on every honest node because keys are sorted before hashing.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from contracts.errors import StateError
from ledger.cache import FifoCache
from ledger.encoding import array_header, decode, encode
from ledger.errors import EncodingError
from ledger.hashing import HASH_BYTES, sha256

if TYPE_CHECKING:
    from contracts.receipt import Receipt

GENESIS_PREV_DIGEST = bytes(HASH_BYTES)
DIGEST_DOMAIN = "millchain/state/v1"

Writes = Mapping[bytes, bytes | None]


class StateReader(Protocol):
    """Read access to committed (or pending) state."""

    def get(self, key: bytes) -> bytes | None:
        """The value at `key`, or None when there is none."""
        ...

    def scan(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Every (key, value) whose key starts with `prefix`, sorted by key."""
        ...

    def scan_last(self, prefix: bytes, limit: int) -> list[tuple[bytes, bytes]]:
        """The last `limit` of scan(prefix), sorted by key, without reading the others where
        the store can (a machine's newest readings among years of them)."""
        ...

    def scan_after(self, prefix: bytes, after: bytes, limit: int) -> list[tuple[bytes, bytes]]:
        """The first `limit` of scan(prefix) whose key sorts after `after`, without reading the
        others where the store can (a page of a listing keyed by names anyone may add)."""
        ...


class MemoryState:
    """A StateReader over a dict; `apply` commits a block's writes (None deletes)."""

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[bytes, bytes] | None = None) -> None:
        self._items: dict[bytes, bytes] = dict(items or {})

    def get(self, key: bytes) -> bytes | None:
        return self._items.get(key)

    def scan(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        # Sorted so callers see one order whatever order the writes arrived in.
        keys = sorted(key for key in self._items if key.startswith(prefix))
        for key in keys:
            yield key, self._items[key]

    def scan_last(self, prefix: bytes, limit: int) -> list[tuple[bytes, bytes]]:
        return list(self.scan(prefix))[-limit:] if limit > 0 else []

    def scan_after(self, prefix: bytes, after: bytes, limit: int) -> list[tuple[bytes, bytes]]:
        return [item for item in self.scan(prefix) if item[0] > after][:limit] if limit > 0 else []

    def apply(self, writes: Writes) -> None:
        for key, value in writes.items():
            if value is None:
                self._items.pop(key, None)
            else:
                self._items[key] = value

    def items(self) -> dict[bytes, bytes]:
        """A copy of everything stored (for tests and snapshots)."""
        return dict(self._items)

    def __len__(self) -> int:
        return len(self._items)


class Overlay:
    """A working copy over a StateReader: reads see the pending writes, the base is untouched.

    An overlay is itself a StateReader, so overlays nest: `child()` makes one for a transaction
    and `apply(child.writes)` folds it back into the parent once the transaction succeeded.
    """

    __slots__ = ("_base", "_pending")

    def __init__(self, base: StateReader) -> None:
        self._base = base
        self._pending: dict[bytes, bytes | None] = {}

    def get(self, key: bytes) -> bytes | None:
        if key in self._pending:
            return self._pending[key]
        return self._base.get(key)

    def put(self, key: bytes, value: bytes) -> None:
        if not isinstance(key, bytes) or not isinstance(value, bytes):
            raise TypeError(f"state keys and values are bytes, got {type(key)}, {type(value)}")
        self._pending[key] = value

    def delete(self, key: bytes) -> None:
        if not isinstance(key, bytes):
            raise TypeError(f"state keys are bytes, got {type(key).__name__}")
        self._pending[key] = None

    def apply(self, writes: Writes) -> None:
        """Take over another overlay's writes (None deletes)."""
        self._pending.update(writes)

    def scan(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        pending = sorted((k, v) for k, v in self._pending.items() if k.startswith(prefix))
        yield from _merge_sorted(self._base.scan(prefix), pending)

    def scan_last(self, prefix: bytes, limit: int) -> list[tuple[bytes, bytes]]:
        if limit <= 0:
            return []
        pending = sorted((k, v) for k, v in self._pending.items() if k.startswith(prefix))
        # Each pending deletion hides at most one of the base's entries, so the last `limit`
        # of the merge draw on the base's last `limit` + deletions only.
        deletions = sum(1 for _, value in pending if value is None)
        base = self._base.scan_last(prefix, limit + deletions)
        return list(_merge_sorted(iter(base), pending))[-limit:]

    def scan_after(self, prefix: bytes, after: bytes, limit: int) -> list[tuple[bytes, bytes]]:
        if limit <= 0:
            return []
        pending = sorted(
            (k, v) for k, v in self._pending.items() if k.startswith(prefix) and k > after
        )
        # As in scan_last: the first `limit` of the merge draw on the base's first `limit` +
        # deletions past `after` only.
        deletions = sum(1 for _, value in pending if value is None)
        base = self._base.scan_after(prefix, after, limit + deletions)
        return list(itertools.islice(_merge_sorted(iter(base), pending), limit))

    def child(self) -> Overlay:
        return Overlay(self)

    @property
    def writes(self) -> dict[bytes, bytes | None]:
        """A copy of the pending writes: key -> new value, or None for a deletion."""
        return dict(self._pending)


def _merge_sorted(
    base: Iterator[tuple[bytes, bytes]], pending: list[tuple[bytes, bytes | None]]
) -> Iterator[tuple[bytes, bytes]]:
    """Merge two key-sorted streams; a pending entry hides the base's, and None hides both."""
    index = 0
    for key, value in base:
        while index < len(pending) and pending[index][0] < key:
            pending_key, pending_value = pending[index]
            index += 1
            if pending_value is not None:
                yield pending_key, pending_value
        if index < len(pending) and pending[index][0] == key:
            pending_value = pending[index][1]
            index += 1
            if pending_value is not None:
                yield key, pending_value
            continue
        yield key, value
    for pending_key, pending_value in pending[index:]:
        if pending_value is not None:
            yield pending_key, pending_value


def read_map(state: StateReader, key: bytes) -> dict[str, Any] | None:
    """Decode the map stored at `key`, or None if there is none; corrupt values raise StateError."""
    raw = state.get(key)
    if raw is None:
        return None
    return decode_map(key, raw)


def decode_map(key: bytes, raw: bytes) -> dict[str, Any]:
    try:
        value = decode(raw)
    except EncodingError as exc:
        raise StateError(f"state value at {key!a} is not canonical: {exc}") from exc
    if not isinstance(value, dict):
        raise StateError(f"state value at {key!a} is a {type(value).__name__}, expected a map")
    return value


R = TypeVar("R")


class RecordMemo(Generic[R]):
    """Immutable records decoded from state, remembered by the stored bytes they came from.

    The hottest reads (a sender's identity and nonce, several times per transaction between
    admission and execution) would otherwise decode and check the same few bytes again and
    again. The memo is keyed by the value, not the key, so a write can never leave a stale
    record behind: new bytes are simply a miss. `build(key, map)` must return an immutable
    record (shared between readers) and raise StateError for a malformed map.
    """

    __slots__ = ("_build", "_records")

    def __init__(
        self, build: Callable[[bytes, dict[str, Any]], R], *, size_max: int = 4096
    ) -> None:
        self._build = build
        self._records: FifoCache[bytes, R] = FifoCache(size_max)

    def read(self, state: StateReader, key: bytes) -> R | None:
        raw = state.get(key)
        if raw is None:
            return None
        record = self._records.get(raw)
        if record is None:
            record = self._build(key, decode_map(key, raw))
            self._records.remember(raw, record)
        return record


def write_map(state: Overlay, key: bytes, value: Mapping[str, Any]) -> None:
    state.put(key, encode(dict(value)))


def next_digest(
    prev_digest: bytes, height: int, writes: Writes, receipts: Sequence[Receipt]
) -> bytes:
    """The state digest after a block: the previous digest chained with its writes and receipts.

    It hashes encode([DIGEST_DOMAIN, prev_digest, height, changes, receipt maps]), built from the
    receipts' own encodings (each is encoded once, and stored as it is)."""
    changes = [[key, writes[key]] for key in sorted(writes)]
    return sha256(
        b"".join(
            [
                array_header(5),
                encode(DIGEST_DOMAIN),
                encode(prev_digest),
                encode(height),
                encode(changes),
                array_header(len(receipts)),
                *(receipt.encoded() for receipt in receipts),
            ]
        )
    )
