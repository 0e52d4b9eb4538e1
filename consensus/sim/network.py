"""A virtual network: a priority queue of deliveries at virtual times, with seeded delays.

Loss and duplication knobs default off. Crashed nodes neither send nor receive (deliveries already
in flight to them are dropped when they come due). Ties at one instant are broken by send order,
so a run depends only on the seed.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Protocol


class Rng(Protocol):
    """The part of `random.Random` the network draws from."""

    def random(self) -> float: ...

    def randint(self, a: int, b: int) -> int: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class NetworkConfig:
    delay_ms_min: int = 1
    delay_ms_max: int = 10
    loss_rate: float = 0.0
    duplicate_rate: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Delivery:
    at_ms: int
    source: int
    destination: int
    payload: bytes


@dataclass(slots=True, kw_only=True)
class NetworkStats:
    sent: int = 0
    delivered: int = 0
    dropped: int = 0
    duplicated: int = 0


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

    def crash(self, node: int) -> None:
        self._down.add(node)

    def restore(self, node: int) -> None:
        self._down.discard(node)

    def is_down(self, node: int) -> bool:
        return node in self._down

    def send(self, *, now_ms: int, source: int, destination: int, payload: bytes) -> None:
        self.stats.sent += 1
        if source in self._down or destination in self._down or self._draw(self.config.loss_rate):
            self.stats.dropped += 1
            return
        copies = 2 if self._draw(self.config.duplicate_rate) else 1
        self.stats.duplicated += copies - 1
        for _ in range(copies):
            delay_ms = self._rng.randint(self.config.delay_ms_min, self.config.delay_ms_max)
            delivery = Delivery(
                at_ms=now_ms + delay_ms, source=source, destination=destination, payload=payload
            )
            heapq.heappush(self._queue, (delivery.at_ms, self._order, delivery))
            self._order += 1

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
