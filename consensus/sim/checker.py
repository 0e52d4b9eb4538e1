"""The safety checker: committed history must never fork or regress, at any replica.

The harness reports every `CommitBlock` as it is emitted and calls `after_step` after every
simulation step; the first breach raises `SafetyViolation` naming the seed that reproduces it.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from consensus.errors import SafetyViolation
from consensus.replica import Replica
from ledger.block import Block


class SafetyChecker:
    def __init__(self, *, seed: int, start_heights: Sequence[int]) -> None:
        self.seed = seed
        self._heights = list(start_heights)
        self._canonical: dict[int, tuple[int, bytes]] = {}  # height -> (first replica, hash)

    def on_commit(self, replica: int, block: Block) -> None:
        expected = self._heights[replica] + 1
        if block.height != expected:
            self._fail(
                f"replica {replica} committed height {block.height} after {expected - 1}: "
                "committed chains must grow one height at a time"
            )
        first, known = self._canonical.setdefault(block.height, (replica, block.hash))
        if known != block.hash:
            self._fail(
                f"fork at height {block.height}: replica {replica} committed "
                f"{block.hash.hex()[:16]}, replica {first} committed {known.hex()[:16]}"
            )
        self._heights[replica] = block.height

    def after_step(self, replicas: Sequence[Replica], only: Collection[int] | None = None) -> None:
        """Each replica's committed height matches the blocks it handed out (only the replicas
        at indices `only`, if given: byzantine ones are not checked)."""
        for index, replica in enumerate(replicas):
            if only is not None and index not in only:
                continue
            if replica.committed_height != self._heights[index]:
                self._fail(
                    f"replica {index} reports committed height {replica.committed_height}, "
                    f"but committed blocks up to {self._heights[index]}"
                )

    def committed_hash(self, height: int) -> bytes | None:
        found = self._canonical.get(height)
        return None if found is None else found[1]

    def _fail(self, what: str) -> None:
        raise SafetyViolation(f"seed {self.seed}: {what}")
