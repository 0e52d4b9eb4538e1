"""Canonical msgpack encoding: exactly one byte string per value.

Allowed values are None, bool, int (64-bit signed or unsigned), str, bytes, lists (tuples encode as
lists) and maps with str keys. Floats are refused: their encoding is not fixed across producers.
Maps are written with keys sorted by their UTF-8 bytes and every integer in its shortest form (what
msgpack's packer does already). `decode` accepts only input that re-encodes to the same bytes, so
two different byte strings never decode to the same value.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgpack

from ledger.errors import EncodingError

DEPTH_MAX = 32
INT_MIN = -(2**63)
INT_MAX = 2**64 - 1

_pack = msgpack.Packer(use_bin_type=True, autoreset=True).pack
_header_packer = msgpack.Packer(use_bin_type=True, autoreset=True)


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


def array_header(length: int) -> bytes:
    """The canonical header of a list of `length` items: followed by the items' encodings, it is
    the list's encoding (for joining items that were encoded once already)."""
    if not 0 <= length < 2**32:
        raise EncodingError(f"a list of {length} items cannot be encoded")
    header: bytes = _header_packer.pack_array_header(length)
    return header


def encode(value: Any, *, depth: int = 0) -> bytes:
    """Encode `value` canonically; raises EncodingError for values outside the allowed set.
    `depth`: how deep `value` sits in the value whose encoding this is part of (its nesting
    counts from there against DEPTH_MAX)."""
    plain = _plain(value, depth)
    if plain is not _UNUSUAL:
        # Plain data with sorted keys: msgpack's C packer writes exactly the canonical bytes
        # (and refuses out-of-range integers itself).
        try:
            packed: bytes = _pack(plain)
        except (OverflowError, UnicodeEncodeError, ValueError, TypeError):
            pass  # the full path below says precisely what is wrong
        else:
            return packed
    try:
        packed = _pack(_canonical(value, depth))
    except UnicodeEncodeError as exc:  # a lone surrogate has no UTF-8 form
        raise EncodingError(f"string is not valid unicode text: {exc}") from exc
    return packed


_PLAIN_SCALARS = frozenset({str, bytes, int, bool, type(None)})
_STR_ONLY = frozenset({str})


def canonical_copy(value: Any) -> Any:
    """What decode(encode(value)) returns (a private copy in canonical form: map keys sorted,
    tuples as lists), raising EncodingError alike; a map of scalars takes a shortcut."""
    kind = type(value)
    if kind in _PLAIN_SCALARS:
        if kind is int or kind is str:
            _checked_pack(value)
        return value
    if (
        kind is dict
        and _STR_ONLY.issuperset(map(type, value))
        and _PLAIN_SCALARS.issuperset(map(type, value.values()))
    ):
        copy = {key: value[key] for key in sorted(value)}
        _checked_pack(copy)
        return copy
    return decode(encode(value))


def _checked_pack(value: Any) -> None:
    """Pack plain data only to see that it packs (64-bit integers, encodable text)."""
    try:
        _pack(value)
    except (OverflowError, UnicodeEncodeError, ValueError, TypeError):
        encode(value)  # raises the precise EncodingError
        raise


_UNUSUAL = object()


def _plain(value: Any, depth: int) -> Any:
    """`value` ready for msgpack's packer (itself if already canonical, else a copy with map keys
    sorted and tuples as lists), or _UNUSUAL for anything the full path must look at (other
    types, subclasses, non-str keys, nesting beyond DEPTH_MAX). Walks containers only, so
    scalars cost one type check each, and a container of scalars is checked in one C-level pass."""
    kind = type(value)
    if kind in _PLAIN_SCALARS:
        return value
    if kind is dict:
        if not _STR_ONLY.issuperset(map(type, value)):
            return _UNUSUAL
        if depth >= DEPTH_MAX and value:
            return _UNUSUAL
        keys = list(value)
        # Python orders str by code point, which is the order of their UTF-8 bytes.
        ordered = len(keys) < 2 or keys == sorted(keys)
        if _PLAIN_SCALARS.issuperset(map(type, value.values())):
            return value if ordered else {key: value[key] for key in sorted(keys)}
        plain_map: dict[str, Any] = {}
        for key in keys if ordered else sorted(keys):
            child = value[key]
            if type(child) not in _PLAIN_SCALARS:
                child = _plain(child, depth + 1)
                if child is _UNUSUAL:
                    return _UNUSUAL
            plain_map[key] = child
        return plain_map
    if kind is list or kind is tuple:
        if depth >= DEPTH_MAX and value:
            return _UNUSUAL
        if _PLAIN_SCALARS.issuperset(map(type, value)):
            return value if kind is list else list(value)
        plain_list: list[Any] = []
        for item in value:
            child = item
            if type(item) not in _PLAIN_SCALARS:
                child = _plain(item, depth + 1)
                if child is _UNUSUAL:
                    return _UNUSUAL
            plain_list.append(child)
        return plain_list
    return _UNUSUAL


