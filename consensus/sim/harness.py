"""A deterministic in-process cluster: n replicas, a virtual network, a trivial app, a checker.

`Cluster(n, seed)` derives every key from the seed, feeds batches of real signed transactions to
whichever replica is primary every `batch_interval_ms` (while it `can_propose`), carries messages
through `Network` as canonical bytes (so the codec is exercised on every hop), executes committed
blocks with `SimApp` and reports `BlockExecuted` back. After every step `SafetyChecker` checks
that committed history neither forks nor regresses.

Hooks for tests that break things on purpose: `replica_factory` builds (possibly broken) replica
variants, `validator_factory` gives each replica its block validator, and `action_hook` may
rewrite, drop or multiply each action a replica returns before the harness applies it.
"""

from __future__ import annotations

import enum
import heapq
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from random import Random

from consensus.actions import (
    Action,
    Broadcast,
    CheckpointStable,
    CommitBlock,
    Rejected,
    Send,
    StateDivergence,
)
from consensus.errors import InvalidBlock
from consensus.events import BlockExecuted, Event, MessageReceived, ProposeBatch
from consensus.messages import Message, decode_message, encode_message
from consensus.replica import BlockValidator, Replica, ReplicaConfig, ReplicaStart
from consensus.sim.checker import SafetyChecker
from consensus.sim.network import Network, NetworkConfig
from ledger.block import ZERO_HASH, Block
from ledger.crypto import KeyPair
from ledger.hashing import sha256
from ledger.tx import TX_BYTES_MAX_DEFAULT, Transaction

GENESIS_STATE_DIGEST = sha256(b"millchain/sim/genesis-state")
GENESIS_TIME_MS = 0
CLIENTS = 3
REJECT_METHOD = "reject-me"

ReplicaFactory = Callable[[ReplicaConfig, KeyPair, BlockValidator, ReplicaStart], Replica]
ActionHook = Callable[[int, Action], list[Action]]


class AcceptAll:
    def validate(self, block: Block) -> None:
        return None


class RejectMarked:
    """Refuses any block holding a transaction whose method is REJECT_METHOD."""

    def validate(self, block: Block) -> None:
        for tx in block.txs:
            if tx.method == REJECT_METHOD:
                raise InvalidBlock(f"transaction {tx.hash.hex()[:16]} is marked to be refused")


class SimApp:
    """A trivial deterministic application: digest(h) = sha256(digest(h-1) + hash of block h)."""

    def __init__(self) -> None:
        self.height = 0
        self.digest = GENESIS_STATE_DIGEST

    def execute(self, block: Block) -> bytes:
        if block.height != self.height + 1:
            raise AssertionError(f"app asked to execute {block.height} after {self.height}")
        self.height = block.height
        self.digest = sha256(self.digest + block.hash)
        return self.digest


class TimerKind(enum.Enum):
    PROPOSE = "propose"
    EXECUTE = "execute"


@dataclass(frozen=True, slots=True, kw_only=True)
class _Timer:
    kind: TimerKind
    replica: int = -1
    block: Block | None = None


@dataclass(slots=True, kw_only=True)
class ReplicaRecord:
    """What the harness saw one replica do."""

    commits: list[CommitBlock] = field(default_factory=list)
    rejections: list[Rejected] = field(default_factory=list)
    stable: list[CheckpointStable] = field(default_factory=list)
    divergences: list[StateDivergence] = field(default_factory=list)
    in_flight_max: int = 0


