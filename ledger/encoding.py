"""Canonical msgpack encoding: exactly one byte string per value.

Allowed values are None, bool, int (64-bit signed or unsigned), str, bytes, lists (tuples encode as
lists) and maps with str keys. Floats are refused: their encoding is not fixed across producers.
Maps are written with keys sorted by their UTF-8 bytes and every integer in its shortest form (what
msgpack's packer does already). `decode` accepts only input that re-encodes to the same bytes, so
two different byte strings never decode to the same value.
"""

from __future__ import annotations

from typing import Any

import msgpack

from ledger.errors import EncodingError

DEPTH_MAX = 32
INT_MIN = -(2**63)
INT_MAX = 2**64 - 1


def _canonical(value: Any, depth: int) -> Any:
    if depth > DEPTH_MAX:
        raise EncodingError(f"value nested deeper than {DEPTH_MAX} levels")
    if value is None or isinstance(value, (bool, str, bytes)):
        return value
    if isinstance(value, int):
        if not INT_MIN <= value <= INT_MAX:
            raise EncodingError(f"integer {value} is outside the 64-bit range")
        return value
    if isinstance(value, (list, tuple)):
        return [_canonical(item, depth + 1) for item in value]
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise EncodingError(f"map key {key!r} is a {type(key).__name__}, expected str")
        return {
            key: _canonical(value[key], depth + 1)
            for key in sorted(value, key=lambda k: k.encode("utf-8"))
        }
    if isinstance(value, float):
        raise EncodingError("floats are not allowed in canonical data; use integers")
    raise EncodingError(f"cannot encode a value of type {type(value).__name__}")


def encode(value: Any) -> bytes:
    """Encode `value` canonically; raises EncodingError for values outside the allowed set."""
    try:
        packed: bytes = msgpack.packb(_canonical(value, 0), use_bin_type=True)
    except UnicodeEncodeError as exc:  # a lone surrogate has no UTF-8 form
        raise EncodingError(f"string is not valid unicode text: {exc}") from exc
    return packed


def decode(data: bytes, *, bytes_max: int | None = None) -> Any:
    """Decode canonical bytes; raises EncodingError for anything that would not re-encode alike."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise EncodingError(f"expected bytes to decode, got {type(data).__name__}")
    raw = bytes(data)
    if bytes_max is not None and len(raw) > bytes_max:
        raise EncodingError(f"encoding is {len(raw)} bytes, the limit is {bytes_max}")
    try:
        value = msgpack.unpackb(
            raw,
            raw=False,
            use_list=True,
            strict_map_key=True,
        )
    except (msgpack.ExtraData, msgpack.FormatError, msgpack.StackError, RecursionError) as exc:
        raise EncodingError(f"not a single msgpack value: {exc}") from exc
    except (ValueError, TypeError, UnicodeDecodeError) as exc:
        raise EncodingError(f"malformed msgpack: {exc}") from exc
    if encode(value) != raw:
        raise EncodingError("not in canonical form (map keys unsorted or a non-minimal encoding)")
    return value
