"""Declarative argument schemas for contract methods, and the validation of transaction args.

A method declares `args={"qty": Int(min=1), ...}`; the runtime validates a transaction's args
against it before the method runs, so contract code only ever sees values of the declared shape.
Messages name the argument and say what was expected, because they end up in receipts that people
read. Validation is pure and total over decoded canonical data: it raises ArgumentError and
nothing else.
"""

from __future__ import annotations

import enum
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from contracts.errors import ArgumentError
from ledger.tx import jsonable

INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1
# Names of items, locations, machines, ...: not starting with a dot, so never "." or "..",
# which a URL's path drops (GET /state/machines/.. would name the machines' list).
NAME_PATTERN: Final = r"[A-Za-z0-9_-][A-Za-z0-9_.-]*"
COLLECTION_LENGTH_MAX: Final = 1024


class _Missing(enum.Enum):
    MISSING = "missing"


MISSING: Final = _Missing.MISSING
"""The default of a required argument (None is a legitimate default, so it cannot mark this)."""


DECIMAL_DIGITS_MAX = 20  # enough for every 64-bit integer


def is_decimal(text: str) -> bool:
    """ASCII digits only, and at most DECIMAL_DIGITS_MAX: str.isdigit() also accepts digits
    int() refuses, such as "²", and int() refuses strings of more than 4,300 digits."""
    return len(text) <= DECIMAL_DIGITS_MAX and text.isascii() and text.isdigit()


def value_kind(value: Any) -> str:
    """How a message names the type of a decoded value."""
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return f"a bool ({str(value).lower()})"
    if isinstance(value, int):
        return f"an integer ({value})"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bytes):
        return "bytes"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "a map"
    return f"a {type(value).__name__}"


