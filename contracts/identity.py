"""The identity contract: who may send transactions, with which roles, and its key layout.

Identities come from the genesis and change only through admin transactions. A record is stored
under the member's public key (the runtime looks senders up by key on every transaction) and a
name index points from the name to the key. The contract keeps at least one active admin, so the
chain can never lock itself out of administration.

Other contracts record members by name (an order's customer, a machine's operator, who opened or
took a work order), so a name must mean one member for the chain's whole history. Removing a
member therefore retires its name: a removal record stays under the name, and `add` refuses that
name for good, whatever the key. The key itself may be added again under a new name, as the same
member (its nonce and the oracle's count by key carry on); nothing the old name owned follows it.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from contracts.contract import Call, Contract, method
from contracts.errors import ConflictError, NotFoundError, QueryError, StateError
from contracts.schema import NAME_PATTERN, Bytes, Choice, ListOf, Str
from contracts.state import (
    MemoryState,
    Overlay,
    RecordMemo,
    StateReader,
    Writes,
    decode_map,
    read_map,
    write_map,
)
from ledger.crypto import PUBLIC_KEY_BYTES
from ledger.errors import ValidationError
from ledger.fields import expect_bytes, expect_int, expect_list, expect_str
from ledger.genesis import Genesis, Role

IDENTITY_PREFIX = b"identity/"
NAME_INDEX_PREFIX = b"identity-name/"
REMOVED_PREFIX = b"identity-removed/"
REMOVED_STATUS = "removed"
ROLE_NAMES = tuple(str(role) for role in Role)

_NAME = Str(min_len=1, max_len=64, pattern=NAME_PATTERN)


class IdentityStatus(enum.StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"


@dataclass(frozen=True, slots=True, kw_only=True)
class IdentityRecord:
    name: str
    public_key: bytes
    roles: tuple[Role, ...]
    status: IdentityStatus

    @property
    def active(self) -> bool:
        return self.status is IdentityStatus.ACTIVE

    @property
    def active_admin(self) -> bool:
        return self.active and Role.ADMIN in self.roles

    def to_map(self) -> dict[str, Any]:
        return {**_member_map(self), "status": str(self.status)}

    @classmethod
    def from_map(cls, key: bytes, value: dict[str, Any]) -> IdentityRecord:
        try:
            return cls(
                **_member_fields(value),
                status=IdentityStatus(expect_str(value.get("status"), "status")),
            )
        except (ValidationError, ValueError) as exc:
            raise StateError(f"identity record at {key!a} is malformed: {exc}") from exc

    def summary(self) -> dict[str, Any]:
        return {**_member_summary(self), "status": str(self.status)}


@dataclass(frozen=True, slots=True, kw_only=True)
class RemovedIdentity:
    """What stays of a removed member: its name, retired for good, and who held it until when."""

    name: str
    public_key: bytes
    roles: tuple[Role, ...]
    removed_height: int

    def to_map(self) -> dict[str, Any]:
        return {**_member_map(self), "removed_height": self.removed_height}

    @classmethod
    def from_map(cls, key: bytes, value: dict[str, Any]) -> RemovedIdentity:
        try:
            return cls(
                **_member_fields(value),
                removed_height=expect_int(value.get("removed_height"), "removed_height"),
            )
        except (ValidationError, ValueError) as exc:
            raise StateError(f"removed identity at {key!a} is malformed: {exc}") from exc

    def summary(self) -> dict[str, Any]:
        """The shape of a member's summary, with status "removed" and the removal's height."""
        return {
            **_member_summary(self),
            "status": REMOVED_STATUS,
            "removed_height": self.removed_height,
        }


def _member_map(record: IdentityRecord | RemovedIdentity) -> dict[str, Any]:
    """The fields a member's record and its removal record share, as stored."""
    return {
        "name": record.name,
        "public_key": record.public_key,
        "roles": [str(role) for role in record.roles],
    }


def _member_summary(record: IdentityRecord | RemovedIdentity) -> dict[str, Any]:
    return {**_member_map(record), "public_key": record.public_key.hex()}


