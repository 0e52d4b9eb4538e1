"""The message log: what a replica knows about each (view, seq) it has not garbage-collected.

A `Slot` holds at most one accepted pre-prepare, at most one buffered pre-prepare (well formed and
from the primary, waiting for its parent block), and at most one prepare and one commit per sender.
The replica keeps slots for seqs up to one window past its high watermark, which bounds the log by
(views kept) x 2 x (watermark window) x n messages. Whether a slot is prepared or
committed is computed from its contents, so the view change can later rebuild certificates from
the same records.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from consensus.messages import Commit, Prepare, PrePrepare


@dataclass(slots=True, kw_only=True)
class Slot:
    view: int
    seq: int
    pre_prepare: PrePrepare | None = None
    buffered: PrePrepare | None = None
    prepares: dict[int, Prepare] = field(default_factory=dict)
    commits: dict[int, Commit] = field(default_factory=dict)
    prepare_sent: bool = False
    commit_sent: bool = False
    committed_local: bool = False

    @property
    def block_hash(self) -> bytes | None:
        return None if self.pre_prepare is None else self.pre_prepare.block.hash

    @property
    def proposal(self) -> PrePrepare | None:
        """The accepted or buffered pre-prepare: whichever claims this slot."""
        return self.pre_prepare or self.buffered

    def matching_prepares(self) -> int:
        block_hash = self.block_hash
        return sum(1 for prepare in self.prepares.values() if prepare.block_hash == block_hash)

    def matching_commits(self) -> list[Commit]:
        block_hash = self.block_hash
        return [commit for commit in self.commits.values() if commit.block_hash == block_hash]

    def is_prepared(self, prepares_needed: int) -> bool:
        """Pre-prepare plus `prepares_needed` (2f) matching prepares from distinct backups."""
        return self.pre_prepare is not None and self.matching_prepares() >= prepares_needed


class MessageLog:
    """Slots by (view, seq)."""

    def __init__(self) -> None:
        self._slots: dict[tuple[int, int], Slot] = {}

    def __len__(self) -> int:
        return len(self._slots)

    def __iter__(self) -> Iterator[Slot]:
        return iter(self._slots.values())

    def get(self, view: int, seq: int) -> Slot | None:
        return self._slots.get((view, seq))

    def slot(self, view: int, seq: int) -> Slot:
        """The slot for (view, seq), created empty if absent."""
        key = (view, seq)
        found = self._slots.get(key)
        if found is None:
            found = self._slots[key] = Slot(view=view, seq=seq)
        return found

    def collect(self, seq_max: int) -> None:
        """Forget every slot at or below `seq_max` (a stable checkpoint), in every view."""
        self._slots = {key: slot for key, slot in self._slots.items() if key[1] > seq_max}