@dataclass(frozen=True, slots=True, kw_only=True)
class ArgType(ABC):
    """One argument's schema; `default` makes it optional."""

    default: Any = MISSING

    @property
    def required(self) -> bool:
        return self.default is MISSING

    @abstractmethod
    def expected(self) -> str:
        """What a valid value is, in words ("an integer from 1 to 10")."""

    @abstractmethod
    def check(self, value: Any, where: str) -> Any:
        """Return the validated value, or raise ArgumentError naming `where`."""

    @abstractmethod
    def spec(self) -> dict[str, Any]:
        """The type-specific part of `describe`."""

    def describe(self) -> dict[str, Any]:
        described = {**self.spec(), "required": self.required}
        if not self.required:
            described["default"] = jsonable(self.default)
        return described

    def _mistyped(self, value: Any, where: str) -> ArgumentError:
        return ArgumentError(f"{where} must be {self.expected()}, got {value_kind(value)}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Int(ArgType):
    min: int = INT64_MIN
    max: int = INT64_MAX

    def expected(self) -> str:
        return f"an integer from {self.min} to {self.max}"

    def check(self, value: Any, where: str) -> int:
        # bool is an int subclass in Python but never a quantity.
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._mistyped(value, where)
        if value < self.min:
            raise ArgumentError(f"{where} must be at least {self.min}, got {value}")
        if value > self.max:
            raise ArgumentError(f"{where} must be at most {self.max}, got {value}")
        return value

    def spec(self) -> dict[str, Any]:
        return {"type": "int", "min": self.min, "max": self.max}


@dataclass(frozen=True, slots=True, kw_only=True)
class Str(ArgType):
    min_len: int = 0
    max_len: int = 256
    pattern: str | None = None  # a regular expression the whole string must match

    def expected(self) -> str:
        words = f"a string of {self.min_len} to {self.max_len} characters"
        if self.pattern is not None:
            words += f" matching {self.pattern}"
        return words

    def check(self, value: Any, where: str) -> str:
        if not isinstance(value, str):
            raise self._mistyped(value, where)
        if not self.min_len <= len(value) <= self.max_len:
            raise ArgumentError(f"{where} must be {self.expected()}, got {len(value)} characters")
        if self.pattern is not None and _compiled(self.pattern).fullmatch(value) is None:
            raise ArgumentError(f"{where} must be {self.expected()}, got {value[:80]!a}")
        return value

    def spec(self) -> dict[str, Any]:
        return {
            "type": "str",
            "min_len": self.min_len,
            "max_len": self.max_len,
            "pattern": self.pattern,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Bytes(ArgType):
    min_len: int = 0
    max_len: int = 4096
    length: int | None = None  # exact length; overrides min_len and max_len

    def expected(self) -> str:
        if self.length is not None:
            return f"exactly {self.length} bytes"
        return f"{self.min_len} to {self.max_len} bytes"

    def check(self, value: Any, where: str) -> bytes:
        if not isinstance(value, bytes):
            raise self._mistyped(value, where)
        if self.length is not None:
            fits = len(value) == self.length
        else:
            fits = self.min_len <= len(value) <= self.max_len
        if not fits:
            raise ArgumentError(f"{where} must be {self.expected()}, got {len(value)} bytes")
        return value

    def spec(self) -> dict[str, Any]:
        if self.length is not None:
            return {"type": "bytes", "length": self.length}
        return {"type": "bytes", "min_len": self.min_len, "max_len": self.max_len}


@dataclass(frozen=True, slots=True, kw_only=True)
class Bool(ArgType):
    def expected(self) -> str:
        return "a bool"

    def check(self, value: Any, where: str) -> bool:
        if not isinstance(value, bool):
            raise self._mistyped(value, where)
        return value

    def spec(self) -> dict[str, Any]:
        return {"type": "bool"}


@dataclass(frozen=True, slots=True, kw_only=True)
class Choice(ArgType):
    """A string from a fixed set (role names, statuses)."""

    values: tuple[str, ...]

    def expected(self) -> str:
        return f"one of {', '.join(self.values)}"

    def check(self, value: Any, where: str) -> str:
        if not isinstance(value, str):
            raise self._mistyped(value, where)
        if value not in self.values:
            raise ArgumentError(f"{where} must be {self.expected()}, got {value[:80]!a}")
        return value

    def spec(self) -> dict[str, Any]:
        return {"type": "choice", "values": list(self.values)}


@dataclass(frozen=True, slots=True, kw_only=True)
class ListOf(ArgType):
    item: ArgType
    min_len: int = 0
    max_len: int = COLLECTION_LENGTH_MAX
    unique: bool = False

    def expected(self) -> str:
        unique = " distinct" if self.unique else ""
        return (
            f"a list of {self.min_len} to {self.max_len}{unique} items, each {self.item.expected()}"
        )

    def check(self, value: Any, where: str) -> list[Any]:
        if not isinstance(value, list | tuple):
            raise self._mistyped(value, where)
        if not self.min_len <= len(value) <= self.max_len:
            raise ArgumentError(f"{where} must be {self.expected()}, got {len(value)} items")
        checked = [self.item.check(item, f"{where}[{index}]") for index, item in enumerate(value)]
        if self.unique:
            seen: list[Any] = []
            for index, item in enumerate(checked):
                # A list scan, not a set: items may be unhashable lists or maps.
                if item in seen:
                    raise ArgumentError(f"{where}[{index}] repeats an earlier item")
                seen.append(item)
        return checked

    def spec(self) -> dict[str, Any]:
        return {
            "type": "list",
            "item": self.item.describe(),
            "min_len": self.min_len,
            "max_len": self.max_len,
            "unique": self.unique,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class MapOf(ArgType):
    """A map from string keys (checked by `key`) to values of one schema."""

    value: ArgType
    key: Str = Str(min_len=1, max_len=64, pattern=NAME_PATTERN)
    max_len: int = COLLECTION_LENGTH_MAX

    def expected(self) -> str:
        return f"a map of at most {self.max_len} entries, each {self.value.expected()}"

    def check(self, value: Any, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self._mistyped(value, where)
        if len(value) > self.max_len:
            raise ArgumentError(f"{where} must be {self.expected()}, got {len(value)} entries")
        checked: dict[str, Any] = {}
        # Sorted so the first error reported is the same on every node.
        for key in sorted(value, key=_key_order):
            checked_key = self.key.check(key, f"{where} key")
            checked[checked_key] = self.value.check(value[key], f"{where}[{key!a}]")
        return checked

    def spec(self) -> dict[str, Any]:
        return {
            "type": "map",
            "key": self.key.describe(),
            "value": self.value.describe(),
            "max_len": self.max_len,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Record(ArgType):
    """A map with named fields, each of its own schema; a field with a default may be left out."""

    fields: Mapping[str, ArgType]

    def expected(self) -> str:
        return f"a map with fields {', '.join(self.fields)}"

    def check(self, value: Any, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self._mistyped(value, where)
        missing = [name for name, arg in self.fields.items() if arg.required and name not in value]
        if missing:
            wanted = "; ".join(f"{name} ({self.fields[name].expected()})" for name in missing)
            raise ArgumentError(f"{where} is missing field {wanted}")
        extra = sorted(str(name) for name in value if name not in self.fields)
        if extra:
            raise ArgumentError(
                f"{where} has unexpected field {', '.join(extra)}; "
                f"its fields are {', '.join(self.fields)}"
            )
        checked: dict[str, Any] = {}
        for name, arg in self.fields.items():
            if name in value:
                checked[name] = arg.check(value[name], f"{where}.{name}")
            else:
                checked[name] = arg.default
        return checked

    def spec(self) -> dict[str, Any]:
        return {"type": "record", "fields": describe_args(self.fields)}


def _key_order(key: Any) -> tuple[int, str]:
    # Decoded maps only have str keys, but in-process args may not; order those after strings.
    return (0, key) if isinstance(key, str) else (1, ascii(key))


_PATTERNS: dict[str, re.Pattern[str]] = {}
_ARG_WHERE: dict[tuple[str, str], str] = {}


def _compiled(pattern: str) -> re.Pattern[str]:
    compiled = _PATTERNS.get(pattern)
    if compiled is None:
        compiled = _PATTERNS[pattern] = re.compile(pattern)
    return compiled


def _arg_where(where: str, name: str) -> str:
    """ "{where}: argument {name}", kept: methods and their arguments are a small fixed set."""
    text = _ARG_WHERE.get((where, name))
    if text is None:
        text = f"{where}: argument {name}"
        if len(_ARG_WHERE) < 4096:
            _ARG_WHERE[(where, name)] = text
    return text


def validate_args(
    schema: Mapping[str, ArgType], args: Mapping[str, Any], *, where: str
) -> dict[str, Any]:
    """Check `args` against `schema`; returns every declared argument, defaults filled in.

    `where` names the method ("inventory.receive") at the start of each message.
    """
    if args.keys() != schema.keys():  # else every argument is given and none is unknown
        missing = [name for name, arg in schema.items() if arg.required and name not in args]
        if missing:
            wanted = "; ".join(f"{name} ({schema[name].expected()})" for name in missing)
            raise ArgumentError(f"{where}: missing argument {wanted}")
        extra = sorted(str(name) for name in args if name not in schema)
        if extra:
            takes = ", ".join(schema) if schema else "no arguments"
            raise ArgumentError(
                f"{where}: unexpected argument {', '.join(extra)}; it takes {takes}"
            )
    checked: dict[str, Any] = {}
    for name, arg in schema.items():
        if name in args:
            checked[name] = arg.check(args[name], _arg_where(where, name))
        else:
            checked[name] = arg.default
    return checked


def describe_args(schema: Mapping[str, ArgType]) -> dict[str, Any]:
    return {name: arg.describe() for name, arg in schema.items()}
