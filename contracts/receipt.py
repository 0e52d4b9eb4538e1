"""Receipts and events: what executing one transaction produced.

A receipt is part of the state digest, so its map form is canonical data (bytes stay bytes); the
`summary` form is the JSON-friendly view for APIs. A failed transaction has a receipt too, with
its error message and no result or events.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ledger.encoding import array_header, encode
from ledger.errors import EncodingError, ValidationError
from ledger.fields import expect_bytes, expect_int, expect_list, expect_map, expect_str
from ledger.hashing import HASH_BYTES
from ledger.tx import NAME_LENGTH_MAX, jsonable

EVENTS_MAX = 1024
SUBJECT_LENGTH_MAX = 256
ERROR_LENGTH_MAX = 4096

_EVENT_KEYS = frozenset({"contract", "kind", "subject", "data"})
_RECEIPT_KEYS = frozenset({"tx_hash", "height", "index", "ok", "error", "result", "events"})
# The canonical encodings of the two maps' headers and keys, for joining encoded fields in the
# canonical key order (the keys are ASCII, so sorting them sorts their UTF-8 bytes).
_KEY = {key: encode(key) for key in _EVENT_KEYS | _RECEIPT_KEYS}
_EVENT_HEAD = encode(dict.fromkeys(_EVENT_KEYS))[:1]
_RECEIPT_HEAD = encode(dict.fromkeys(_RECEIPT_KEYS))[:1]
_DATA_DEPTH = 3  # an event's data in a receipt: receipt map, events list, event map, data


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    contract: str
    kind: str
    subject: str  # what the event is about, e.g. "item:steel@main"
    data: dict[str, Any]
    # encode(data), kept once computed: the receipt and the events table both need it.
    _data_encoded: bytes = field(default=b"", init=False, repr=False, compare=False)

    def data_encoded(self) -> bytes:
        if not self._data_encoded:
            # At its depth in a receipt (receipt, events, event, data), so the receipt decodes.
            object.__setattr__(self, "_data_encoded", encode(self.data, depth=_DATA_DEPTH))
        return self._data_encoded

    def encoded(self) -> bytes:
        """encode(to_map()), joined from the fields' own encodings."""
        return b"".join(
            (
                _EVENT_HEAD,
                _KEY["contract"],
                encode(self.contract),
                _KEY["data"],
                self.data_encoded(),
                _KEY["kind"],
                encode(self.kind),
                _KEY["subject"],
                encode(self.subject),
            )
        )

    def to_map(self) -> dict[str, Any]:
        return {
            "contract": self.contract,
            "kind": self.kind,
            "subject": self.subject,
            "data": self.data,
        }

    @classmethod
    def from_map(cls, value: Any) -> Event:
        fields = expect_map(value, "event", _EVENT_KEYS)
        data = fields["data"]
        if not isinstance(data, dict):
            raise ValidationError(f"event data must be a map, got {type(data).__name__}")
        return cls(
            contract=expect_str(fields["contract"], "event contract", length_max=NAME_LENGTH_MAX),
            kind=expect_str(fields["kind"], "event kind", length_max=NAME_LENGTH_MAX),
            subject=expect_str(fields["subject"], "event subject", length_max=SUBJECT_LENGTH_MAX),
            data=data,
        )

    def summary(self) -> dict[str, Any]:
        summary: dict[str, Any] = jsonable(self.to_map())
        return summary


@dataclass(frozen=True, slots=True, kw_only=True)
class Receipt:
    tx_hash: bytes
    height: int
    index: int  # position of the transaction in its block
    ok: bool
    error: str | None
    result: Any  # canonical data; None when the transaction failed
    events: tuple[Event, ...]  # empty when the transaction failed
    # encode(to_map()), kept once computed: the digest and the store both need it.
    _encoded: bytes = field(default=b"", init=False, repr=False, compare=False)

    @classmethod
    def failure(cls, *, tx_hash: bytes, height: int, index: int, error: str) -> Receipt:
        """A failing receipt; an overlong message is cut so the receipt always decodes again."""
        if len(error) > ERROR_LENGTH_MAX:
            error = error[: ERROR_LENGTH_MAX - 3] + "..."
        return cls(
            tx_hash=tx_hash,
            height=height,
            index=index,
            ok=False,
            error=error,
            result=None,
            events=(),
        )

    def to_map(self) -> dict[str, Any]:
        return {
            "tx_hash": self.tx_hash,
            "height": self.height,
            "index": self.index,
            "ok": self.ok,
            "error": self.error,
            "result": self.result,
            "events": [event.to_map() for event in self.events],
        }

    def encoded(self) -> bytes:
        """The canonical encoding of `to_map()`, computed once: joined from the fields' own
        encodings in key order, so the events' data is not walked again (it is what each hot
        block spends per transaction on its state digest)."""
        if not self._encoded:
            encoded = b"".join(
                (
                    _RECEIPT_HEAD,
                    _KEY["error"],
                    encode(self.error),
                    _KEY["events"],
                    array_header(len(self.events)),
                    *(event.encoded() for event in self.events),
                    _KEY["height"],
                    encode(self.height),
                    _KEY["index"],
                    encode(self.index),
                    _KEY["ok"],
                    encode(self.ok),
                    _KEY["result"],
                    encode(self.result, depth=1),
                    _KEY["tx_hash"],
                    encode(self.tx_hash),
                )
            )
            object.__setattr__(self, "_encoded", encoded)
        return self._encoded

    @classmethod
    def from_map(cls, value: Any) -> Receipt:
        fields = expect_map(value, "receipt", _RECEIPT_KEYS)
        ok = fields["ok"]
        if not isinstance(ok, bool):
            raise ValidationError(f"receipt ok must be a bool, got {type(ok).__name__}")
        error = fields["error"]
        if error is not None:
            expect_str(error, "receipt error", length_max=ERROR_LENGTH_MAX)
        raw_events = expect_list(fields["events"], "receipt events", length_max=EVENTS_MAX)
        receipt = cls(
            tx_hash=expect_bytes(fields["tx_hash"], "receipt tx_hash", length=HASH_BYTES),
            height=expect_int(fields["height"], "receipt height"),
            index=expect_int(fields["index"], "receipt index"),
            ok=ok,
            error=error,
            result=fields["result"],
            events=tuple(Event.from_map(raw) for raw in raw_events),
        )
        receipt.check()
        return receipt

    def check(self) -> None:
        """Raise ValidationError unless the fields agree with `ok` and encode canonically."""
        if self.ok and self.error is not None:
            raise ValidationError("a successful receipt has no error")
        if not self.ok and (self.error is None or self.result is not None or self.events):
            raise ValidationError("a failed receipt has an error and no result or events")
        try:
            self.encoded()
        except EncodingError as exc:
            raise ValidationError(f"receipt cannot be encoded canonically: {exc}") from exc

    def summary(self) -> dict[str, Any]:
        """A JSON-friendly view for APIs and the CLI (bytes become hex)."""
        return {
            "tx_hash": self.tx_hash.hex(),
            "height": self.height,
            "index": self.index,
            "ok": self.ok,
            "error": self.error,
            "result": jsonable(self.result),
            "events": [event.summary() for event in self.events],
        }
