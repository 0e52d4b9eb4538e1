"""A run's concrete faults, drawn from the seed: network knobs, partitions, crashes, byzantines."""

from __future__ import annotations

from dataclasses import dataclass
from random import Random

from consensus.sim.faults import ByzantineKind, FaultConfig
from consensus.sim.network import NetworkConfig, Partition
from ledger.certificate import max_faulty


@dataclass(frozen=True, slots=True, kw_only=True)
class Crash:
    node: int
    start_ms: int
    end_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Schedule:
    network: NetworkConfig
    partitions: tuple[Partition, ...]
    crashes: tuple[Crash, ...]
    byzantine: dict[int, ByzantineKind]


def make_schedule(n: int, faults: FaultConfig, rng: Random) -> Schedule:
    count = min(faults.byzantine, max_faulty(n))
    byzantine = {
        node: rng.choice(faults.byzantine_kinds) for node in sorted(rng.sample(range(n), count))
    }
    honest = [i for i in range(n) if i not in byzantine]
    faulty_ms = faults.faulty_ms
    network = NetworkConfig(
        delay_ms_min=1,
        delay_ms_max=10,
        delay_model="tail" if faults.delay else "uniform",
        loss_rate=rng.uniform(0.02, 0.12) if faults.loss else 0.0,
        duplicate_rate=rng.uniform(0.02, 0.1) if faults.dup else 0.0,
        reorder_rate=0.1 if faults.reorder else 0.0,
        reorder_ms_max=60 if faults.reorder else 0,
    )
    partitions: list[Partition] = []
    if faults.partition:
        for _ in range(rng.randint(1, 2)):
            start = rng.randrange(0, faulty_ms * 7 // 10)
            end = min(start + rng.randint(300, 2_000), faulty_ms)
            if rng.random() < 0.5:
                members = list(range(n))
                rng.shuffle(members)
                cut = rng.randint(1, n - 1)
                groups = (frozenset(members[:cut]), frozenset(members[cut:]))
                partitions.append(Partition(start_ms=start, end_ms=end, groups=groups))
            else:
                node = rng.randrange(n)
                rest = frozenset(range(n)) - {node}
                one = frozenset({node})
                sources, destinations = (one, rest) if rng.random() < 0.5 else (rest, one)
                partitions.append(
                    Partition(
                        start_ms=start, end_ms=end, sources=sources, destinations=destinations
                    )
                )
    crashes: list[Crash] = []
    if faults.crash and honest:
        for _ in range(rng.randint(1, 3)):
            start = rng.randrange(0, faulty_ms * 8 // 10)
            end = min(start + rng.randint(200, 2_000), faulty_ms)
            crashes.append(Crash(node=rng.choice(honest), start_ms=start, end_ms=end))
    return Schedule(
        network=network, partitions=tuple(partitions), crashes=tuple(crashes), byzantine=byzantine
    )
