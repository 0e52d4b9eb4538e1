"""Genesis: the chain id, the validator set with addresses, identities with roles, parameters.

Stored as JSON so people can read and edit it; its hash is over the canonical encoding, so two
files that differ only in whitespace describe the same chain.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ledger.block import BLOCK_TXS_LIMIT, TX_ENTRY_BYTES
from ledger.certificate import COMMITS_MAX, max_faulty, quorum_size
from ledger.crypto import PUBLIC_KEY_BYTES
from ledger.encoding import encode
from ledger.errors import GenesisError
from ledger.hashing import sha256

INT_MAX = 2**63 - 1  # what every integer of a genesis must fit (its hash encodes them)
PORT_MAX = 65_535

# Upper bounds of the encoded parts of the consensus messages that carry blocks, with every
# integer at its largest and the longest chain id (consensus tests check them against the
# codec): one vote (a prepare, 172 bytes; a certificate's commit is smaller), a prepared
# proof or pre-prepare besides its votes and transactions (its header and fields: 445
# bytes with an empty block), a view change or new view besides its proofs.
VOTE_BYTES = 192
PROOF_BYTES = 768
VIEW_CHANGE_BYTES = 1024
NEW_VIEW_BYTES = 1024


def body_bytes_needed(*, n: int, watermark_window: int, block_bytes: int) -> int:
    """The least body_bytes_max whose `block_bytes_limit` is `block_bytes`."""
    least = block_bytes_limit(body_bytes_max=0, n=n, watermark_window=watermark_window)
    return (block_bytes - least) * watermark_window


def block_bytes_limit(*, body_bytes_max: int, n: int, watermark_window: int) -> int:
    """The most bytes of transactions (`ledger.block.block_bytes`) a block may hold, so
    that every consensus message fits in one frame of a peer's (`body_bytes_max`) however
    many blocks are in flight. The largest is a NEW-VIEW: a quorum of view changes, each with
    up to `watermark_window` prepared proofs by header (a quorum of votes each), and the
    pre-prepares of up to `watermark_window` blocks. A view change carries its own proofs'
    blocks, one each, and is smaller. Negative when even the headers do not fit."""
    quorum = quorum_size(n)
    proof = PROOF_BYTES + quorum * VOTE_BYTES
    per_view_change = VIEW_CHANGE_BYTES + quorum * VOTE_BYTES + watermark_window * proof
    room = body_bytes_max - NEW_VIEW_BYTES - quorum * per_view_change
    return room // watermark_window - PROOF_BYTES


class Role(enum.StrEnum):
    ADMIN = "admin"
    CUSTOMER = "customer"
    PLANNER = "planner"
    SUPPLIER = "supplier"
    MACHINE = "machine"
    MAINTAINER = "maintainer"
    ORACLE = "oracle"
    AUDITOR = "auditor"


@dataclass(frozen=True, slots=True, kw_only=True)
class Params:
    """Chain parameters every node must agree on."""

    block_txs_max: int = 1000
    block_interval_ms: int = 20
    tx_bytes_max: int = 16 * 1024
    body_bytes_max: int = 8 * 1024 * 1024
    # Bounds the queue under overload: ten full blocks, a few seconds of the most this
    # machine commits, so a saturated node answers 503 instead of holding minutes of backlog.
    mempool_txs_max: int = 10_000
    checkpoint_interval: int = 32
    watermark_window: int = 64
    view_change_timeout_ms: int = 2000
    oracle_quorum: int = 0  # 0 means 2f+1, the least that keeps f faulty oracles from deciding

    def __post_init__(self) -> None:
        # Checked here rather than only in from_map, so a Params built in code (by the CLI, a
        # test) can never describe a chain that its own saved genesis file would refuse.
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= INT_MAX:
                raise GenesisError(
                    f"parameter {item.name} must be a non-negative integer up to {INT_MAX}, "
                    f"got {value!r}"
                )
        for name in (
            "block_txs_max",
            "tx_bytes_max",
            "body_bytes_max",
            "checkpoint_interval",
            "view_change_timeout_ms",  # consensus.config.ReplicaConfig refuses 0
        ):
            if getattr(self, name) < 1:
                raise GenesisError(f"parameter {name} must be at least 1")
        if self.block_txs_max > BLOCK_TXS_LIMIT:
            raise GenesisError(
                f"parameter block_txs_max ({self.block_txs_max}) must be at most "
                f"{BLOCK_TXS_LIMIT}, the most transactions a block decoder accepts"
            )
        if self.watermark_window < self.checkpoint_interval:
            raise GenesisError(
                f"watermark_window ({self.watermark_window}) must be at least "
                f"checkpoint_interval ({self.checkpoint_interval})"
            )

    def to_map(self) -> dict[str, Any]:
        return {item.name: getattr(self, item.name) for item in fields(self)}

    @classmethod
    def from_map(cls, value: dict[str, Any]) -> Params:
        known = {item.name for item in fields(cls)}
        unknown = set(value) - known
        if unknown:
            raise GenesisError(f"unknown parameter(s): {', '.join(sorted(unknown))}")
        return replace(cls(), **value)


@dataclass(frozen=True, slots=True, kw_only=True)
class Validator:
    name: str
    public_key: bytes
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Identity:
    name: str
    public_key: bytes
    roles: tuple[Role, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Genesis:
    chain_id: str
    genesis_time_ms: int
    validators: tuple[Validator, ...]
    identities: tuple[Identity, ...]
    params: Params = field(default_factory=Params)

    def __post_init__(self) -> None:
        if not self.chain_id or len(self.chain_id) > 64:
            raise GenesisError("chain_id must be 1 to 64 characters")
        if isinstance(self.genesis_time_ms, bool) or not 0 <= self.genesis_time_ms <= INT_MAX:
            raise GenesisError(f"genesis_time_ms must be from 0 to {INT_MAX}")
        n = len(self.validators)
        if n < 4:
            raise GenesisError(f"PBFT needs at least 4 validators (n = 3f+1, f >= 1), got {n}")
        if n > COMMITS_MAX:
            raise GenesisError(
                f"at most {COMMITS_MAX} validators (what messages and certificates can name), "
                f"got {n}"
            )
        for validator in self.validators:
            if isinstance(validator.port, bool) or not 1 <= validator.port <= PORT_MAX:
                raise GenesisError(
                    f"validator {validator.name}: port must be 1 to {PORT_MAX}, "
                    f"got {validator.port}"
                )
        _unique([v.name for v in self.validators], "validator name")
        _unique([v.public_key for v in self.validators], "validator key")
        _unique([i.name for i in self.identities], "identity name")
        _unique([i.public_key for i in self.identities], "identity key")
        for key in [v.public_key for v in self.validators] + [
            i.public_key for i in self.identities
        ]:
            if len(key) != PUBLIC_KEY_BYTES:
                raise GenesisError(f"public keys are {PUBLIC_KEY_BYTES} bytes, got {len(key)}")
        quorum = self.params.oracle_quorum
        least = 2 * max_faulty(n) + 1
        if quorum and not least <= quorum <= n:
            raise GenesisError(
                f"oracle_quorum must be 0 (2f+1) or from 2f+1 = {least} to n = {n}, got {quorum}: "
                "with fewer reports the median of a decided prediction could be a faulty "
                "oracle's alone"
            )
        params = self.params
        least_block = params.tx_bytes_max + TX_ENTRY_BYTES
        if self.block_bytes_max < least_block:
            needed = body_bytes_needed(
                n=n, watermark_window=params.watermark_window, block_bytes=least_block
            )
            raise GenesisError(
                f"body_bytes_max ({params.body_bytes_max}) is too small for {n} validators and "
                f"watermark_window {params.watermark_window}: a NEW-VIEW with every block of the "
                f"window in flight must fit in one peer frame with blocks of at least one "
                f"transaction of tx_bytes_max ({params.tx_bytes_max}) bytes; raise "
                f"body_bytes_max to {needed} or more, or lower watermark_window or tx_bytes_max"
            )

    @property
    def n(self) -> int:
        return len(self.validators)

    @property
    def f(self) -> int:
        return max_faulty(self.n)

    @property
    def quorum(self) -> int:
        return quorum_size(self.n)

    @property
    def block_bytes_max(self) -> int:
        """The bytes of transactions a block may hold (see `block_bytes_limit`): the primary
        cuts within it and backups refuse a larger block."""
        params = self.params
        return block_bytes_limit(
            body_bytes_max=params.body_bytes_max, n=self.n, watermark_window=params.watermark_window
        )

    @property
    def validator_keys(self) -> tuple[bytes, ...]:
        return tuple(v.public_key for v in self.validators)

    def validator_index(self, public_key: bytes) -> int | None:
        for index, validator in enumerate(self.validators):
            if validator.public_key == public_key:
                return index
        return None

    def identity(self, name: str) -> Identity:
        for identity in self.identities:
            if identity.name == name:
                return identity
        known = ", ".join(i.name for i in self.identities)
        raise GenesisError(f"no identity named {name!r}; known: {known}")

    def to_json_map(self) -> dict[str, Any]:
        return {
            "chain_id": self.chain_id,
            "genesis_time_ms": self.genesis_time_ms,
            "validators": [
                {"name": v.name, "public_key": v.public_key.hex(), "host": v.host, "port": v.port}
                for v in self.validators
            ],
            "identities": [
                {"name": i.name, "public_key": i.public_key.hex(), "roles": list(i.roles)}
                for i in self.identities
            ],
            "params": self.params.to_map(),
        }

    @property
    def hash(self) -> bytes:
        return sha256(encode(self.to_json_map()))

    @classmethod
    def from_json_map(cls, document: Any) -> Genesis:
        try:
            return cls(
                chain_id=str(document["chain_id"]),
                genesis_time_ms=int(document["genesis_time_ms"]),
                validators=tuple(
                    Validator(
                        name=str(v["name"]),
                        public_key=bytes.fromhex(v["public_key"]),
                        host=str(v["host"]),
                        port=int(v["port"]),
                    )
                    for v in document["validators"]
                ),
                identities=tuple(
                    Identity(
                        name=str(i["name"]),
                        public_key=bytes.fromhex(i["public_key"]),
                        roles=tuple(Role(r) for r in i["roles"]),
                    )
                    for i in document["identities"]
                ),
                params=Params.from_map(dict(document.get("params", {}))),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise GenesisError(f"malformed genesis: {exc!r}") from exc

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json_map(), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> Genesis:
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:  # ValueError: bad JSON or not UTF-8
            raise GenesisError(f"cannot read genesis {path}: {exc}") from exc
        return cls.from_json_map(document)


def _unique(values: list[Any], what: str) -> None:
    if len(set(values)) != len(values):
        raise GenesisError(f"duplicate {what} in genesis")
