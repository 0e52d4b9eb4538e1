"""Recently committed blocks' transaction hashes, kept in memory for cheap commit watching.

A client that wants to know when its transactions commit (the bench, a load generator) asks
`GET /commits?from=H&wait_ms=N` instead of fetching and decoding whole blocks: it gets each block
from H on as (height, commit time, concatenated 32-byte transaction hashes), waiting up to N ms
for the first one. Bounded: only the newest blocks are kept (see CommitFeed).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CommittedBlock:
    height: int
    commit_ms: int
    tx_hashes: bytes  # 32 bytes per transaction, in block order


class CommitFeed:
    """The last `blocks_max` committed blocks, and at most `hashes_max` transaction hashes in
    all (full blocks would otherwise hold 64 MiB), oldest dropped first."""

    def __init__(self, *, blocks_max: int = 2048, hashes_max: int = 100_000) -> None:
        self._blocks: deque[CommittedBlock] = deque(maxlen=blocks_max)
        self._hashes_max = hashes_max
        self._hashes = 0
        self._changed: asyncio.Event | None = None

    def record(self, height: int, commit_ms: int, tx_hashes: Iterable[bytes]) -> None:
        block = CommittedBlock(height, commit_ms, b"".join(tx_hashes))
        if len(self._blocks) == self._blocks.maxlen:
            self._hashes -= len(self._blocks[0].tx_hashes) // 32
        self._blocks.append(block)
        self._hashes += len(block.tx_hashes) // 32
        while self._hashes > self._hashes_max and len(self._blocks) > 1:
            self._hashes -= len(self._blocks.popleft().tx_hashes) // 32
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    def since(self, height: int) -> list[CommittedBlock]:
        """Blocks at `height` or above that are still held (oldest first)."""
        blocks = self._blocks
        if not blocks or blocks[-1].height < height:
            return []
        start = max(0, height - blocks[0].height)
        return [blocks[i] for i in range(start, len(blocks))]

    async def wait_since(self, height: int, timeout_s: float) -> list[CommittedBlock]:
        found = self.since(height)
        if found or timeout_s <= 0:
            return found
        if self._changed is None:
            self._changed = asyncio.Event()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout_s)
        return self.since(height)
