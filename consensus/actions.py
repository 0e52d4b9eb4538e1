"""What a replica asks its driver to do: the outputs of the state machine.

A driver must persist what a `Broadcast` or `Send` carries before it leaves (a replica never signs
two different messages for one (view, seq, kind), also across a crash), and must apply
`CommitBlock`s in the order they are returned.
"""

from __future__ import annotations

from dataclasses import dataclass

from consensus.messages import Checkpoint, Message
from ledger.block import Block
from ledger.certificate import CommitCertificate


@dataclass(frozen=True, slots=True, kw_only=True)
class Broadcast:
    """Send `message` to every other validator."""

    message: Message


@dataclass(frozen=True, slots=True, kw_only=True)
class Send:
    """Send `message` to validator `to` only."""

    to: int
    message: Message


@dataclass(frozen=True, slots=True, kw_only=True)
class CommitBlock:
    """Block `block` is committed; emitted once per height, strictly in height order."""

    block: Block
    certificate: CommitCertificate


@dataclass(frozen=True, slots=True, kw_only=True)
class Rejected:
    """A message from `sender` (as claimed) was dropped, for `reason`.

    `stale` marks messages that arrived too late to matter (at or below the low watermark): honest
    but slow peers send those, so they should not count against the sender.
    """

    sender: int
    reason: str
    stale: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckpointStable:
    """2f+1 validators agree on the state after block `seq`; the log below it was collected.
    `proof` is their signed checkpoints: kept, it lets a peer catching up check a state it
    rebuilt from fetched writes against the quorum's digest."""

    seq: int
    state_digest: bytes
    proof: tuple[Checkpoint, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class StateDivergence:
    """A quorum agrees on a state at `height` that differs from ours: the node must stop."""

    height: int
    ours: bytes
    quorum: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class ViewEntered:
    """The replica installed `view` (a new view it accepted or sent). Persist it: a restarted
    replica resumes in it (`ReplicaStart.view`)."""

    view: int


@dataclass(frozen=True, slots=True, kw_only=True)
class FetchBlocks:
    """The replica is behind: fetch committed blocks `from_height..to_height` (inclusive) with
    their commit certificates, preferably from validators `hint`, verify and execute them, then
    feed `BlocksTransferred` for the last one. Re-emitted on Tick while no progress is made."""

    from_height: int
    to_height: int
    hint: tuple[int, ...]


Action = (
    Broadcast
    | Send
    | CommitBlock
    | Rejected
    | CheckpointStable
    | StateDivergence
    | ViewEntered
    | FetchBlocks
)
