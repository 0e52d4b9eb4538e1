"""Canonical encoding: one byte string per value, and nothing else decodes."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.encoding import (
    DEPTH_MAX,
    INT_MAX,
    INT_MIN,
    array_header,
    canonical_copy,
    decode,
    encode,
)
from ledger.errors import EncodingError

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=INT_MIN, max_value=INT_MAX)
    | st.text()
    | st.binary()
)
values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=5)
        | st.tuples(children, children)
        | st.dictionaries(st.text(), children, max_size=5)
    ),
    max_leaves=25,
)


def listify(value: Any) -> Any:
    """What decoding gives back: tuples become lists."""
    if isinstance(value, list | tuple):
        return [listify(item) for item in value]
    if isinstance(value, dict):
        return {key: listify(item) for key, item in value.items()}
    return value


def nested_lists(depth: int) -> Any:
    value: Any = []
    for _ in range(depth):
        value = [value]
    return value


# --- round trip ---------------------------------------------------------------------------------


@given(values)
def test_decode_inverts_encode_for_allowed_values(value: Any) -> None:
    assert decode(encode(value)) == listify(value)


@given(values)
def test_encode_is_stable_through_a_round_trip(value: Any) -> None:
    data = encode(value)
    assert encode(decode(data)) == data


@given(st.dictionaries(st.text(), st.integers(0, 10), min_size=2, max_size=8))
def test_encode_ignores_map_insertion_order(value: dict[str, int]) -> None:
    reversed_order = dict(reversed(list(value.items())))
    assert encode(reversed_order) == encode(value)


def test_encode_writes_map_keys_sorted() -> None:
    assert encode({"b": 1, "a": 2, "aa": 3}) == b"\x83\xa1a\x02\xa2aa\x03\xa1b\x01"


def test_encode_sorts_non_ascii_keys_by_utf8_bytes() -> None:
    value = {"\U00010000": 1, "\uffff": 2, "\u00e9": 3, "z": 4}
    assert list(decode(encode(value))) == ["z", "\u00e9", "\uffff", "\U00010000"]


def test_decode_accepts_64_bit_extremes() -> None:
    assert decode(encode([INT_MIN, INT_MAX, -1, 0])) == [INT_MIN, INT_MAX, -1, 0]


def test_decode_accepts_bytearray_and_memoryview() -> None:
    data = encode({"a": [1, b"x"]})
    assert decode(bytearray(data)) == {"a": [1, b"x"]}  # type: ignore[arg-type]
    assert decode(memoryview(data)) == {"a": [1, b"x"]}  # type: ignore[arg-type]


def test_decode_accepts_input_at_bytes_max() -> None:
    data = encode("x" * 10)
    assert decode(data, bytes_max=len(data)) == "x" * 10


def test_nesting_up_to_depth_max_round_trips() -> None:
    value = nested_lists(DEPTH_MAX)
    assert decode(encode(value)) == value


# --- decode rejects -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"\xcc\x05", id="uint8-for-fixint"),
        pytest.param(b"\xcd\x00\x05", id="uint16-for-fixint"),
        pytest.param(b"\xd0\x05", id="int8-for-positive-fixint"),
        pytest.param(b"\xd1\xff\xff", id="int16-for-negative-fixint"),
        pytest.param(b"\xcf" + (5).to_bytes(8, "big"), id="uint64-for-fixint"),
    ],
)
def test_decode_rejects_non_canonical_ints(data: bytes) -> None:
    with pytest.raises(EncodingError, match="canonical"):
        decode(data)


def test_decode_rejects_non_minimal_string_header() -> None:
    with pytest.raises(EncodingError):
        decode(b"\xd9\x01a")  # str8 holding a 1-character string (fixstr is canonical)


def test_decode_rejects_unsorted_map_keys() -> None:
    data = b"\x82\xa1b\x01\xa1a\x02"  # {"b": 1, "a": 2}
    assert msgpack.unpackb(data) == {"a": 2, "b": 1}
    with pytest.raises(EncodingError, match="canonical"):
        decode(data)


def test_decode_rejects_duplicate_map_keys() -> None:
    with pytest.raises(EncodingError):
        decode(b"\x82\xa1a\x01\xa1a\x02")
    with pytest.raises(EncodingError):
        decode(b"\x82\xa1a\x01\xa1a\x01")  # even with equal values


def test_decode_rejects_int_map_keys() -> None:
    with pytest.raises(EncodingError):
        decode(b"\x81\x01\x02")


def test_decode_rejects_bytes_map_keys() -> None:
    with pytest.raises(EncodingError):
        decode(b"\x81\xc4\x01a\x01")


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(msgpack.packb(1.5), id="float64"),
        pytest.param(msgpack.packb(1.5, use_single_float=True), id="float32"),
        pytest.param(msgpack.packb({"a": [0.0]}), id="nested"),
    ],
)
def test_decode_rejects_floats(data: bytes) -> None:
    with pytest.raises(EncodingError, match="float"):
        decode(data)


def test_decode_rejects_trailing_bytes() -> None:
    with pytest.raises(EncodingError):
        decode(encode([1, 2]) + b"\x00")


@pytest.mark.parametrize("cut", [1, 5, 9])
def test_decode_rejects_truncated_input(cut: int) -> None:
    data = encode({"key": b"0123456789"})
    with pytest.raises(EncodingError):
        decode(data[:cut])


def test_decode_rejects_empty_input() -> None:
    with pytest.raises(EncodingError):
        decode(b"")


def test_decode_rejects_invalid_bytes() -> None:
    with pytest.raises(EncodingError):
        decode(b"\xc1")


def test_decode_rejects_invalid_utf8_in_str() -> None:
    with pytest.raises(EncodingError):
        decode(b"\xa2\xff\xfe")


def test_decode_rejects_ext_types() -> None:
    with pytest.raises(EncodingError):
        decode(msgpack.packb(msgpack.ExtType(1, b"abc")))
    with pytest.raises(EncodingError):
        decode(b"\xd6\xff" + bytes(4))  # a msgpack timestamp


def test_decode_rejects_too_deep_nesting() -> None:
    data = msgpack.packb(nested_lists(DEPTH_MAX + 1))
    with pytest.raises(EncodingError, match="nested"):
        decode(data)


def test_decode_rejects_absurdly_deep_nesting_without_recursion_error() -> None:
    with pytest.raises(EncodingError):
        decode(b"\x91" * 100_000 + b"\xc0")


def test_decode_rejects_oversized_input_given_bytes_max() -> None:
    data = encode("x" * 100)
    with pytest.raises(EncodingError, match="limit"):
        decode(data, bytes_max=len(data) - 1)


def test_decode_rejects_length_header_beyond_input() -> None:
    with pytest.raises(EncodingError):
        decode(b"\xc6\xff\xff\xff\xff")  # bin32 claiming 4 GiB


@pytest.mark.parametrize("data", ["\x01", 1, None, [1], bytes])
def test_decode_rejects_non_bytes_input(data: Any) -> None:
    with pytest.raises(EncodingError, match="expected bytes"):
        decode(data)


@given(st.binary(max_size=64))
def test_decode_of_arbitrary_bytes_raises_or_is_exactly_canonical(data: bytes) -> None:
    try:
        value = decode(data)
    except EncodingError:
        return
    assert encode(value) == data


@given(values, st.integers(min_value=0), st.integers(min_value=0, max_value=255))
def test_decode_of_a_mutated_encoding_raises_or_is_exactly_canonical(
    value: Any, position: int, byte: int
) -> None:
    data = bytearray(encode(value))
    data[position % len(data)] = byte
    try:
        decoded = decode(bytes(data))
    except EncodingError:
        return
    assert encode(decoded) == bytes(data)


# --- encode rejects -----------------------------------------------------------------------------


@pytest.mark.parametrize("value", [1.0, [0.5], {"a": float("nan")}])
def test_encode_rejects_floats(value: Any) -> None:
    with pytest.raises(EncodingError, match="float"):
        encode(value)


@pytest.mark.parametrize("value", [{1: "a"}, {b"k": 1}, {None: 1}, {("a",): 1}, {"a": {True: 1}}])
def test_encode_rejects_non_str_keys(value: Any) -> None:
    with pytest.raises(EncodingError, match="map key"):
        encode(value)


@pytest.mark.parametrize("value", [INT_MAX + 1, INT_MIN - 1, 2**100, [-(2**70)]])
def test_encode_rejects_out_of_range_ints(value: Any) -> None:
    with pytest.raises(EncodingError, match="64-bit"):
        encode(value)


@pytest.mark.parametrize("value", [{1, 2}, frozenset(), object(), bytearray(b"x"), 1j, {"a": {1}}])
def test_encode_rejects_sets_and_other_objects(value: Any) -> None:
    with pytest.raises(EncodingError, match="cannot encode"):
        encode(value)


def test_encode_rejects_too_deep_nesting() -> None:
    with pytest.raises(EncodingError, match="nested"):
        encode(nested_lists(DEPTH_MAX + 1))


@pytest.mark.parametrize("value", ["\ud800", ["ok", "\udfff"], {"\ud800": 1}])
def test_encode_rejects_lone_surrogates(value: Any) -> None:
    with pytest.raises(EncodingError, match="unicode"):
        encode(value)


@given(values)
def test_canonical_copy_is_what_a_round_trip_gives(value: Any) -> None:
    assert canonical_copy(value) == decode(encode(value))


def test_canonical_copy_does_not_alias_a_flat_map() -> None:
    value = {"b": 1, "a": 2}
    copy = canonical_copy(value)
    assert list(copy) == ["a", "b"]
    value["c"] = 3
    assert "c" not in copy


@pytest.mark.parametrize(
    "value", [{"a": 2**64}, {"a": 1.5}, {"a": "\ud800"}, 2**64, "\udfff", {1: "x"}]
)
def test_canonical_copy_refuses_what_encode_refuses(value: Any) -> None:
    with pytest.raises(EncodingError):
        canonical_copy(value)


@given(st.lists(values, max_size=20))
def test_array_header_joined_with_items_is_the_list_encoding(items: list[Any]) -> None:
    joined = array_header(len(items)) + b"".join(encode(item) for item in items)
    assert joined == encode(items)


@pytest.mark.parametrize("length", [0, 15, 16, 65_535, 65_536])
def test_array_header_matches_every_width(length: int) -> None:
    assert array_header(length) == encode([None] * length)[: len(array_header(length))]
