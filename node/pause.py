"""Pause points: make a node freeze at a named phase of a consensus round, so a test can kill
it exactly there (armed through the admin API: loopback, or the admin token).

Phases:
  before-pre-prepare  the primary is about to send a pre-prepare: it is held, not sent
  after-pre-prepare   the primary has sent a pre-prepare (it is between pre-prepare and commit)
  after-prepare       a backup has sent its prepare for a block (the primary of a view sends
                      none: armed there, it fires only once a view change makes it a backup)
  after-commit        the node has sent its commit for a block
  after-execute       the node has committed a block locally and executed it

A frozen node takes no further consensus input (peers' batches are refused with 503, so they
keep them and retry) and carries out no further action until it is resumed or killed.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from consensus.actions import Broadcast, CommitBlock
from consensus.messages import Commit, Prepare, PrePrepare


class Phase(enum.StrEnum):
    BEFORE_PRE_PREPARE = "before-pre-prepare"
    AFTER_PRE_PREPARE = "after-pre-prepare"
    AFTER_PREPARE = "after-prepare"
    AFTER_COMMIT = "after-commit"
    AFTER_EXECUTE = "after-execute"


@dataclass(frozen=True, slots=True, kw_only=True)
class PausePoint:
    phase: Phase
    seq_min: int = 0  # freeze at the first matching action for a sequence >= seq_min


def matches(point: PausePoint, action: Any) -> tuple[bool, int | None]:
    """(does `action` hit the pause point, its sequence number)."""
    match action:
        case Broadcast(message=PrePrepare(seq=seq)) if point.phase in (
            Phase.BEFORE_PRE_PREPARE,
            Phase.AFTER_PRE_PREPARE,
        ):
            return seq >= point.seq_min, seq
        case Broadcast(message=Prepare(seq=seq)) if point.phase is Phase.AFTER_PREPARE:
            return seq >= point.seq_min, seq
        case Broadcast(message=Commit(seq=seq)) if point.phase is Phase.AFTER_COMMIT:
            return seq >= point.seq_min, seq
        case CommitBlock(block=block) if point.phase is Phase.AFTER_EXECUTE:
            return block.height >= point.seq_min, block.height
    return False, None


def holds_before(phase: Phase) -> bool:
    """Whether the action at this phase is held back (True) or carried out first (False)."""
    return phase is Phase.BEFORE_PRE_PREPARE