def _member_fields(value: dict[str, Any]) -> dict[str, Any]:
    """The shared fields of a stored member or removal record, checked (ValidationError or
    ValueError for a malformed one)."""
    return {
        "name": expect_str(value.get("name"), "name"),
        "public_key": expect_bytes(value.get("public_key"), "public_key", length=PUBLIC_KEY_BYTES),
        "roles": tuple(
            Role(role) for role in expect_list(value.get("roles"), "roles", length_max=16)
        ),
    }


def canonical_roles(roles: Sequence[Role | str]) -> tuple[Role, ...]:
    """Roles deduplicated in the order Role declares them, so equal sets store alike."""
    wanted = {Role(role) for role in roles}
    return tuple(role for role in Role if role in wanted)


def identity_key(public_key: bytes) -> bytes:
    return IDENTITY_PREFIX + public_key.hex().encode("ascii")


def name_key(name: str) -> bytes:
    return NAME_INDEX_PREFIX + name.encode("utf-8")


def removed_key(name: str) -> bytes:
    return REMOVED_PREFIX + name.encode("utf-8")


_IDENTITIES: RecordMemo[IdentityRecord] = RecordMemo(IdentityRecord.from_map)


def read_identity(state: StateReader, public_key: bytes) -> IdentityRecord | None:
    return _IDENTITIES.read(state, identity_key(public_key))


def find_identity(state: StateReader, name: str) -> IdentityRecord | None:
    key = name_key(name)
    index = read_map(state, key)
    if index is None:
        return None
    public_key = index.get("public_key")
    if not isinstance(public_key, bytes):
        raise StateError(f"name index at {key!a} has no public key")
    record = read_identity(state, public_key)
    if record is None or record.name != name:
        raise StateError(f"name index at {key!a} points at no identity named {name!a}")
    return record


def find_removed(state: StateReader, name: str) -> RemovedIdentity | None:
    """The removal record of `name`, or None if no member of that name was ever removed."""
    key = removed_key(name)
    value = read_map(state, key)
    return None if value is None else RemovedIdentity.from_map(key, value)


def refuse_retired_name(state: StateReader, name: str, *, given_as: str) -> None:
    """Fail if `name` belonged to a removed member: whoever took it would inherit what the
    removed member owned under it (its orders, the machines it operates, its work orders)."""
    removed = find_removed(state, name)
    if removed is not None:
        raise ConflictError(
            f"{given_as} {name!a} is retired: the identity of that name was removed at height "
            f"{removed.removed_height}, and a removed name is never given to another member, "
            "so nobody inherits what it owned; choose another name"
        )


def all_identities(state: StateReader) -> Iterator[IdentityRecord]:
    """Every identity, in the order of their public keys."""
    for key, raw in state.scan(IDENTITY_PREFIX):
        yield IdentityRecord.from_map(key, decode_map(key, raw))


def write_identity(state: Overlay, record: IdentityRecord) -> None:
    write_map(state, identity_key(record.public_key), record.to_map())
    write_map(state, name_key(record.name), {"public_key": record.public_key})


