"""The safety checker: committed history must never fork or regress, at any replica.

The harness reports every `CommitBlock` as it is emitted and calls `after_step` after every
simulation step; the first breach raises `SafetyViolation` naming the seed that reproduces it.
The simulator also reports every commit an honest replica signs: honest commits for a block other
than the one committed at its height must never be enough for f byzantine votes to complete a
commit certificate, which state transfer and view changes would take as proof of finality.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from consensus.errors import SafetyViolation
from consensus.replica import Replica
from ledger.block import Block
from ledger.certificate import max_faulty, quorum_size


class SafetyChecker:
    def __init__(self, *, seed: int, start_heights: Sequence[int]) -> None:
        self.seed = seed
        self._heights = list(start_heights)
        self._canonical: dict[int, tuple[int, bytes]] = {}  # height -> (first replica, hash)
        n = len(start_heights)
        # Honest commits for one (view, height, block) that f byzantine ones would make a quorum.
        self._certifiable = quorum_size(n) - max_faulty(n)
        self._votes: dict[int, dict[tuple[int, bytes], set[int]]] = {}  # height -> signers

    def on_commit_vote(self, replica: int, view: int, height: int, block_hash: bytes) -> None:
        """Honest `replica` signed a commit for `block_hash` at (view, height)."""
        signers = self._votes.setdefault(height, {}).setdefault((view, block_hash), set())
        signers.add(replica)
        self._check_votes(height)

    def _check_votes(self, height: int) -> None:
        committed = self.committed_hash(height)
        if committed is None:
            return
        for (view, block_hash), signers in self._votes.get(height, {}).items():
            if block_hash != committed and len(signers) >= self._certifiable:
                self._fail(
                    f"honest replicas {sorted(signers)} signed commits in view {view} for block "
                    f"{block_hash.hex()[:16]} at height {height}, where {committed.hex()[:16]} "
                    "is committed: with f byzantine commits that is a certificate for it"
                )

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
        self._check_votes(block.height)

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
