"""A seeded simulator of machines producing AI4I 2020 readings, one operation at a time.

Theory of operation. Each machine is a sequence of operations with its own tool and its own
temperatures. Per operation:

- the product's quality is drawn L/M/H with 50/30/20 % (or fixed per machine) and adds 2/3/5
  minutes of tool wear;
- air temperature is a slow mean-reverting random walk, stationary at 300 K with a standard
  deviation of 2 K (the documentation normalizes a random walk to 2 K; a stream cannot normalize
  after the fact, so an AR(1) with that stationary spread stands in for it);
- process temperature is air + 10 K plus a faster mean-reverting walk of standard deviation 1 K;
- torque is normal around 40 Nm with 10 Nm of spread, folded at zero so it is never negative;
  the `stress` knob raises its mean to drive a machine toward overstrain and power failure;
- rotational speed falls with torque along a slightly convex cubic plus normal noise. The
  documentation's "from a power of 2860 W" does not match the published data; the cubic is fitted
  so speed, torque and power match the real file (speed 1539 +- 179 rpm, correlation -0.875,
  power 6280 +- 1067 W, 1st/99th percentiles 3837/8821 W).

Every tool has a life drawn uniformly from 200-240 min. When an operation would take it past its
life the tool either fails during the operation (a TWF record, then the tool is replaced) or was
replaced just before it (a fresh tool does the work). The documentation counts 120 such events
with 51 failures; the data's TWF column counts 46, which is the rate used here. Random failures
happen with 0.19 % per operation: the documentation says 0.1 %, the data's RNF column counts 19 in
10,000. Heat dissipation, power and overstrain failures follow the documented rules, evaluated on
the recorded values (see `physics`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np

from oracle.errors import TelemetryError
from oracle.telemetry import physics
from oracle.telemetry.reading import MACHINE_ID_PATTERN, Quality, Reading

AIR_TEMP_K_MEAN: Final = 300.0
AIR_TEMP_K_STD: Final = 2.0
AIR_WALK_OPS: Final = 500.0  # correlation length of the air temperature walk, in operations
TEMP_DIFF_K_MEAN: Final = 10.0
TEMP_DIFF_K_STD: Final = 1.0
TEMP_DIFF_WALK_OPS: Final = 5.0
TORQUE_NM_MEAN: Final = 40.0
TORQUE_NM_STD: Final = 10.0
STRESS_TORQUE_NM: Final = 20.0  # torque mean added per unit of stress
STRESS_MAX: Final = 3.0
# speed_rpm = c0 + c1 x + c2 x^2 + c3 x^3 + noise, with x = (torque_nm - 40) / 10 clipped to
# the torque range of the real data (4..77 Nm) so stressed machines do not extrapolate the cubic.
SPEED_RPM_COEFFS: Final = (1499.45, -138.62, 41.625, -8.0273)
SPEED_RPM_NOISE_STD: Final = 45.15
SPEED_X_RANGE: Final = (-3.6, 3.7)
QUALITY_SHARES: Final = {Quality.L: 0.5, Quality.M: 0.3, Quality.H: 0.2}
TOOL_LIFE_MIN_RANGE: Final = (200, 240)
TOOL_FAILS_AT_END_P: Final = 46 / 120
RANDOM_FAILURE_P: Final = 0.0019

_QUALITIES: Final = tuple(QUALITY_SHARES)
_QUALITY_P: Final = tuple(QUALITY_SHARES.values())


class _Walk:
    """AR(1) deviation with a given stationary standard deviation and correlation length."""

    def __init__(self, rng: np.random.Generator, std: float, length_ops: float) -> None:
        self._rng = rng
        self._phi = 1.0 - 1.0 / length_ops
        self._innovation_std = std * float(np.sqrt(1.0 - self._phi**2))
        self.value = float(rng.normal(0.0, std))

    def step(self) -> float:
        self.value = self._phi * self.value + float(self._rng.normal(0.0, self._innovation_std))
        return self.value


def speed_rpm_of(torque_nm: float, noise_rpm: float) -> float:
    x = min(max((torque_nm - TORQUE_NM_MEAN) / 10.0, SPEED_X_RANGE[0]), SPEED_X_RANGE[1])
    c0, c1, c2, c3 = SPEED_RPM_COEFFS
    return c0 + x * (c1 + x * (c2 + x * c3)) + noise_rpm


class MachineSimulator:
    """One machine's stream of readings. All randomness comes from the seed."""

    def __init__(
        self,
        machine_id: str,
        seed: int | np.random.SeedSequence,
        quality: Quality | None = None,
        *,
        tool_fails_at_end_p: float = TOOL_FAILS_AT_END_P,
    ) -> None:
        if not MACHINE_ID_PATTERN.fullmatch(machine_id):
            raise TelemetryError(
                f"machine id {machine_id!r} must be 1-64 of [A-Za-z0-9_.-], not starting with '.'"
            )
        if not 0.0 <= tool_fails_at_end_p <= 1.0:
            raise TelemetryError(f"tool_fails_at_end_p {tool_fails_at_end_p} is outside 0..1")
        # The chance that a tool reaching the end of its life fails during the operation rather
        # than being replaced just before it; 1.0 models a shop where only maintenance changes
        # tools (the factory scenario), the default the practice recorded in the data set.
        self.tool_fails_at_end_p = tool_fails_at_end_p
        self.machine_id = machine_id
        self.quality = quality
        # Two streams: the process (quality, temperatures, torque, speed, random failures) and
        # the tool (its lives, and whether one fails at the end of its life). Maintenance draws
        # on the tool's alone, so a tool changed early leaves every later operation's process
        # as it was: strategies compared on one seed meet the same operations.
        process, tool = _streams(seed)
        self._rng = np.random.default_rng(process)
        self._tool_rng = np.random.default_rng(tool)
        self._air = _Walk(self._rng, AIR_TEMP_K_STD, AIR_WALK_OPS)
        self._diff = _Walk(self._rng, TEMP_DIFF_K_STD, TEMP_DIFF_WALK_OPS)
        self._stress = 0.0
        self.seq = 0
        self.wear_min = 0
        self.tool_life_min = self._draw_tool_life_min()

    @property
    def stress(self) -> float:
        """Extra load: each unit raises the torque mean by STRESS_TORQUE_NM (0 = nominal)."""
        return self._stress

    @stress.setter
    def stress(self, level: float) -> None:
        if not 0.0 <= level <= STRESS_MAX:
            raise TelemetryError(f"stress {level} is outside 0..{STRESS_MAX}")
        self._stress = float(level)

    def replace_tool(self) -> None:
        """Maintenance: a new tool, wear back to zero, a new life drawn."""
        self.wear_min = 0
        self.tool_life_min = self._draw_tool_life_min()

    def step(self) -> Reading:
        quality = self.quality or _QUALITIES[int(self._rng.choice(3, p=_QUALITY_P))]
        tool_failed = self._advance_tool(physics.WEAR_STEP_MIN[quality.value])
        air_temp_dk = round((AIR_TEMP_K_MEAN + self._air.step()) * 10)
        process_temp_dk = air_temp_dk + round((TEMP_DIFF_K_MEAN + self._diff.step()) * 10)
        torque_nm = abs(float(self._rng.normal(self._torque_nm_mean(), TORQUE_NM_STD)))
        torque_dnm = round(torque_nm * 10)
        noise_rpm = float(self._rng.normal(0.0, SPEED_RPM_NOISE_STD))
        speed_rpm = max(1, round(speed_rpm_of(torque_dnm / 10, noise_rpm)))
        random_failed = bool(self._rng.random() < RANDOM_FAILURE_P)
        reading = _reading(
            machine_id=self.machine_id,
            seq=self.seq,
            quality=quality,
            air_temp_dk=air_temp_dk,
            process_temp_dk=process_temp_dk,
            speed_rpm=speed_rpm,
            torque_dnm=torque_dnm,
            wear_min=self.wear_min,
            twf=tool_failed,
            rnf=random_failed,
        )
        self.seq += 1
        if tool_failed:
            self.replace_tool()
        return reading

    def run(self, operations: int) -> list[Reading]:
        return [self.step() for _ in range(operations)]

    def _torque_nm_mean(self) -> float:
        return TORQUE_NM_MEAN + self._stress * STRESS_TORQUE_NM

    def _advance_tool(self, step_min: int) -> bool:
        """Wear the tool by one operation; True when the tool fails during it."""
        if self.wear_min + step_min < self.tool_life_min:
            self.wear_min += step_min
            return False
        if self._tool_rng.random() < self.tool_fails_at_end_p:
            self.wear_min += step_min
            return True
        self.replace_tool()
        self.wear_min = step_min
        return False

    def _draw_tool_life_min(self) -> int:
        low, high = TOOL_LIFE_MIN_RANGE
        return int(self._tool_rng.integers(low, high, endpoint=True))


