"""What a replica is fed: the inputs of the state machine. Time arrives here, as `now_ms`."""

from __future__ import annotations

from dataclasses import dataclass

from consensus.messages import Message
from ledger.tx import Transaction


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageReceived:
    """A decoded message from a peer; the replica checks its signature itself."""

    message: Message
    now_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ProposeBatch:
    """Transactions for the primary to cut into its next block (only when `can_propose`)."""

    txs: tuple[Transaction, ...]
    now_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class BlockExecuted:
    """The application finished executing committed block `height`, reaching `state_digest`."""

    height: int
    state_digest: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Tick:
    """Time passed. A no-op in the normal case; view-change timers will hang off it."""

    now_ms: int


Event = MessageReceived | ProposeBatch | BlockExecuted | Tick
