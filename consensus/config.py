"""What a replica is configured with and starts from, and the application's veto on blocks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from consensus.checkpoints import StableCheckpoint
from consensus.errors import ConfigError
from consensus.messages import Message, PreparedProof
from ledger.block import Block, BlockHeader
from ledger.certificate import CommitCertificate, max_faulty, quorum_size
from ledger.crypto import PUBLIC_KEY_BYTES
from ledger.hashing import HASH_BYTES

# A validator that has committed nothing for this long asks its peers whether the chain moved on
# without it: after a restart or a partition in a quiet cluster no consensus message would tell
# it (peers drop what they queue for a peer that stays down). The node's sync loop and the
# simulator's model of it both use this.
SYNC_IDLE_MS = 3_000


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
    view_change_timeout_ms: int = 2000
    retransmit_ms: int = 500
    fetch_retry_ms: int = 1000
    # How far ahead of its own clock a backup accepts a new block's timestamp. Every later
    # block must be stamped at least as late, and the contracts take their time from it, so
    # one primary stamping the far future would move the chain's clock there for good.
    clock_skew_max_ms: int = 10_000
    # The bytes of transactions a block may hold (ledger.block.block_bytes), so that the
    # messages carrying blocks fit a peer's frame (the node's: Genesis.block_bytes_max);
    # None for no limit.
    block_bytes_max: int | None = None

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
        if min(self.view_change_timeout_ms, self.retransmit_ms, self.fetch_retry_ms) < 1:
            raise ConfigError("timeouts and intervals must be at least 1 ms")
        if self.clock_skew_max_ms < 0:
            raise ConfigError("clock_skew_max_ms must be 0 or more")
        if self.block_bytes_max is not None and self.block_bytes_max < 0:
            raise ConfigError("block_bytes_max must be 0 or more")

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
class ChainPoint:
    """A block as a parent: what a child chains to and the state claim a null child copies."""

    height: int
    hash: bytes
    timestamp_ms: int
    state_height: int
    state_digest: bytes

    @classmethod
    def genesis(cls, *, block_hash: bytes, timestamp_ms: int, state_digest: bytes) -> ChainPoint:
        """The chain's start: height 0 and the genesis state."""
        return cls(
            height=0,
            hash=block_hash,
            timestamp_ms=timestamp_ms,
            state_height=0,
            state_digest=state_digest,
        )

    @classmethod
    def of(cls, header: BlockHeader) -> ChainPoint:
        return cls(
            height=header.height,
            hash=header.hash,
            timestamp_ms=header.timestamp_ms,
            state_height=header.state_height,
            state_digest=header.state_digest,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplicaStart:
    """The last committed block and the last executed state a replica starts from.

    A restarted replica also gets the last view it installed (`ViewEntered`), the header and
    commit certificate of block `height` (its view-change base; None only at height 0), and
    `signed`: the messages it signed before it stopped (persisted before they were sent), so it
    resends them instead of ever signing something different for the same (kind, view, seq).
    """

    height: int
    block_hash: bytes
    timestamp_ms: int
    state_height: int
    state_digest: bytes
    view: int = 0
    header: BlockHeader | None = None
    certificate: CommitCertificate | None = None
    signed: tuple[Message, ...] = ()
    # The chain's start (height 0), which a new view whose view changes all start there builds
    # on; taken from the fields above when `height` is 0, so only a restart needs to pass it.
    genesis: ChainPoint | None = None
    # The latest checkpoint at or below `height` that was stable before the restart, with its
    # proof (a quorum of signed checkpoints): resent to a peer stuck below it, which may lack
    # the votes of validators that are faulty or gone. None if none was, or it is unknown.
    stable: StableCheckpoint | None = None
    # The prepared certificates the replica held when it last entered a view: those of views
    # before it, which replaying the log cannot rebuild (their messages are stale by then) and
    # which its next view change must carry all the same.
    prepared: tuple[PreparedProof, ...] = ()

    def __post_init__(self) -> None:
        if not 0 <= self.state_height <= self.height:
            raise ConfigError(
                f"state_height {self.state_height} must be between 0 and height {self.height}"
            )
        if len(self.block_hash) != HASH_BYTES or len(self.state_digest) != HASH_BYTES:
            raise ConfigError(f"block hash and state digest are {HASH_BYTES} bytes")
        if self.view < 0:
            raise ConfigError(f"view {self.view} is negative")
        if self.header is not None and (
            self.header.height != self.height or self.header.hash != self.block_hash
        ):
            raise ConfigError("the start header is not block `height` / `block_hash`")
        if self.certificate is not None and (
            self.certificate.height != self.height or self.certificate.block_hash != self.block_hash
        ):
            raise ConfigError("the start certificate does not prove block `height`")
        if self.genesis is not None and (
            self.genesis.height != 0 or (self.height == 0 and self.genesis.hash != self.block_hash)
        ):
            raise ConfigError("the genesis point is not the start of this chain")
        if self.stable is not None:
            _check_stable(self.stable, self.height)


def _check_stable(stable: StableCheckpoint, height: int) -> None:
    """A start's stable checkpoint: at or below the start, its proof signed checkpoints of it
    from distinct validators (how many make a quorum, the replica checks)."""
    if not 0 < stable.seq <= height:
        raise ConfigError(f"stable checkpoint {stable.seq} is not within the start (1..{height})")
    senders = [checkpoint.sender for checkpoint in stable.proof]
    if len(set(senders)) != len(senders):
        raise ConfigError(f"the proof of stable checkpoint {stable.seq} repeats a validator")
    for checkpoint in stable.proof:
        if (checkpoint.seq, checkpoint.block_hash, checkpoint.state_digest) != (
            stable.seq,
            stable.block_hash,
            stable.state_digest,
        ):
            raise ConfigError(
                f"the proof of stable checkpoint {stable.seq} holds another checkpoint "
                f"(seq {checkpoint.seq} from validator {checkpoint.sender})"
            )