class Cluster:
    def __init__(
        self,
        n: int,
        seed: int,
        *,
        network: NetworkConfig | None = None,
        checkpoint_interval: int = 10,
        watermark_window: int = 40,
        batch_interval_ms: int = 5,
        txs_per_block: int = 2,
        blocks_max: int | None = None,
        crashed: Iterable[int] = (),
        execute_delay_ms: int = 0,
        replica_factory: ReplicaFactory = Replica,
        validator_factory: Callable[[int], BlockValidator] = lambda index: AcceptAll(),
        action_hook: ActionHook | None = None,
    ) -> None:
        self.seed = seed
        self.rng = Random(seed)
        self.chain_id = f"sim-{seed}"
        self.keys = [KeyPair.from_seed(sha256(f"sim-{seed}-{i}".encode())) for i in range(n)]
        self.clients = [
            KeyPair.from_seed(sha256(f"sim-{seed}-client-{j}".encode())) for j in range(CLIENTS)
        ]
        self.network = Network(network or NetworkConfig(), self.rng)
        self.crashed = frozenset(crashed)
        for index in self.crashed:
            self.network.crash(index)
        validators = tuple(key.public_key for key in self.keys)
        start = ReplicaStart(
            height=0,
            block_hash=ZERO_HASH,
            timestamp_ms=GENESIS_TIME_MS,
            state_height=0,
            state_digest=GENESIS_STATE_DIGEST,
        )
        self.replicas = [
            replica_factory(
                ReplicaConfig(
                    chain_id=self.chain_id,
                    validators=validators,
                    index=i,
                    checkpoint_interval=checkpoint_interval,
                    watermark_window=watermark_window,
                ),
                self.keys[i],
                validator_factory(i),
                start,
            )
            for i in range(n)
        ]
        self.apps = [SimApp() for _ in range(n)]
        self.records = [ReplicaRecord() for _ in range(n)]
        self.checker = SafetyChecker(seed=seed, start_heights=[0] * n)
        self.now_ms = 0
        self.blocks_proposed = 0
        self.blocks_max = blocks_max
        self.batch_interval_ms = batch_interval_ms
        self.txs_per_block = txs_per_block
        self.execute_delay_ms = execute_delay_ms
        self.action_hook = action_hook
        self._nonces = [0] * CLIENTS
        self._txs_made = 0
        self._timers: list[tuple[int, int, _Timer]] = []
        self._timer_order = 0
        self._schedule(batch_interval_ms, _Timer(kind=TimerKind.PROPOSE))

    # --- running ---------------------------------------------------------------------------

    @property
    def live(self) -> list[int]:
        return [i for i in range(len(self.replicas)) if i not in self.crashed]

    def committed_height_min(self) -> int:
        return min(self.replicas[i].committed_height for i in self.live)

    def next_at_ms(self) -> int | None:
        times = [t for t in (self.network.next_at_ms(), self._next_timer_ms()) if t is not None]
        return min(times) if times else None

    def step(self) -> bool:
        """Run the next event (a delivery or a timer); False if there is nothing left to run."""
        timer_ms = self._next_timer_ms()
        network_ms = self.network.next_at_ms()
        if timer_ms is None and network_ms is None:
            return False
        if network_ms is None or (timer_ms is not None and timer_ms <= network_ms):
            at_ms, _, timer = heapq.heappop(self._timers)
            self.now_ms = at_ms
            self._fire(timer)
        else:
            delivery = self.network.pop()
            self.now_ms = network_ms
            if delivery is not None:
                message = decode_message(delivery.payload, tx_bytes_max=TX_BYTES_MAX_DEFAULT)
                self._feed(
                    delivery.destination, MessageReceived(message=message, now_ms=self.now_ms)
                )
        self.checker.after_step(self.replicas)
        return True

    def run_until(self, predicate: Callable[[Cluster], bool], time_ms_max: int) -> bool:
        """Step until `predicate(self)` holds (True), or time or events run out (False)."""
        while not predicate(self):
            next_ms = self.next_at_ms()
            if next_ms is None or next_ms > time_ms_max:
                return False
            self.step()
        return True

    def run_until_committed(self, height: int, time_ms_max: int) -> bool:
        return self.run_until(lambda c: c.committed_height_min() >= height, time_ms_max)

    def inject(self, destination: int, message: Message) -> None:
        """Hand `message` to a replica now, as if it had just arrived (for byzantine tests)."""
        self._feed(destination, MessageReceived(message=message, now_ms=self.now_ms))
        self.checker.after_step(self.replicas)

    # --- internals -------------------------------------------------------------------------

    def _feed(self, index: int, event: Event) -> None:
        for action in self.replicas[index].handle(event):
            for applied in self.action_hook(index, action) if self.action_hook else [action]:
                self._apply(index, applied)

    def _apply(self, index: int, action: Action) -> None:
        record = self.records[index]
        match action:
            case Broadcast():
                payload = encode_message(action.message)
                for destination in range(len(self.replicas)):
                    if destination != index:
                        self._send(index, destination, payload)
            case Send():
                self._send(index, action.to, encode_message(action.message))
            case CommitBlock():
                self.checker.on_commit(index, action.block)
                record.commits.append(action)
                timer = _Timer(kind=TimerKind.EXECUTE, replica=index, block=action.block)
                self._schedule(self.execute_delay_ms, timer)
            case Rejected():
                record.rejections.append(action)
            case CheckpointStable():
                record.stable.append(action)
            case StateDivergence():
                record.divergences.append(action)

    def _send(self, source: int, destination: int, payload: bytes) -> None:
        self.network.send(
            now_ms=self.now_ms, source=source, destination=destination, payload=payload
        )

    def _fire(self, timer: _Timer) -> None:
        if timer.kind is TimerKind.EXECUTE:
            assert timer.block is not None
            digest = self.apps[timer.replica].execute(timer.block)
            self._feed(timer.replica, BlockExecuted(height=timer.block.height, state_digest=digest))
            return
        for index in self.live:
            self._propose_at(index)
        if self.blocks_max is None or self.blocks_proposed < self.blocks_max:
            self._schedule(self.batch_interval_ms, _Timer(kind=TimerKind.PROPOSE))

    def _propose_at(self, index: int) -> None:
        replica = self.replicas[index]
        if not replica.can_propose:
            return
        if self.blocks_max is not None and self.blocks_proposed >= self.blocks_max:
            return
        self.blocks_proposed += 1
        self._feed(index, ProposeBatch(txs=self._batch(), now_ms=self.now_ms))
        record = self.records[index]
        record.in_flight_max = max(record.in_flight_max, len(replica.in_flight))

    def _batch(self) -> tuple[Transaction, ...]:
        txs = []
        for _ in range(self.txs_per_block):
            client = self._txs_made % CLIENTS
            txs.append(
                Transaction.create(
                    self.clients[client],
                    chain_id=self.chain_id,
                    nonce=self._nonces[client],
                    contract="sim",
                    method="noop",
                    args={"n": self._txs_made},
                )
            )
            self._nonces[client] += 1
            self._txs_made += 1
        return tuple(txs)

    def _schedule(self, delay_ms: int, timer: _Timer) -> None:
        heapq.heappush(self._timers, (self.now_ms + delay_ms, self._timer_order, timer))
        self._timer_order += 1

    def _next_timer_ms(self) -> int | None:
        return self._timers[0][0] if self._timers else None
