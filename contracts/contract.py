"""How contracts are declared: the `Contract` base class, the `@method` decorator and `Call`.

A contract is a class with a `name` and methods marked `@method(roles=..., args=...)`. The runtime
reads those declarations to route a transaction, check the sender's roles and validate its args,
and only then calls the method with a `Call` (who, when, the transaction's working state, and
`emit` for events) and the validated args as keyword arguments. A method returns canonical data or
raises an ExecutionError; anything else it raises is a bug and propagates.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from contracts.errors import (
    ArgumentError,
    DefinitionError,
    ExecutionError,
    QueryError,
    QueryParameterError,
)
from contracts.receipt import EVENTS_MAX, SUBJECT_LENGTH_MAX, Event
from contracts.schema import ArgType, describe_args
from contracts.state import Overlay, StateReader, Writes
from ledger.encoding import canonical_copy
from ledger.genesis import Genesis, Role
from ledger.tx import NAME_LENGTH_MAX

CONTRACT_NAME_PATTERN = r"[a-z][a-z0-9_]{0,63}"
# A ['newest'] query answers this many records at most (with the total), reading only those:
# the explorer refreshes its boards with it, where the whole list grows with the chain. A paged
# query (Contract.query_page) answers as many at most per page.
NEWEST_QUERY_MAX = 200

MethodFunction = Callable[..., Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class BlockContext:
    """What a contract may know about the block it runs in; the only source of time."""

    chain_id: str
    height: int
    timestamp_ms: int
    proposer: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Call:
    """One method invocation: who called, in which block and transaction, on what state."""

    contract: str
    method: str
    sender: bytes
    sender_name: str
    sender_roles: tuple[Role, ...]
    block: BlockContext
    tx_hash: bytes
    state: Overlay
    events: list[Event] = field(default_factory=list)

    def emit(self, kind: str, subject: str, data: Mapping[str, Any]) -> None:
        """Record an event; it reaches the receipt only if the method succeeds."""
        if len(self.events) >= EVENTS_MAX:
            # Input can drive the count (one event per list item), so this fails the transaction.
            raise ExecutionError(f"a transaction may emit at most {EVENTS_MAX} events")
        if len(kind) > NAME_LENGTH_MAX or len(subject) > SUBJECT_LENGTH_MAX:
            raise ValueError(f"event kind or subject too long: {kind[:80]!a}, {subject[:80]!a}")
        # Round-tripping through the codec fails here, at the culprit, on data the digest could
        # not hash, and leaves the event with its own copy in canonical form.
        self.events.append(
            Event(
                contract=self.contract, kind=kind, subject=subject, data=canonical_copy(dict(data))
            )
        )

    def has_role(self, *roles: Role) -> bool:
        return any(role in self.sender_roles for role in roles)

    def acting_as(self, contract: str) -> Call:
        """This call as seen by another contract's internal API, for a cross-contract effect.

        The copy shares this call's overlay and event list, so what the other contract writes
        and emits (under its own name) lands in the same transaction and is dropped with it if
        the transaction fails. Roles are not rechecked: the calling method already decided the
        sender may cause the effect.
        """
        return self if contract == self.contract else replace(self, contract=contract)


@dataclass(frozen=True, slots=True, kw_only=True)
class MethodSpec:
    """A declared contract method; the class attribute a `@method` decorator leaves behind."""

    name: str
    roles: tuple[Role, ...]
    args: Mapping[str, ArgType]
    function: MethodFunction
    doc: str

    def describe(self) -> dict[str, Any]:
        return {
            "doc": self.doc,
            "roles": [str(role) for role in self.roles],
            "args": describe_args(self.args),
        }


def method(
    *, roles: Sequence[Role], args: Mapping[str, ArgType] | None = None
) -> Callable[[MethodFunction], MethodSpec]:
    """Declare a contract method callable by senders holding any of `roles`."""

    def declare(function: MethodFunction) -> MethodSpec:
        schema = dict(args or {})
        _check_declaration(function, roles, schema)
        return MethodSpec(
            name=function.__name__,
            roles=tuple(roles),
            args=schema,
            function=function,
            doc=inspect.getdoc(function) or "",
        )

    return declare


def _check_declaration(
    function: MethodFunction, roles: Sequence[Role], schema: Mapping[str, ArgType]
) -> None:
    where = function.__qualname__
    if not roles or not all(isinstance(role, Role) for role in roles):
        raise DefinitionError(f"{where}: roles must be a non-empty sequence of Role")
    parameters = list(inspect.signature(function).parameters.values())
    keyword = [p.name for p in parameters[2:] if p.kind is inspect.Parameter.KEYWORD_ONLY]
    if [p.name for p in parameters[:2]] != ["self", "call"] or len(keyword) != len(parameters) - 2:
        raise DefinitionError(f"{where}: expected (self, call, *, <one keyword per argument>)")
    if sorted(keyword) != sorted(schema):
        raise DefinitionError(
            f"{where}: keyword parameters {sorted(keyword)} differ from args {sorted(schema)}"
        )
    for name, arg in schema.items():
        if not arg.required:
            # A default must itself be valid, or a caller who omits the argument gets garbage.
            try:
                arg.check(arg.default, f"{where}: default of {name}")
            except ArgumentError as exc:
                raise DefinitionError(str(exc)) from exc


class Contract:
    """Base of every contract: a `name`, `@method`s, genesis writes and read-only queries."""

    name: ClassVar[str]
    methods: ClassVar[dict[str, MethodSpec]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        methods: dict[str, MethodSpec] = {}
        # Bases first, so a subclass may redefine a method; class dicts keep definition order.
        for klass in reversed(cls.__mro__):
            for value in vars(klass).values():
                if isinstance(value, MethodSpec):
                    methods[value.name] = value
        cls.methods = methods
        name = cls.__dict__.get("name")
        if name is not None and not (
            isinstance(name, str) and re.fullmatch(CONTRACT_NAME_PATTERN, name)
        ):
            raise DefinitionError(f"{cls.__qualname__}: contract name {name!a} is not valid")

    def invoke(self, spec: MethodSpec, call: Call, args: Mapping[str, Any]) -> Any:
        return spec.function(self, call, **args)

    def genesis_writes(self, genesis: Genesis) -> Writes:
        """State this contract starts with (none unless overridden)."""
        return {}

    def query(self, state: StateReader, path: Sequence[str]) -> Any:
        """Answer a read-only query with JSON-friendly data; QueryError for an unknown path."""
        raise QueryError(f"contract {self.name} has no queries")

    def query_page(self, state: StateReader, path: Sequence[str], *, after: str) -> Any:
        """The bounded form of the listing at `path`: at most NEWEST_QUERY_MAX records whose keys
        follow the cursor `after` ("" for the first page), whether more follow, and the cursor
        to go on from. For listings keyed by names anyone may choose, where no path segment
        (like ['newest']) is free to name the bounded form, so the cursor arrives beside the
        path. QueryParameterError for a malformed cursor, or where the contract pages nothing."""
        raise QueryParameterError(
            f"contract {self.name} pages no listing: its queries take no 'after' parameter"
        )

    def describe(self) -> dict[str, Any]:
        return {
            "doc": inspect.getdoc(type(self)) or "",
            "methods": {name: spec.describe() for name, spec in self.methods.items()},
        }