def _check_decoded(value: Any, depth: int) -> None:
    """Raise unless a decoded value could be canonical: str map keys in sorted order, no floats,
    nesting within DEPTH_MAX (minimal headers are checked by re-packing)."""
    kind = type(value)
    if kind is dict:
        if not _STR_ONLY.issuperset(map(type, value)):
            key = next(k for k in value if type(k) is not str)
            raise EncodingError(f"map key {key!r} is a {type(key).__name__}, expected str")
        keys = list(value)
        if len(keys) > 1 and keys != sorted(keys):
            raise EncodingError("not in canonical form (map keys unsorted)")
        children: Any = value.values()
    elif kind is list:
        children = value
    elif kind in _PLAIN_SCALARS:
        return
    elif kind is float:
        raise EncodingError("floats are not allowed in canonical data; use integers")
    else:
        raise EncodingError(f"cannot decode to a value of type {kind.__name__}")
    if depth >= DEPTH_MAX and children:
        raise EncodingError(f"value nested deeper than {DEPTH_MAX} levels")
    if _PLAIN_SCALARS.issuperset(map(type, children)):
        return
    for child in children:
        if type(child) not in _PLAIN_SCALARS:
            _check_decoded(child, depth + 1)


class ContainersExceeded(ValueError):
    """More lists and maps than the decoder was allowed to build (see `container_budget`)."""


def container_budget(limit: int) -> dict[str, Callable[[Any], Any]]:
    """msgpack unpack hooks that stop the decoding, with ContainersExceeded, once it has built
    more than `limit` lists and maps. A byte of input can be an empty list (0x90), some 64
    bytes decoded, or a one-entry map (three bytes, some 200): bytes from outside capped in
    size alone still cost up to 80 times their size in memory before their shape is looked
    at. With the budget, a decoder of a known shape builds only what that shape holds."""
    built = 0

    def count(container: Any) -> Any:
        nonlocal built
        built += 1
        if built > limit:
            raise ContainersExceeded(f"holds more than {limit} lists and maps")
        return container

    return {"list_hook": count, "object_hook": count}


def decode(data: bytes, *, bytes_max: int | None = None, containers_max: int | None = None) -> Any:
    """Decode canonical bytes; raises EncodingError for anything that would not re-encode alike,
    or that is longer than `bytes_max` or holds more than `containers_max` lists and maps (see
    `container_budget`)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise EncodingError(f"expected bytes to decode, got {type(data).__name__}")
    raw = bytes(data)
    if bytes_max is not None and len(raw) > bytes_max:
        raise EncodingError(f"encoding is {len(raw)} bytes, the limit is {bytes_max}")
    hooks = {} if containers_max is None else container_budget(containers_max)
    try:
        value = msgpack.unpackb(
            raw,
            raw=False,
            use_list=True,
            strict_map_key=True,
            **hooks,
        )
    except ContainersExceeded as exc:
        raise EncodingError(str(exc)) from exc
    except (msgpack.ExtraData, msgpack.FormatError, msgpack.StackError, RecursionError) as exc:
        raise EncodingError(f"not a single msgpack value: {exc}") from exc
    except (ValueError, TypeError, UnicodeDecodeError) as exc:
        raise EncodingError(f"malformed msgpack: {exc}") from exc
    _check_decoded(value, 0)
    if _pack(value) != raw:
        raise EncodingError("not in canonical form (map keys unsorted or a non-minimal encoding)")
    return value
