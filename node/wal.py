"""The node's consensus log, in its SQLite database: what it received, what it signed, its view.

Four records, each written before anything that depends on it leaves the process:
- every consensus message received from a peer, before the replica handles it;
- every message this node signs, before it is sent (one per kind, view and sequence);
- the view the replica last entered;
- the prepared certificates it held as it entered that view (those of older views, which
  replaying the log cannot rebuild).
On restart the replica is rebuilt at the last committed block with its view and the messages it
signed (so it resends them and never signs anything different for the same slot), then the
received messages are fed back through the same path as live input. Records for sequence numbers
at or below a stable checkpoint, and view-change records of older views, are pruned.
"""

from __future__ import annotations

from collections.abc import Sequence

from consensus.codec import decode_proofs, encode_proofs
from consensus.events import MessageReceived
from consensus.messages import (
    Message,
    NewView,
    PreparedProof,
    ViewChange,
    decode_message,
    encode_message,
)
from ledger.encoding import decode, encode
from node.storage import Storage

VIEW_KEY = "view"
PREPARED_KEY = "prepared"


def _slot(message: Message) -> tuple[int | None, int | None]:
    """(view, seq) for pruning: normal-case messages and checkpoints by sequence, a view change
    by the view it asks for and a new view by the view it installs (so the view change a
    replica sent stays on disk while it waits for that view)."""
    match message:
        case ViewChange():
            return message.new_view, None
        case NewView():
            return message.view, None
        case _:
            return None, message.seq


def record_received(storage: Storage, event: MessageReceived, raw: bytes | None = None) -> None:
    """Log a received message; `raw` is its canonical encoding when the caller has it already
    (the bytes it was decoded from), which saves encoding it again."""
    view, seq = _slot(event.message)
    message = encode_message(event.message) if raw is None else raw
    entry = encode({"m": message, "t": event.now_ms})
    storage.wal_append("message", view, seq, entry)


def record_signed(storage: Storage, message: Message) -> None:
    view, seq = _slot(message)
    kind = type(message).__name__
    storage.signed_put(kind, view or 0, seq or 0, encode_message(message))


def record_view(storage: Storage, view: int) -> None:
    storage.set_meta_value(VIEW_KEY, encode(view))


def record_prepared(storage: Storage, proofs: Sequence[PreparedProof]) -> None:
    """Keep the prepared certificates the replica holds as it enters a view. Replaying the log
    rebuilds only those of the view it restarts in (an older view's messages are stale by
    then), but its next view change must carry the older ones all the same."""
    storage.set_meta_value(PREPARED_KEY, encode_proofs(proofs))


def prepared(storage: Storage, *, tx_bytes_max: int) -> tuple[PreparedProof, ...]:
    raw = storage.meta_value(PREPARED_KEY)
    return () if raw is None else decode_proofs(raw, tx_bytes_max=tx_bytes_max)


def received(storage: Storage, *, tx_bytes_max: int) -> list[MessageReceived]:
    events = []
    for _, entry in storage.wal_entries():
        fields = decode(entry)
        message = decode_message(fields["m"], tx_bytes_max=tx_bytes_max)
        events.append(MessageReceived(message=message, now_ms=fields["t"]))
    return events


def signed(storage: Storage, *, tx_bytes_max: int) -> tuple[Message, ...]:
    return tuple(decode_message(raw, tx_bytes_max=tx_bytes_max) for raw in storage.signed_all())


def view(storage: Storage) -> int:
    raw = storage.meta_value(VIEW_KEY)
    return 0 if raw is None else int(decode(raw))
