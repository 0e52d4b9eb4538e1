"""How large a peer channel's batches may be (node/peers.py): a cap that halves when the peer
refuses a batch as too large, and grows back by probes spaced further apart each time one fails.

A peer refuses a batch larger than it takes (a frame past its body_bytes_max, or more tokens
than its rate limit's burst); its limit may be for good or for a while (a peer restarted with a
smaller frame, then with the usual one). A cap that only ever halved left a channel sending
small batches for good after one such refusal, a frame and an ack each; a cap that simply grew
back every few batches would have a peer whose limit is small for good refuse a batch every
few batches for good. The rule, for one quantity (bytes, or items) of one channel:

- A refusal of a batch of `size` sets the cap to size // 2, and remembers the smallest size
  refused (`refused`).
- Every PROBE_AFTER_BATCHES_MIN batches (`probe_after`) delivered at the cap, the cap doubles,
  up to the channel's normal maximum (`full`). Only batches larger than half the cap count:
  smaller ones say nothing about the peer's limit, and the cap does not hold them back.
- A refusal that follows a doubling is a failed probe: `probe_after` doubles too, up to
  PROBE_AFTER_BATCHES_MAX. A refusal before any doubling (the cap going down from a size far
  above the peer's limit) is not: the cap halves again without waiting.
- A batch at least as large as `refused` delivered shows the peer's limit has risen:
  `refused` is forgotten and `probe_after` is back to its minimum.

So a peer whose limit rose is sent full batches again within a few doublings of
PROBE_AFTER_BATCHES_MIN batches each, and a peer whose limit stays small sees the probes
above it ever more rarely: over n batches about log2(n / PROBE_AFTER_BATCHES_MIN) of them, and
then one every PROBE_AFTER_BATCHES_MAX batches.
"""

from __future__ import annotations

from dataclasses import dataclass, field

PROBE_AFTER_BATCHES_MIN = 8
PROBE_AFTER_BATCHES_MAX = 1024


@dataclass(slots=True)
class BatchLimit:
    """The cap of one quantity of a channel's batches; see the module docstring."""

    full: int
    now: int = field(init=False)
    refused: int | None = None  # the smallest size refused since the peer last took one as large
    probe_after: int = PROBE_AFTER_BATCHES_MIN
    delivered: int = 0  # batches counted since the cap last changed
    raised: bool = False  # the cap doubled since the last refusal

    def __post_init__(self) -> None:
        if self.full < 1:
            raise ValueError(f"a batch limit must be at least 1, got {self.full}")
        self.now = self.full

    def refuse(self, size: int) -> None:
        """The peer refused a batch of `size` as larger than it takes."""
        if self.raised:
            self.probe_after = min(self.probe_after * 2, PROBE_AFTER_BATCHES_MAX)
        self.refused = size if self.refused is None else min(self.refused, size)
        self.now = max(1, size // 2)
        self.delivered = 0
        self.raised = False

    def take(self, size: int) -> None:
        """The peer took a batch of `size`."""
        if self.refused is not None and size >= self.refused:
            self.refused = None
            self.probe_after = PROBE_AFTER_BATCHES_MIN
            self.raised = False
        if self.now >= self.full or size * 2 <= self.now:
            return
        self.delivered += 1
        if self.delivered >= self.probe_after:
            self.now = min(self.now * 2, self.full)
            self.delivered = 0
            self.raised = True
