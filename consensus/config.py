"""What a replica is configured with and starts from, and the application's veto on blocks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from consensus.errors import ConfigError
from ledger.block import Block
from ledger.certificate import max_faulty, quorum_size
from ledger.crypto import PUBLIC_KEY_BYTES
from ledger.hashing import HASH_BYTES


class BlockValidator(Protocol):
    """The application's say on a proposed block (transaction signatures, admission rules).

    Raise `consensus.errors.InvalidBlock` (or a ledger error) to refuse the block.
    """

    def validate(self, block: Block) -> None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplicaConfig:
    chain_id: str
    validators: tuple[bytes, ...]
    index: int
    checkpoint_interval: int
    watermark_window: int

    def __post_init__(self) -> None:
        n = len(self.validators)
        if n < 4:
            raise ConfigError(f"PBFT needs at least 4 validators, got {n}")
        if len(set(self.validators)) != n:
            raise ConfigError("the validator list names a key twice")
        if any(len(key) != PUBLIC_KEY_BYTES for key in self.validators):
            raise ConfigError(f"validator keys are {PUBLIC_KEY_BYTES} bytes")
        if not 0 <= self.index < n:
            raise ConfigError(f"replica index {self.index} is outside 0..{n - 1}")
        if self.checkpoint_interval < 1:
            raise ConfigError("checkpoint_interval must be at least 1")
        if self.watermark_window < self.checkpoint_interval:
            raise ConfigError(
                f"watermark_window {self.watermark_window} must be at least the checkpoint "
                f"interval {self.checkpoint_interval}, or the low watermark can never advance"
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


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplicaStart:
    """The last committed block and the last executed state a replica starts from."""

    height: int
    block_hash: bytes
    timestamp_ms: int
    state_height: int
    state_digest: bytes

    def __post_init__(self) -> None:
        if not 0 <= self.state_height <= self.height:
            raise ConfigError(
                f"state_height {self.state_height} must be between 0 and height {self.height}"
            )
        if len(self.block_hash) != HASH_BYTES or len(self.state_digest) != HASH_BYTES:
            raise ConfigError(f"block hash and state digest are {HASH_BYTES} bytes")