class IdentityContract(Contract):
    """Members of the chain, their roles and whether they may send transactions."""

    name = "identity"

    def genesis_writes(self, genesis: Genesis) -> Writes:
        overlay = Overlay(MemoryState())
        for identity in genesis.identities:
            record = IdentityRecord(
                name=identity.name,
                public_key=identity.public_key,
                roles=canonical_roles(identity.roles),
                status=IdentityStatus.ACTIVE,
            )
            write_identity(overlay, record)
        return overlay.writes

    @method(
        roles=(Role.ADMIN,),
        args={
            "name": _NAME,
            "public_key": Bytes(length=PUBLIC_KEY_BYTES),
            "roles": ListOf(item=Choice(values=ROLE_NAMES), min_len=1, max_len=len(ROLE_NAMES)),
        },
    )
    def add(self, call: Call, *, name: str, public_key: bytes, roles: list[str]) -> dict[str, Any]:
        """Register a new member with roles; the name and the key must both be unused, and the
        name never held by a removed member (a key may come back under a new name)."""
        refuse_retired_name(call.state, name, given_as="name")
        if find_identity(call.state, name) is not None:
            raise ConflictError(f"an identity named {name!a} already exists")
        holder = read_identity(call.state, public_key)
        if holder is not None:
            raise ConflictError(f"public key {public_key.hex()} already belongs to {holder.name}")
        record = IdentityRecord(
            name=name,
            public_key=public_key,
            roles=canonical_roles(roles),
            status=IdentityStatus.ACTIVE,
        )
        write_identity(call.state, record)
        call.emit(
            "add", f"identity:{name}", {"public_key": public_key, "roles": record.to_map()["roles"]}
        )
        return record.to_map()

    @method(roles=(Role.ADMIN,), args={"name": _NAME})
    def suspend(self, call: Call, *, name: str) -> dict[str, Any]:
        """Stop a member from sending transactions until reinstated."""
        record = _existing(call.state, name)
        if not record.active:
            raise ConflictError(f"identity {name} is already suspended")
        _keep_an_admin(call.state, record, "suspend")
        return _set_status(call, record, IdentityStatus.SUSPENDED, "suspend")

    @method(roles=(Role.ADMIN,), args={"name": _NAME})
    def reinstate(self, call: Call, *, name: str) -> dict[str, Any]:
        """Let a suspended member send transactions again."""
        record = _existing(call.state, name)
        if record.active:
            raise ConflictError(f"identity {name} is not suspended")
        return _set_status(call, record, IdentityStatus.ACTIVE, "reinstate")

    @method(roles=(Role.ADMIN,), args={"name": _NAME})
    def remove(self, call: Call, *, name: str) -> dict[str, Any]:
        """Delete a member and retire its name for good; its account nonce stays, so its old
        transactions cannot replay."""
        record = _existing(call.state, name)
        _keep_an_admin(call.state, record, "remove")
        call.state.delete(identity_key(record.public_key))
        call.state.delete(name_key(record.name))
        removed = RemovedIdentity(
            name=record.name,
            public_key=record.public_key,
            roles=record.roles,
            removed_height=call.block.height,
        )
        write_map(call.state, removed_key(record.name), removed.to_map())
        call.emit("remove", f"identity:{name}", {"public_key": record.public_key})
        return {"name": name, "removed": True}

    def query(self, state: StateReader, path: Sequence[str]) -> Any:
        """[]: the current members by name; [name]: one member, or a removed one's summary
        (status "removed", with the removal's height)."""
        if len(path) == 0:
            return {record.name: record.summary() for record in _by_name(state)}
        if len(path) == 1:
            record = find_identity(state, path[0])
            if record is not None:
                return record.summary()
            removed = find_removed(state, path[0])
            if removed is not None:
                return removed.summary()
            raise QueryError(f"no identity named {path[0]!a}")
        raise QueryError(f"identity queries take [] or [name], got {list(path)!a}")


def _by_name(state: StateReader) -> list[IdentityRecord]:
    return sorted(all_identities(state), key=lambda record: record.name)


def _existing(state: StateReader, name: str) -> IdentityRecord:
    record = find_identity(state, name)
    if record is not None:
        return record
    removed = find_removed(state, name)
    if removed is not None:
        raise NotFoundError(
            f"identity {name!a} was removed at height {removed.removed_height}; "
            "a removed name is retired for good"
        )
    raise NotFoundError(f"no identity named {name!a}")


def _keep_an_admin(state: StateReader, record: IdentityRecord, action: str) -> None:
    if not record.active_admin:
        return
    others = [
        other for other in all_identities(state) if other.active_admin and other.name != record.name
    ]
    if not others:
        raise ConflictError(f"cannot {action} {record.name}: it is the last active admin")


def _set_status(
    call: Call, record: IdentityRecord, status: IdentityStatus, kind: str
) -> dict[str, Any]:
    updated = IdentityRecord(
        name=record.name, public_key=record.public_key, roles=record.roles, status=status
    )
    write_identity(call.state, updated)
    call.emit(kind, f"identity:{record.name}", {"status": str(status)})
    return updated.to_map()
