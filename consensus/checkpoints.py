"""Checkpoint votes: who said which (block hash, state digest) after which sequence number.

A checkpoint becomes stable when a quorum (2f+1) of distinct validators signed the same
(seq, block_hash, state_digest); the signed messages are its proof, kept for the view change and
for state transfer. Deciding what stability means for the replica (our own digest, watermarks,
divergence) is the replica's business; this module only counts.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from consensus.errors import InvalidMessage
from consensus.messages import Checkpoint


@dataclass(frozen=True, slots=True, kw_only=True)
class StableCheckpoint:
    seq: int
    block_hash: bytes
    state_digest: bytes
    proof: tuple[Checkpoint, ...]  # quorum of matching signed checkpoints, sorted by sender


class CheckpointVotes:
    """At most one checkpoint per (seq, sender), for the seqs the replica still cares about."""

    def __init__(self, quorum: int) -> None:
        self._quorum = quorum
        self._votes: dict[int, dict[int, Checkpoint]] = {}

    def add(self, checkpoint: Checkpoint) -> bool:
        """Record `checkpoint`; False if it was already known. Raises on a conflicting vote."""
        by_sender = self._votes.setdefault(checkpoint.seq, {})
        known = by_sender.get(checkpoint.sender)
        if known is None:
            by_sender[checkpoint.sender] = checkpoint
            return True
        if (known.block_hash, known.state_digest) == (
            checkpoint.block_hash,
            checkpoint.state_digest,
        ):
            return False
        raise InvalidMessage(
            f"validator {checkpoint.sender} sent two different checkpoints for seq {checkpoint.seq}"
        )

    def quorum_at(self, seq: int) -> StableCheckpoint | None:
        """The (block hash, digest) a quorum signed at `seq`, if any."""
        by_sender = self._votes.get(seq, {})
        counts = Counter((vote.block_hash, vote.state_digest) for vote in by_sender.values())
        for (block_hash, state_digest), count in counts.items():
            if count >= self._quorum:
                proof = tuple(
                    vote
                    for _, vote in sorted(by_sender.items())
                    if (vote.block_hash, vote.state_digest) == (block_hash, state_digest)
                )
                return StableCheckpoint(
                    seq=seq, block_hash=block_hash, state_digest=state_digest, proof=proof
                )
        return None

    def own(self, sender: int, *, above: int) -> list[Checkpoint]:
        """`sender`'s checkpoints for seqs above `above`, ascending (for retransmission)."""
        return [
            votes[sender]
            for seq, votes in sorted(self._votes.items())
            if seq > above and sender in votes
        ]

    def collect(self, seq_min: int) -> None:
        """Forget votes for seqs below `seq_min`."""
        self._votes = {seq: votes for seq, votes in self._votes.items() if seq >= seq_min}

    def __len__(self) -> int:
        return sum(len(votes) for votes in self._votes.values())
