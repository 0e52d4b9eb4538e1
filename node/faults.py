"""Per-peer fault injection on a node's outgoing links, for tests and experiments.

Each peer (by name) may have a rule (`LinkFaults`): a delay in ms with a uniform jitter around
it, a probability of losing a batch, a probability of sending it twice, and `blocked`, which cuts
the link as a partition would. `node/peers.py` asks `FaultInjector.decide` once per batch it is
about to send; state transfer does not fetch from a blocked peer. A rule governs what this node
sends, so a symmetric partition sets rules on both sides (`millchain cluster faults
--partition` does). Draws come from one seeded generator, so a run's sequence of decisions is
reproducible for a given order of batches. Rules change at runtime through the loopback-only
admin API (`GET`/`POST /admin/faults`).

A blocked link fails like an unreachable peer (the sender backs off and retries, and drops the
backlog of a peer down for long); a lost batch vanishes as if the network had eaten it (the
protocol's retransmission and state transfer must cover it).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from random import Random
from typing import Any

from node.errors import Rejection

DELAY_MS_MAX = 60_000
_FIELDS = frozenset({"delay_ms", "jitter_ms", "loss", "duplicate", "blocked"})


class FaultSpecError(Rejection):
    """A fault rule that is malformed or out of range."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkFaults:
    delay_ms: int = 0
    jitter_ms: int = 0
    loss: float = 0.0  # probability that a batch is lost
    duplicate: float = 0.0  # probability that a batch is sent twice
    blocked: bool = False

    def __post_init__(self) -> None:
        for name in ("delay_ms", "jitter_ms"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise FaultSpecError(f"{name} must be an integer, got {value!r}")
            if not 0 <= value <= DELAY_MS_MAX:
                raise FaultSpecError(f"{name} must be between 0 and {DELAY_MS_MAX}, got {value}")
        for name in ("loss", "duplicate"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise FaultSpecError(f"{name} must be a probability, got {value!r}")
            if not 0.0 <= value <= 1.0:
                raise FaultSpecError(f"{name} must be a probability in [0, 1], got {value}")
        if not isinstance(self.blocked, bool):
            raise FaultSpecError(f"blocked must be true or false, got {self.blocked!r}")

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> LinkFaults:
        unknown = set(document) - _FIELDS
        if unknown:
            raise FaultSpecError(
                f"unknown fault field(s) {', '.join(sorted(unknown))}; "
                f"expected {', '.join(sorted(_FIELDS))}"
            )
        return cls(**document)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def is_clear(self) -> bool:
        return self == LinkFaults()


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    """What to do with one batch: not at all (blocked), after `delay_ms`, `copies` times (0:
    lost)."""

    blocked: bool = False
    delay_ms: int = 0
    copies: int = 1


@dataclass(slots=True)
class LinkCounters:
    batches: int = 0
    blocked: int = 0
    lost: int = 0
    duplicated: int = 0
    delayed_ms_total: int = 0


@dataclass(slots=True)
class FaultInjector:
    """The rules of one node's links, and the seeded generator behind their draws."""

    seed: int = 0
    rules: dict[str, LinkFaults] = field(default_factory=dict)
    counters: dict[str, LinkCounters] = field(default_factory=dict)
    _rng: Random = field(init=False)

    def __post_init__(self) -> None:
        self._rng = Random(self.seed)

    def reseed(self, seed: int) -> None:
        self.seed = seed
        self._rng = Random(seed)

    def set(self, peer: str, faults: LinkFaults) -> None:
        if faults.is_clear:
            self.rules.pop(peer, None)
        else:
            self.rules[peer] = faults

    def clear(self, peer: str | None = None) -> None:
        if peer is None:
            self.rules.clear()
        else:
            self.rules.pop(peer, None)

    def rule(self, peer: str) -> LinkFaults:
        return self.rules.get(peer, LinkFaults())

    def is_blocked(self, peer: str) -> bool:
        return self.rule(peer).blocked

    def decide(self, peer: str) -> Verdict:
        """The fate of the next batch to `peer` (draws only where the rule needs them)."""
        counters = self.counters.setdefault(peer, LinkCounters())
        counters.batches += 1
        rule = self.rules.get(peer)
        if rule is None:
            return Verdict()
        if rule.blocked:
            counters.blocked += 1
            return Verdict(blocked=True)
        delay_ms = rule.delay_ms
        if rule.jitter_ms:
            delay_ms = max(0, delay_ms + self._rng.randint(-rule.jitter_ms, rule.jitter_ms))
        counters.delayed_ms_total += delay_ms
        if rule.loss and self._rng.random() < rule.loss:
            counters.lost += 1
            return Verdict(delay_ms=delay_ms, copies=0)
        if rule.duplicate and self._rng.random() < rule.duplicate:
            counters.duplicated += 1
            return Verdict(delay_ms=delay_ms, copies=2)
        return Verdict(delay_ms=delay_ms)

    def status(self, peers: list[str]) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "peers": {
                peer: {
                    **self.rule(peer).to_json(),
                    "counters": asdict(self.counters.get(peer, LinkCounters())),
                }
                for peer in peers
            },
        }
