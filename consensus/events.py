"""What a replica is fed: the inputs of the state machine. Time arrives here, as `now_ms`."""

from __future__ import annotations

from dataclasses import dataclass

from consensus.messages import Message
from ledger.block import BlockHeader
from ledger.certificate import CommitCertificate
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
    """Time passed: fires expired view-change deadlines, retransmissions and fetch retries."""

    now_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestsPending:
    """Whether the node holds client transactions not yet committed.

    Feed it on every admission and on every periodic Tick: `pending=True` arms the view-change
    deadline (if none is armed), `pending=False` disarms it. Commits push that deadline back;
    `starved_since_ms` is when some request started waiting while others committed past it (the
    node tells how), and a backup suspects its primary twice the timeout after that whatever
    commits: PBFT's per-request timer, which a primary censoring one client cannot reset.
    """

    now_ms: int
    pending: bool
    starved_since_ms: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class BlockState:
    """Block `height` and the state digest after it."""

    height: int
    block_hash: bytes
    state_digest: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class BlocksTransferred:
    """The node fetched, verified and executed committed blocks up to `header.height` (a state
    transfer asked for by `FetchBlocks`), reaching `state_digest`; `certificate` proves the last.

    Feed it once, for the last block; blocks below it need no `BlockExecuted`. `states`: the
    state after each transferred block, as if the replica had executed them one by one: it
    signs its checkpoint for those at checkpoint heights (the others may need that vote), and
    checks the state claims of blocks proposed meanwhile against the last ones (a primary with
    blocks in flight vouches for a state a few heights below the one it proposes on).
    """

    header: BlockHeader
    certificate: CommitCertificate
    state_digest: bytes
    now_ms: int = 0
    states: tuple[BlockState, ...] = ()

    @property
    def height(self) -> int:
        return self.header.height

    @property
    def block_hash(self) -> bytes:
        return self.header.hash

    @property
    def timestamp_ms(self) -> int:
        return self.header.timestamp_ms


Event = MessageReceived | ProposeBatch | BlockExecuted | Tick | RequestsPending | BlocksTransferred
