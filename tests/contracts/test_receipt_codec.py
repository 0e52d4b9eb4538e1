"""Receipts and events: canonical round trip, JSON summary, and the shape rules of failures."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.receipt import Event, Receipt
from ledger.encoding import DEPTH_MAX, decode, encode
from ledger.errors import EncodingError, ValidationError

EVENT = Event(contract="inventory", kind="receive", subject="item:steel@main", data={"qty": 3})
OK = Receipt(
    tx_hash=b"\x11" * 32,
    height=7,
    index=2,
    ok=True,
    error=None,
    result={"on_hand": 3, "key": b"\x01\x02"},
    events=(EVENT,),
)


def test_receipt_round_trips_through_the_canonical_encoding() -> None:
    assert Receipt.from_map(decode(encode(OK.to_map()))) == OK
    failed = Receipt.failure(tx_hash=b"\x22" * 32, height=1, index=0, error="nope")
    assert Receipt.from_map(decode(encode(failed.to_map()))) == failed


def test_summary_is_json_friendly_with_hex_bytes() -> None:
    summary = OK.summary()
    json.dumps(summary)
    assert summary["tx_hash"] == "11" * 32
    assert summary["result"]["key"] == "0102"
    assert summary["events"][0]["subject"] == "item:steel@main"


def test_failed_receipt_has_an_error_and_no_result_or_events() -> None:
    failed = Receipt.failure(tx_hash=b"\x22" * 32, height=1, index=0, error="nope")
    assert (failed.ok, failed.error, failed.result, failed.events) == (False, "nope", None, ())
    bad = {**failed.to_map(), "events": [EVENT.to_map()]}
    with pytest.raises(ValidationError, match="no result or events"):
        Receipt.from_map(bad)


@pytest.mark.parametrize(
    ("field", "value"),
    [("tx_hash", b"short"), ("ok", 1), ("height", -1), ("error", 5), ("events", {})],
)
def test_from_map_rejects_malformed_fields(field: str, value: object) -> None:
    with pytest.raises(ValidationError):
        Receipt.from_map({**OK.to_map(), field: value})


def test_event_from_map_requires_a_data_map() -> None:
    with pytest.raises(ValidationError, match="data must be a map"):
        Event.from_map({**EVENT.to_map(), "data": [1]})


def test_an_overlong_error_is_cut_so_the_receipt_still_decodes() -> None:
    failed = Receipt.failure(tx_hash=b"\x22" * 32, height=1, index=0, error="x" * 10_000)
    assert failed.error is not None
    assert len(failed.error) == 4096 and failed.error.endswith("...")
    assert Receipt.from_map(decode(encode(failed.to_map()))) == failed


SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.text(max_size=12),
    st.binary(max_size=12),
)
DATA = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=10,
)
EVENTS = st.builds(
    Event,
    contract=st.text(max_size=10),
    kind=st.text(max_size=10),
    subject=st.text(max_size=20),
    data=st.dictionaries(st.text(max_size=8), DATA, max_size=5),
)


@settings(max_examples=300, deadline=None)
@given(
    height=st.integers(0, 2**63 - 1),
    index=st.integers(0, 10_000),
    result=DATA,
    events=st.lists(EVENTS, max_size=4),
    error=st.none() | st.text(max_size=30),
)
def test_a_receipt_joined_from_its_fields_encodes_as_its_map_does(
    height: int, index: int, result: object, events: list[Event], error: str | None
) -> None:
    receipt = Receipt(
        tx_hash=b"\x33" * 32,
        height=height,
        index=index,
        ok=error is None,
        error=error,
        result=result if error is None else None,
        events=tuple(events) if error is None else (),
    )
    assert receipt.encoded() == encode(receipt.to_map())
    for event in receipt.events:
        assert event.encoded() == encode(event.to_map())
        assert event.data_encoded() == encode(event.data)


def _nested(levels: int) -> object:
    value: object = 0
    for _ in range(levels):
        value = [value]
    return value


@pytest.mark.parametrize("levels", range(DEPTH_MAX - 5, DEPTH_MAX + 2))
def test_data_too_deep_for_the_receipt_is_refused_as_the_receipt_map_refuses_it(
    levels: int,
) -> None:
    def outcome(make: object) -> bytes | str:
        assert callable(make)
        try:
            encoded: bytes = make()
        except EncodingError:
            return "refused"
        return encoded

    event = Event(contract="c", kind="k", subject="s", data={"deep": _nested(levels)})
    in_event = replace(OK, result=None, events=(event,))
    in_result = replace(OK, result=_nested(levels), events=())
    for receipt in (in_event, in_result):
        joined = outcome(receipt.encoded)
        assert joined == outcome(lambda r=receipt: encode(r.to_map()))
        if joined != "refused":
            assert isinstance(joined, bytes)
            assert decode(joined) == decode(encode(receipt.to_map()))
