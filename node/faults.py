"""Per-peer fault injection on a node's outgoing links, for tests and experiments.

Each peer (by name) may have a rule (`LinkFaults`): a delay in ms with a uniform jitter around
it, a probability of losing a batch, a probability of sending it twice, and `blocked`, which cuts
the link as a partition would. `node/peers.py` asks `FaultInjector.decide` once per batch it is
about to send; state transfer does not fetch from a blocked peer. A rule governs what this node
sends, so a symmetric partition sets rules on both sides (`millchain cluster faults
--partition` does). Draws come from one seeded generator, so a run's sequence of decisions is
reproducible for a given order of batches. Rules change at runtime through the loopback-only
admin API (`GET`/`POST /admin/faults`).

A node keeps its rules and seed in its data directory (`FaultInjector.kept_at`), and a restarted
node starts with them: a network's faults do not heal because a process behind them restarted,
and a node cut off by a partition that came back without its rules would send to, and fetch
from, the side that still cuts it (a partition half set). Clearing them is healing them.

A blocked link fails like an unreachable peer (the sender backs off and retries, and drops the
backlog of a peer down for long); a lost batch vanishes as if the network had eaten it (the
protocol's retransmission and state transfer must cover it).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from random import Random
from typing import Any

from node.errors import ConfigError, Rejection

DELAY_MS_MAX = 60_000
# In a node's data directory: its rules and seed, kept across restarts (FaultInjector.kept_at).
FAULTS_FILE = "faults.json"
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
    """The rules of one node's links, and the seeded generator behind their draws; with a
    `path`, every change is written there before it takes effect (see `kept_at`)."""

    seed: int = 0
    rules: dict[str, LinkFaults] = field(default_factory=dict)
    counters: dict[str, LinkCounters] = field(default_factory=dict)
    path: Path | None = None
    _rng: Random = field(init=False)

    def __post_init__(self) -> None:
        self._rng = Random(self.seed)

    @classmethod
    def kept_at(cls, path: Path) -> FaultInjector:
        """The rules and seed an earlier run of the node kept in `path` (none if there is no
        file), kept there again on every change. ConfigError for a file that cannot be read
        or is malformed: a node must not start with other faults than it was told."""
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return cls(path=path)
        except OSError as exc:
            raise ConfigError(f"cannot read the fault rules kept in {path}: {exc}") from exc
        try:
            document = json.loads(text)
            seed = document["seed"]
            kept = document["rules"]
            if isinstance(seed, bool) or not isinstance(seed, int):
                raise ValueError(f"seed must be an integer, got {seed!r}")
            if not isinstance(kept, dict) or not all(isinstance(r, dict) for r in kept.values()):
                raise ValueError("rules must map each peer's name to a rule")
            rules = {str(peer): LinkFaults.from_json(rule) for peer, rule in kept.items()}
        except (ValueError, KeyError, TypeError, FaultSpecError) as exc:
            raise ConfigError(
                f"the fault rules kept in {path} are malformed ({exc}); delete the file to "
                "start the node with none"
            ) from exc
        return cls(
            seed=seed,
            rules={peer: rule for peer, rule in rules.items() if not rule.is_clear},
            path=path,
        )

    def reseed(self, seed: int) -> None:
        self._keep(seed, self.rules)
        self.seed = seed
        self._rng = Random(seed)

    def set(self, peer: str, faults: LinkFaults) -> None:
        rules = {key: rule for key, rule in self.rules.items() if key != peer}
        if not faults.is_clear:
            rules[peer] = faults
        self._keep(self.seed, rules)
        self.rules = rules

    def clear(self, peer: str | None = None) -> None:
        rules = {} if peer is None else {k: r for k, r in self.rules.items() if k != peer}
        self._keep(self.seed, rules)
        self.rules = rules

    def _keep(self, seed: int, rules: dict[str, LinkFaults]) -> None:
        """Write `seed` and `rules` to `path` (nothing without one), whole or not at all;
        a Rejection (500) if the disk refuses, and then nothing changes."""
        if self.path is None:
            return
        document = {"seed": seed, "rules": {p: rules[p].to_json() for p in sorted(rules)}}
        partial = self.path.with_name(f".{self.path.name}.partial")
        try:
            partial.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
            os.replace(partial, self.path)
        except OSError as exc:
            partial.unlink(missing_ok=True)
            raise Rejection(
                f"cannot keep the fault rules in {self.path}: {exc}; nothing was changed",
                status=500,
            ) from exc

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
