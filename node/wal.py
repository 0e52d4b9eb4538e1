"""The node's write-ahead log of consensus inputs, in the node's SQLite database.

Every input the replica handles (a peer's message, a batch the primary proposes, a timer tick) is
written before the replica sees it, and so before anything it causes leaves the process. On
restart the replica is rebuilt at the last committed block and the log is fed back through the
same `Node.feed` path as live input; the replica is deterministic, so it re-derives exactly the
messages it had signed and never signs a different one for the same view, sequence and phase.
Inputs for sequence numbers at or below a stable checkpoint are pruned.
"""

from __future__ import annotations

from typing import Any

from consensus.events import MessageReceived, ProposeBatch, Tick
from consensus.messages import decode_message, encode_message
from ledger.encoding import decode, encode
from ledger.tx import Transaction
from node.storage import Storage


def record(storage: Storage, event: Any, *, next_seq: int) -> None:
    """Append `event` to the log (inputs the log does not need are skipped)."""
    match event:
        case MessageReceived(message=message, now_ms=now_ms):
            seq = getattr(message, "seq", None)
            view = None if seq is not None else getattr(message, "view", None)
            entry = encode({"m": encode_message(message), "t": now_ms})
            storage.wal_append("message", view, seq, entry)
        case ProposeBatch(txs=txs, now_ms=now_ms):
            entry = encode({"txs": [tx.to_wire() for tx in txs], "t": now_ms})
            storage.wal_append("propose", None, next_seq, entry)
        case Tick(now_ms=now_ms):
            storage.wal_append("tick", None, None, encode({"t": now_ms}))
        case _:
            storage.wal_append("event", None, None, encode(_generic(event)))


def replay(storage: Storage, *, tx_bytes_max: int) -> list[Any]:
    """The logged inputs, decoded, in the order they were handled."""
    events: list[Any] = []
    for kind, entry in storage.wal_entries():
        fields = decode(entry)
        if kind == "message":
            message = decode_message(fields["m"], tx_bytes_max=tx_bytes_max)
            events.append(MessageReceived(message=message, now_ms=fields["t"]))
        elif kind == "propose":
            txs = tuple(Transaction.from_wire(raw, bytes_max=tx_bytes_max) for raw in fields["txs"])
            events.append(ProposeBatch(txs=txs, now_ms=fields["t"]))
        elif kind == "tick":
            events.append(Tick(now_ms=fields["t"]))
        else:
            events.append(_from_generic(fields))
    return events


_GENERIC: dict[str, type] = {}


def register(event_type: type) -> None:
    """Let the log carry another event type made only of encodable fields."""
    _GENERIC[event_type.__name__] = event_type


def _generic(event: Any) -> dict[str, Any]:
    name = type(event).__name__
    if name not in _GENERIC:
        raise TypeError(f"the WAL cannot record a {name}; register it first")
    return {"type": name, "fields": {f: getattr(event, f) for f in event.__dataclass_fields__}}


def _from_generic(fields: dict[str, Any]) -> Any:
    return _GENERIC[fields["type"]](**fields["fields"])
