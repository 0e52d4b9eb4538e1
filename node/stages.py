"""Where a block's time goes on this node: when it reached each stage of the protocol, and the
durations of the most recently committed blocks.

A block's life on a validator, in the stages a latency breakdown needs:

- `propose` (the primary only): from the arrival here of the earliest of its transactions (in a
  client's batch or forwarded by a peer) to its pre-prepare: the wait for admission, the checks,
  and the wait for the block to be cut.
- `pre_prepare`: from the header timestamp (the primary's clock when it proposed the block) to
  this node accepting the pre-prepare: the proposal's trip, and the wait for this node's loop.
  On the primary it is about zero. The clocks of a local cluster are one clock; across machines
  this stage also carries their skew (negative durations are kept as they are, not hidden).
- `prepare`: from accepting the pre-prepare to being prepared (a quorum of prepares).
- `commit`: from prepared to committed (a quorum of commits).
- `execute`: from committed to executed and stored.

Client batches have a stage of their own, `admission`: from the batch's arrival to its last
transaction being admitted (the wait in the admission queue and the checks, signatures
included), measured on the node the client sent it to.

Only live commits are timed: blocks a node fetched while catching up have no stages. The record
is bounded: marks of blocks that never commit here (a view change dropped them) are pruned once
the chain has moved past them, and the summaries cover the last RECENT_MAX blocks and batches.
"""

from __future__ import annotations

import statistics
import time
from collections import deque
from collections.abc import Callable

BLOCK_STAGES = ("propose", "pre_prepare", "prepare", "commit", "execute")
STAGES = ("admission", *BLOCK_STAGES)
RECENT_MAX = 1_000
# Marks kept for sequence numbers this far below the last executed one are dropped.
MARKS_BEHIND_MAX = 64


def clock_ms() -> float:
    """Wall-clock milliseconds, as a float (header timestamps are wall-clock milliseconds)."""
    return time.time() * 1000


# Told of each duration as it is timed: the stage and its milliseconds.
Listener = Callable[[str, float], None]


class StageClock:
    """The stage marks of blocks in flight and the durations of recent blocks and batches."""

    def __init__(self, recent_max: int = RECENT_MAX) -> None:
        # By sequence number and block: after a view change another block may take the number.
        self._marks: dict[tuple[int, bytes], dict[str, float]] = {}
        self._recent: dict[str, deque[float]] = {
            stage: deque(maxlen=recent_max) for stage in STAGES
        }
        # Told of every duration as it is recorded (the metrics' histogram): the summaries
        # above keep only the recent ones, so a reader that looked now and then would miss some.
        self._listeners: list[Listener] = []

    def arrived(self, seq: int, block_hash: bytes, at_ms: float) -> None:
        """The earliest of the block's transactions reached this node at `at_ms`."""
        self._mark(seq, block_hash, "arrived", at_ms)

    def pre_prepared(self, seq: int, block_hash: bytes, at_ms: float | None = None) -> None:
        self._mark(seq, block_hash, "pre_prepared", at_ms)

    def prepared(self, seq: int, block_hash: bytes, at_ms: float | None = None) -> None:
        self._mark(seq, block_hash, "prepared", at_ms)

    def committed(self, seq: int, block_hash: bytes, at_ms: float | None = None) -> None:
        self._mark(seq, block_hash, "committed", at_ms)

    def _mark(self, seq: int, block_hash: bytes, point: str, at_ms: float | None) -> None:
        marks = self._marks.setdefault((seq, block_hash), {})
        # The first time counts: a retransmission, or a view change that proposes the block
        # again, does not restart a stage.
        marks.setdefault(point, clock_ms() if at_ms is None else at_ms)

    def executed(
        self, seq: int, block_hash: bytes, proposed_ms: int, at_ms: float | None = None
    ) -> dict[str, float]:
        """Close block `seq` (header timestamp `proposed_ms`): record the durations of the
        stages whose both ends were marked for this block, and return them."""
        now = clock_ms() if at_ms is None else at_ms
        marks = self._marks.pop((seq, block_hash), {})
        points = [
            ("propose", marks.get("arrived"), marks.get("pre_prepared")),
            ("pre_prepare", float(proposed_ms), marks.get("pre_prepared")),
            ("prepare", marks.get("pre_prepared"), marks.get("prepared")),
            ("commit", marks.get("prepared"), marks.get("committed")),
            ("execute", marks.get("committed"), now),
        ]
        durations = {
            stage: end - start
            for stage, start, end in points
            if start is not None and end is not None
        }
        for stage, ms in durations.items():
            self._record(stage, ms)
        # Other blocks proposed for this number never commit now; nor, after a while, do the
        # blocks of numbers far behind.
        for stale in [key for key in self._marks if key[0] <= seq - MARKS_BEHIND_MAX]:
            del self._marks[stale]
        for other in [key for key in self._marks if key[0] == seq]:
            del self._marks[other]
        return durations

    def admitted(self, arrived_ms: float, at_ms: float | None = None) -> None:
        """A client batch that arrived at `arrived_ms` is admitted (every transaction decided)."""
        self._record("admission", (clock_ms() if at_ms is None else at_ms) - arrived_ms)

    def _record(self, stage: str, ms: float) -> None:
        self._recent[stage].append(ms)
        for listener in self._listeners:
            listener(stage, ms)

    def subscribe(self, listener: Listener) -> None:
        """Call `listener` with every duration recorded from now on."""
        self._listeners.append(listener)

    @property
    def in_flight(self) -> int:
        """Blocks with marks that have not been executed here yet."""
        return len(self._marks)

    def summary(self) -> dict[str, dict[str, float | int | None]]:
        """Per stage, over the recent blocks (or batches): how many, the median and the 90th
        percentile in milliseconds (None when nothing was timed)."""
        return {stage: _summarise(self._recent[stage]) for stage in STAGES}


def _summarise(values: deque[float]) -> dict[str, float | int | None]:
    if not values:
        return {"count": 0, "p50_ms": None, "p90_ms": None}
    ordered = sorted(values)
    return {
        "count": len(ordered),
        "p50_ms": round(statistics.median(ordered), 2),
        "p90_ms": round(ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))], 2),
    }
