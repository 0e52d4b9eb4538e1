"""Account nonces: the key layout and the next expected nonce of each sender.

A nonce record exists for every key that ever had a transaction executed, and outlives the
identity: a removed and re-added identity cannot have its old transactions replayed.
"""

from __future__ import annotations

from typing import Any

from contracts.errors import StateError
from contracts.state import Overlay, RecordMemo, StateReader, write_map
from ledger.errors import ValidationError
from ledger.fields import expect_int

ACCOUNT_PREFIX = b"account/"


def nonce_key(sender: bytes) -> bytes:
    return ACCOUNT_PREFIX + sender.hex().encode("ascii") + b"/nonce"


def _nonce_of(key: bytes, record: dict[str, Any]) -> int:
    try:
        return expect_int(record.get("next"), "next nonce")
    except ValidationError as exc:
        raise StateError(f"nonce record at {key!a}: {exc}") from exc


_NONCES: RecordMemo[int] = RecordMemo(_nonce_of)


def next_nonce(state: StateReader, sender: bytes) -> int:
    """The nonce the sender's next transaction must carry; 0 for a new account."""
    found = _NONCES.read(state, nonce_key(sender))
    return 0 if found is None else found


def consume_nonce(state: Overlay, sender: bytes, nonce: int) -> None:
    write_map(state, nonce_key(sender), {"next": nonce + 1})
