"""A subject's history (GET /events/{subject}, `millchain history`) past its limit: it shows the
newest events, not forever the first ones (node/storage.py, Storage.events)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from ledger.encoding import encode
from node.storage import BlockRecord, Storage

SUBJECT = "machine:m1"


def _hash(tag: str) -> bytes:
    return hashlib.sha256(tag.encode()).digest()


def _commit_readings(storage: Storage, reports: int) -> None:
    """One block a report, each with the `readings` event a machine's report emits."""
    for _ in range(reports):
        height = storage.head().height + 1
        tx_hash = _hash(f"report {height}")
        storage.commit_record(
            BlockRecord(
                height=height,
                hash=_hash(f"block {height}"),
                wire=b"block",
                certificate=b"certificate",
                timestamp_ms=height,
                state_digest=b"d" * 32,
                receipts=[(tx_hash, b"receipt")],
                events=[(tx_hash, "machines", "readings", SUBJECT, encode({"last_seq": height}))],
                writes={},
            )
        )


def test_a_subject_with_more_events_than_the_limit_shows_its_newest(tmp_path: Path) -> None:
    storage = Storage(tmp_path / "chain.sqlite")
    try:
        storage.initialise(genesis_hash=b"g" * 32, writes={}, digest=b"d" * 32, time_ms=0)
        _commit_readings(storage, 5)
        assert [e["height"] for e in storage.events(SUBJECT, limit=10)] == [1, 2, 3, 4, 5]
        # A machine reporting for a while has more events than one answer holds: the answer
        # must follow it (its breakdown, work orders, predictions), oldest first.
        assert [e["height"] for e in storage.events(SUBJECT, limit=3)] == [3, 4, 5]
        _commit_readings(storage, 1)
        assert [e["data"]["last_seq"] for e in storage.events(SUBJECT, limit=3)] == [4, 5, 6]
    finally:
        storage.close()
