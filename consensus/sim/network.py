"""A virtual network: a priority queue of deliveries at virtual times, with seeded faults.

Delays are uniform between `delay_ms_min` and `delay_ms_max`, or, with `delay_model="tail"`,
`delay_ms_min` plus an exponential draw (mean `delay_tail_ms_mean`, capped at
`delay_tail_ms_max`): mostly fast, sometimes very slow. Loss, duplication and reordering (an extra
random delay for some messages) are knobs that default off. Partitions are scheduled with start
and end times; a symmetric one cuts every link between its groups, an asymmetric one only the
links from `sources` to `destinations`. Crashed nodes neither send nor receive (deliveries already
in flight to them are dropped when they come due). Ties at one instant are broken by send order,
so a run depends only on the seed. Knobs that are off draw nothing, so turning one on does not
reshuffle the rest of a run.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol


class Rng(Protocol):
    """The part of `random.Random` the network draws from."""

    def random(self) -> float: ...

    def randint(self, a: int, b: int) -> int: ...

    def expovariate(self, lambd: float) -> float: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class NetworkConfig:
    delay_ms_min: int = 1
    delay_ms_max: int = 10
    loss_rate: float = 0.0
    duplicate_rate: float = 0.0
    delay_model: str = "uniform"  # or "tail"
    delay_tail_ms_mean: int = 15
    delay_tail_ms_max: int = 400
    reorder_rate: float = 0.0
    reorder_ms_max: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Partition:
    """Links cut from `start_ms` until `end_ms`.

    Symmetric: `groups` (nodes in different groups cannot talk; nodes in no group talk to all).
    Asymmetric: `sources` cannot reach `destinations` (the other direction works).
    """

    start_ms: int
    end_ms: int
    groups: tuple[frozenset[int], ...] = ()
    sources: frozenset[int] = field(default_factory=frozenset)
    destinations: frozenset[int] = field(default_factory=frozenset)

    def cuts(self, now_ms: int, source: int, destination: int) -> bool:
        if not self.start_ms <= now_ms < self.end_ms:
            return False
        if self.groups:
            home = [i for i, group in enumerate(self.groups) if source in group]
            away = [i for i, group in enumerate(self.groups) if destination in group]
            return bool(home and away and home != away)
        return source in self.sources and destination in self.destinations


@dataclass(frozen=True, slots=True, kw_only=True)
class Delivery:
    at_ms: int
    source: int
    destination: int
    payload: bytes
    tag: str = "message"


@dataclass(slots=True, kw_only=True)
class NetworkStats:
    sent: int = 0  # everything: consensus messages and forwarded transactions
    messages_sent: int = 0  # consensus messages only
    messages_bytes: int = 0
    delivered: int = 0
    dropped: int = 0
    duplicated: int = 0
    bytes_sent: int = 0


class Network:
    def __init__(self, config: NetworkConfig, rng: Rng) -> None:
        if not 0 <= config.delay_ms_min <= config.delay_ms_max:
            raise ValueError("network delays need 0 <= delay_ms_min <= delay_ms_max")
        self.config = config
        self.stats = NetworkStats()
        self._rng = rng
        self._queue: list[tuple[int, int, Delivery]] = []
        self._order = 0
        self._down: set[int] = set()
        self._partitions: list[Partition] = []

    def crash(self, node: int) -> None:
        self._down.add(node)

    def restore(self, node: int) -> None:
        self._down.discard(node)

    def is_down(self, node: int) -> bool:
        return node in self._down

    def partition(self, partitions: Iterable[Partition]) -> None:
        self._partitions.extend(partitions)

    def heal(self, config: NetworkConfig) -> None:
        """End every partition and switch to `config` (deliveries in flight keep their times)."""
        self._partitions = []
        self.config = config

    def reachable(self, now_ms: int, source: int, destination: int) -> bool:
        if source in self._down or destination in self._down:
            return False
        return not any(p.cuts(now_ms, source, destination) for p in self._partitions)

    def send(
        self, *, now_ms: int, source: int, destination: int, payload: bytes, tag: str = "message"
    ) -> None:
        self.stats.sent += 1
        self.stats.bytes_sent += len(payload)
        if tag == "message":
            self.stats.messages_sent += 1
            self.stats.messages_bytes += len(payload)
        if not self.reachable(now_ms, source, destination) or self._draw(self.config.loss_rate):
            self.stats.dropped += 1
            return
        copies = 2 if self._draw(self.config.duplicate_rate) else 1
        self.stats.duplicated += copies - 1
        for _ in range(copies):
            delivery = Delivery(
                at_ms=now_ms + self.delay_ms(),
                source=source,
                destination=destination,
                payload=payload,
                tag=tag,
            )
            heapq.heappush(self._queue, (delivery.at_ms, self._order, delivery))
            self._order += 1

    def delay_ms(self) -> int:
        config = self.config
        if config.delay_model == "tail":
            extra = self._rng.expovariate(1 / max(config.delay_tail_ms_mean, 1))
            delay = config.delay_ms_min + min(int(extra), config.delay_tail_ms_max)
        else:
            delay = self._rng.randint(config.delay_ms_min, config.delay_ms_max)
        if self._draw(config.reorder_rate):
            delay += self._rng.randint(0, config.reorder_ms_max)
        return delay

    def next_at_ms(self) -> int | None:
        return self._queue[0][0] if self._queue else None

    def pop(self) -> Delivery | None:
        """The next delivery due, or None if it was for (or from) a node that is now down."""
        _, _, delivery = heapq.heappop(self._queue)
        if delivery.destination in self._down or delivery.source in self._down:
            self.stats.dropped += 1
            return None
        self.stats.delivered += 1
        return delivery

    def __len__(self) -> int:
        return len(self._queue)

    def _draw(self, rate: float) -> bool:
        # Draw only when the knob is on, so turning a knob on does not reshuffle unrelated runs.
        return rate > 0 and self._rng.random() < rate