def _streams(seed: int | np.random.SeedSequence) -> list[np.random.SeedSequence]:
    """Two independent seeds derived from `seed`, without spawning from it (which would change
    what a caller's SeedSequence gives the next time)."""
    base = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    return [
        np.random.SeedSequence(base.entropy, spawn_key=(*base.spawn_key, stream))
        for stream in (0, 1)
    ]


def _reading(*, quality: Quality, twf: bool, rnf: bool, **fields: int | str) -> Reading:
    """Build a reading whose deterministic flags follow from its own recorded fields."""
    air, process = int(fields["air_temp_dk"]), int(fields["process_temp_dk"])
    speed, torque, wear = (
        int(fields["speed_rpm"]),
        int(fields["torque_dnm"]),
        int(fields["wear_min"]),
    )
    hdf = physics.heat_dissipation_fails(air_temp_dk=air, process_temp_dk=process, speed_rpm=speed)
    pwf = physics.power_fails(torque_dnm=torque, speed_rpm=speed)
    osf = physics.overstrain_fails(quality=quality.value, wear_min=wear, torque_dnm=torque)
    return Reading(
        machine_id=str(fields["machine_id"]),
        seq=int(fields["seq"]),
        quality=quality,
        air_temp_dk=air,
        process_temp_dk=process,
        speed_rpm=speed,
        torque_dnm=torque,
        wear_min=wear,
        machine_failure=twf or hdf or pwf or osf or rnf,
        twf=twf,
        hdf=hdf,
        pwf=pwf,
        osf=osf,
        rnf=rnf,
    )


def machine_ids(machines: int) -> list[str]:
    width = max(2, len(str(machines - 1)))
    return [f"m{index:0{width}d}" for index in range(machines)]


def simulate_fleet(
    machines: int,
    operations: int,
    seed: int,
    *,
    quality: Quality | None = None,
    tool_fails_at_end_p: float = TOOL_FAILS_AT_END_P,
) -> list[Reading]:
    """`operations` readings from each of `machines` machines, concatenated machine by machine.

    Machine i draws from the i-th child of `SeedSequence(seed)`, so adding machines never
    changes the readings of the ones before.
    """
    if machines < 1 or operations < 1:
        raise TelemetryError(
            f"need at least one machine and one operation, got {machines}x{operations}"
        )
    children: Sequence[np.random.SeedSequence] = np.random.SeedSequence(seed).spawn(machines)
    readings: list[Reading] = []
    for machine_id, child in zip(machine_ids(machines), children, strict=True):
        simulator = MachineSimulator(
            machine_id, child, quality, tool_fails_at_end_p=tool_fails_at_end_p
        )
        readings.extend(simulator.run(operations))
    return readings
