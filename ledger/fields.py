"""Field checks shared by the decoders of signed records: each raises ValidationError."""

from __future__ import annotations

from typing import Any

from ledger.errors import ValidationError


def expect_map(value: Any, what: str, keys: frozenset[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValidationError(f"{what} must be a map, got {type(value).__name__}")
    missing = keys - value.keys()
    extra = value.keys() - keys
    if missing:
        raise ValidationError(f"{what} is missing field(s) {', '.join(sorted(missing))}")
    if extra:
        raise ValidationError(f"{what} has unknown field(s) {', '.join(sorted(extra))}")
    return value


def expect_int(value: Any, what: str, *, minimum: int = 0, maximum: int = 2**63 - 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(f"{what} must be an integer, got {type(value).__name__}")
    if not minimum <= value <= maximum:
        raise ValidationError(f"{what} must be between {minimum} and {maximum}, got {value}")
    return value


def expect_str(value: Any, what: str, *, length_max: int = 256) -> str:
    if not isinstance(value, str):
        raise ValidationError(f"{what} must be a string, got {type(value).__name__}")
    if len(value) > length_max:
        raise ValidationError(f"{what} is {len(value)} characters, the limit is {length_max}")
    return value


def expect_bytes(value: Any, what: str, *, length: int | None = None) -> bytes:
    if not isinstance(value, bytes):
        raise ValidationError(f"{what} must be bytes, got {type(value).__name__}")
    if length is not None and len(value) != length:
        raise ValidationError(f"{what} must be {length} bytes, got {len(value)}")
    return value


def expect_list(value: Any, what: str, *, length_max: int) -> list[Any]:
    if not isinstance(value, list):
        raise ValidationError(f"{what} must be a list, got {type(value).__name__}")
    if len(value) > length_max:
        raise ValidationError(f"{what} has {len(value)} items, the limit is {length_max}")
    return value
