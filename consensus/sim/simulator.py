"""The seeded fault-injecting simulator: `run_sim(n, seed, faults) -> SimReport`.

A run has three parts. Faulty phase (`faults.faulty_ms`): clients send requests to honest nodes,
which admit them to a mempool and forward them to every peer, while the network delays, loses,
duplicates and reorders messages, partitions come and go, honest nodes crash and restart, and up
to f byzantine replicas misbehave. Healing: partitions end, the network becomes reliable, crashed
nodes restart. Liveness phase: every request an honest node accepted must be committed at every
honest node within `faults.liveness_ms`. After every step `SafetyChecker` checks that no two
honest replicas commit different blocks at one height and no chain regresses; a breach raises
`SafetyViolation` (or `LivenessViolation`) naming the seed and options that reproduce it.

`SimNode` models what the real node does around its replica: the mempool, `RequestsPending` on
admission and on every tick, execution of committed blocks, `FetchBlocks` answered from a peer's
store, the view it persists from `ViewEntered`, and its WAL: every peer message it handled and
every message it signed. A crash loses everything else; a restart rebuilds the replica from its
last executed block (`ReplicaStart` with the persisted view, head header and certificate, the
signed messages and the prepared certificates it held as it entered its view), replays the
persisted peer messages through `handle`, and fetches what a peer committed beyond it, as it
does again whenever it has committed nothing for SYNC_IDLE_MS.
"""

from __future__ import annotations

import dataclasses
import heapq
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from random import Random

from consensus.actions import (
    Action,
    Broadcast,
    CheckpointStable,
    CommitBlock,
    FetchBlocks,
    Rejected,
    Send,
    StateDivergence,
    ViewEntered,
)
from consensus.checkpoints import StableCheckpoint
from consensus.config import SYNC_IDLE_MS, ChainPoint
from consensus.errors import ConsensusError, LivenessViolation, SafetyViolation
from consensus.events import (
    BlockExecuted,
    BlockState,
    BlocksTransferred,
    Event,
    MessageReceived,
    ProposeBatch,
    RequestsPending,
    Tick,
)
from consensus.messages import (
    Checkpoint,
    Commit,
    Message,
    NewView,
    PreparedProof,
    ViewChange,
    decode_message,
    encode_message,
    kind_of,
    signed_payload,
)
from consensus.replica import Replica, ReplicaConfig, ReplicaStart
from consensus.sim.checker import SafetyChecker
from consensus.sim.faults import Byzantine, ByzantineKind, FaultConfig
from consensus.sim.harness import GENESIS_STATE_DIGEST, GENESIS_TIME_MS, AcceptAll
from consensus.sim.network import Network, NetworkConfig, Partition
from consensus.sim.schedule import Crash, Schedule, make_schedule
from consensus.sim.verify import CachingVerifier
from ledger.block import ZERO_HASH, Block
from ledger.certificate import CommitCertificate, max_faulty
from ledger.crypto import KeyPair
from ledger.hashing import sha256
from ledger.tx import TX_BYTES_MAX_DEFAULT, Transaction

TICK_MS = 100
PROPOSE_MS = 20
TXS_PER_BLOCK = 8
PIPELINE_DEPTH = 8
REFORWARD_MS = 2_000
CLIENTS = 4
TX_TAG = "tx"
HEALTHY = NetworkConfig(delay_ms_min=1, delay_ms_max=10)
# The chain's start, which a replica restarted above it needs (a height-0 start implies it).
GENESIS = ChainPoint.genesis(
    block_hash=ZERO_HASH, timestamp_ms=GENESIS_TIME_MS, state_digest=GENESIS_STATE_DIGEST
)

ReplicaFactory = Callable[..., Replica]


@dataclass(slots=True, kw_only=True)
class SimReport:
    """What one run did (`runs` > 1 when reports are added up)."""

    n: int
    seed: int
    faults: str
    runs: int = 1
    commits: int = 0  # blocks every honest replica committed
    txs: int = 0  # requests accepted (and so committed everywhere)
    view_changes: int = 0  # highest view installed by an honest replica
    messages: int = 0  # consensus messages sent (forwarded transactions not counted)
    bytes: int = 0
    tx_forwards: int = 0
    sim_ms: int = 0
    byzantine: tuple[int, ...] = ()

    @property
    def messages_per_block(self) -> float:
        return self.messages / self.commits if self.commits else 0.0

    @property
    def bytes_per_block(self) -> float:
        return self.bytes / self.commits if self.commits else 0.0

    def add(self, other: SimReport) -> None:
        self.runs += other.runs
        self.commits += other.commits
        self.txs += other.txs
        self.view_changes += other.view_changes
        self.messages += other.messages
        self.bytes += other.bytes
        self.tx_forwards += other.tx_forwards
        self.sim_ms += other.sim_ms

    def to_json(self) -> dict[str, object]:
        return {
            "n": self.n,
            "seed": self.seed,
            "faults": self.faults,
            "runs": self.runs,
            "commits": self.commits,
            "txs": self.txs,
            "view_changes": self.view_changes,
            "messages": self.messages,
            "bytes": self.bytes,
            "tx_forwards": self.tx_forwards,
            "messages_per_block": round(self.messages_per_block, 2),
            "bytes_per_block": round(self.bytes_per_block, 1),
            "sim_ms": self.sim_ms,
        }


@dataclass(slots=True, kw_only=True)
class SimApp:
    """Executes committed blocks: digest(h) = sha256(digest(h-1) + hash); durable across crashes."""

    height: int = 0
    digest: bytes = GENESIS_STATE_DIGEST
    blocks: dict[int, tuple[Block, CommitCertificate, bytes]] = field(default_factory=dict)
    txs: set[bytes] = field(default_factory=set)

    def execute(self, block: Block, certificate: CommitCertificate) -> bytes:
        if block.height != self.height + 1:
            raise AssertionError(f"app asked to execute {block.height} after {self.height}")
        self.height = block.height
        self.digest = sha256(self.digest + block.hash)
        self.blocks[block.height] = (block, certificate, self.digest)
        self.txs.update(tx.hash for tx in block.txs)
        return self.digest

    def start(
        self,
        view: int,
        signed: tuple[Message, ...],
        stable: StableCheckpoint | None = None,
        prepared: tuple[PreparedProof, ...] = (),
    ) -> ReplicaStart:
        if self.height == 0:
            return ReplicaStart(
                height=0,
                block_hash=ZERO_HASH,
                timestamp_ms=GENESIS_TIME_MS,
                state_height=0,
                state_digest=GENESIS_STATE_DIGEST,
                view=view,
                signed=signed,
                prepared=prepared,
            )
        block, certificate, digest = self.blocks[self.height]
        return ReplicaStart(
            height=self.height,
            block_hash=block.hash,
            timestamp_ms=block.header.timestamp_ms,
            state_height=self.height,
            state_digest=digest,
            view=view,
            header=block.header,
            certificate=certificate,
            signed=signed,
            genesis=GENESIS,
            stable=stable,
            prepared=prepared,
        )


@dataclass(slots=True, kw_only=True)
class SimNode:
    index: int
    replica: Replica
    byzantine: Byzantine | None = None
    up: bool = True
    app: SimApp = field(default_factory=SimApp)
    mempool: dict[bytes, Transaction] = field(default_factory=dict)
    forwarded_ms: dict[bytes, int] = field(default_factory=dict)
    progress_ms: int = 0  # the last commit here, or the last catch-up attempt
    proposed: set[bytes] = field(default_factory=set)
    view: int = 0
    wal: list[Message] = field(default_factory=list)
    signed: list[Message] = field(default_factory=list)
    # The latest stable checkpoint with its proof, kept across a crash as the node stores it.
    stable: StableCheckpoint | None = None
    # The prepared certificates its replica held as it entered its view, kept across a crash
    # as the node stores them (node/wal.py): replay cannot rebuild an older view's.
    prepared: tuple[PreparedProof, ...] = ()
    rejected: int = 0
    divergences: list[StateDivergence] = field(default_factory=list)
    # The prepared certificates behind the commits its replica had signed when it crashed
    # (see Simulation._check_prepared_kept).
    prepared_at_crash: dict[int, tuple[int, bytes]] = field(default_factory=dict)

    @property
    def honest(self) -> bool:
        return self.byzantine is None


def signing_key(message: Message) -> tuple[str, int, int]:
    """(kind, view, seq) of a signed message: one signature per key, ever."""
    match message:
        case ViewChange():
            return (str(kind_of(message)), message.new_view, 0)
        case NewView():
            return (str(kind_of(message)), message.view, 0)
        case Checkpoint():
            return (str(kind_of(message)), 0, message.seq)
        case _:
            return (str(kind_of(message)), message.view, message.seq)


def _relevant(message: Message, height: int, view: int) -> bool:
    """Whether a persisted message can still matter to a replica restarting at (height, view)."""
    if isinstance(message, ViewChange):
        return message.new_view >= view
    if isinstance(message, NewView):
        return message.view >= view
    return message.seq > height


class Simulation:
    def __init__(
        self,
        n: int,
        seed: int,
        faults: FaultConfig,
        *,
        replica_factory: ReplicaFactory = Replica,
        byzantine: Mapping[int, ByzantineKind] | None = None,
        crashes: Sequence[Crash] | None = None,
        checkpoint_interval: int = 10,
        watermark_window: int = 40,
    ) -> None:
        """`byzantine` and `crashes` replace what the seed drew (tests pin a scenario)."""
        self.n, self.seed, self.faults = n, seed, faults
        self.rng = Random(seed)
        self.chain_id = f"sim-{seed}"
        self.keys = [KeyPair.from_seed(sha256(f"sim-{seed}-{i}".encode())) for i in range(n)]
        self.clients = [
            KeyPair.from_seed(sha256(f"sim-{seed}-client-{j}".encode())) for j in range(CLIENTS)
        ]
        self.schedule: Schedule = make_schedule(n, faults, self.rng)
        if byzantine is not None:
            self.schedule = dataclasses.replace(self.schedule, byzantine=dict(byzantine))
        if crashes is not None:
            self.schedule = dataclasses.replace(self.schedule, crashes=tuple(crashes))
        self.network = Network(self.schedule.network, self.rng)
        self.network.partition(self.schedule.partitions)
        self.verifier = CachingVerifier()
        self.replica_factory = replica_factory
        self.configs = [
            ReplicaConfig(
                chain_id=self.chain_id,
                validators=tuple(key.public_key for key in self.keys),
                index=i,
                checkpoint_interval=checkpoint_interval,
                watermark_window=watermark_window,
            )
            for i in range(n)
        ]
        self.nodes = [self._new_node(i) for i in range(n)]
        self.honest = [node.index for node in self.nodes if node.honest]
        self._honest_set = frozenset(self.honest)
        self.checker = SafetyChecker(seed=seed, start_heights=[0] * n)
        self.now_ms = 0
        self.accepted: dict[bytes, int] = {}
        self._decoded: dict[bytes, Message] = {}
        self._decoded_txs: dict[bytes, Transaction] = {}
        self._missing_count = 0  # (accepted request, honest node) pairs not committed yet
        self._signatures: dict[tuple[int, str, int, int], bytes] = {}
        self._nonces = [0] * CLIENTS
        self._timers: list[tuple[int, int, str, int, object]] = []
        self._order = 0
        self._healed = False
        for i in range(n):
            self._at(i * 7 % TICK_MS, "tick", i)
        self._at(PROPOSE_MS, "propose")
        self._at(faults.tx_interval_ms, "client")
        self._at(faults.faulty_ms, "heal")
        for crash in self.schedule.crashes:
            self._at(crash.start_ms, "crash", crash.node)
            self._at(crash.end_ms, "restart", crash.node)

    # --- building nodes --------------------------------------------------------------------

    def _new_node(self, index: int) -> SimNode:
        kind = self.schedule.byzantine.get(index)
        byzantine = (
            None
            if kind is None
            else Byzantine(kind, self.keys[index], self.chain_id, Random(self.seed * 1000 + index))
        )
        app = SimApp()
        replica = self._make_replica(index, app.start(0, ()))
        return SimNode(index=index, replica=replica, byzantine=byzantine, app=app)

    def _make_replica(self, index: int, start: ReplicaStart) -> Replica:
        return self.replica_factory(
            self.configs[index], self.keys[index], AcceptAll(), start, verifier=self.verifier
        )

    # --- running ---------------------------------------------------------------------------

    def run(self) -> SimReport:
        try:
            self._run()
        except LivenessViolation:
            raise
        except SafetyViolation as exc:
            if "reproduce:" in str(exc):
                raise
            raise SafetyViolation(f"{self.reproduce()}: {exc}") from exc
        except ConsensusError as exc:
            raise SafetyViolation(f"{self.reproduce()}: {type(exc).__name__}: {exc}") from exc
        return self.report()

    def reproduce(self) -> str:
        return (
            f"seed {self.seed} (reproduce: millchain sim --nodes {self.n} --seeds 1 "
            f"--first-seed {self.seed} {self.faults.cli_options()})"
        )

    def _run(self) -> None:
        deadline = self.faults.faulty_ms + self.faults.liveness_ms
        while True:
            if self._healed and self._live():
                return
            timer_ms = self._timers[0][0] if self._timers else None
            network_ms = self.network.next_at_ms()
            at_ms = min(t for t in (timer_ms, network_ms) if t is not None)
            if at_ms > deadline:
                missing = self._missing()
                raise LivenessViolation(
                    f"{self.reproduce()}: {len(missing)} accepted requests not committed at "
                    f"every honest replica {self.faults.liveness_ms} ms after healing; heights "
                    f"{[node.app.height for node in self.nodes]}, views "
                    f"{[node.replica.view for node in self.nodes]}"
                )
            self.now_ms = at_ms
            if network_ms is None or (timer_ms is not None and timer_ms <= network_ms):
                _, _, kind, index, data = heapq.heappop(self._timers)
                self._fire(kind, index, data)
            else:
                self._deliver()
            self.checker.after_step([node.replica for node in self.nodes], self._honest_set)

    def _live(self) -> bool:
        return self._missing_count == 0 and self.now_ms >= self.faults.faulty_ms + TICK_MS

    def _missing(self) -> list[bytes]:
        return [
            tx for tx in self.accepted if any(tx not in self.nodes[i].app.txs for i in self.honest)
        ]

    def report(self) -> SimReport:
        honest_views = [self.nodes[i].replica.view for i in self.honest]
        return SimReport(
            n=self.n,
            seed=self.seed,
            faults=self.faults.describe(),
            commits=min(self.nodes[i].app.height for i in self.honest),
            txs=len(self.accepted),
            view_changes=max(honest_views),
            messages=self.network.stats.messages_sent,
            bytes=self.network.stats.messages_bytes,
            tx_forwards=self.network.stats.sent - self.network.stats.messages_sent,
            sim_ms=self.now_ms,
            byzantine=tuple(sorted(self.schedule.byzantine)),
        )

    # --- timers ----------------------------------------------------------------------------

    def _at(self, at_ms: int, kind: str, index: int = -1, data: object = None) -> None:
        heapq.heappush(self._timers, (at_ms, self._order, kind, index, data))
        self._order += 1

    def _fire(self, kind: str, index: int, data: object) -> None:
        node = self.nodes[index] if index >= 0 else None
        match kind:
            case "tick":
                assert node is not None
                self._at(self.now_ms + TICK_MS, "tick", index)
                if node.up:
                    self._tick(node)
            case "propose":
                self._at(self.now_ms + PROPOSE_MS, "propose")
                for candidate in self.nodes:
                    if candidate.up:
                        self._propose(candidate)
            case "client":
                if self.now_ms < self.faults.faulty_ms:
                    self._at(self.now_ms + self.faults.tx_interval_ms, "client")
                    self._client_request()
            case "heal":
                self._heal()
            case "crash":
                assert node is not None
                if not self._healed:
                    self._crash(node)
            case "restart":
                assert node is not None
                self._restart(node)
            case "fetched":
                assert node is not None and isinstance(data, tuple)
                self._fetched(node, *data)

    def _tick(self, node: SimNode) -> None:
        self._feed(node, Tick(now_ms=self.now_ms))
        self._feed(node, RequestsPending(now_ms=self.now_ms, pending=bool(node.mempool)))
        stale = self.now_ms - REFORWARD_MS
        again = [tx for h, tx in node.mempool.items() if node.forwarded_ms.get(h, 0) <= stale]
        if again:
            self._forward(node, again)
        if self.now_ms - node.progress_ms >= SYNC_IDLE_MS:
            self._catch_up(node)

    def _heal(self) -> None:
        self._healed = True
        self.network.heal(HEALTHY)
        for node in self.nodes:
            if not node.up:
                self._restart(node)

    # --- clients and mempools --------------------------------------------------------------

    def _client_request(self) -> None:
        candidates = [i for i in self.honest if self.nodes[i].up]
        if not candidates:
            return
        node = self.nodes[self.rng.choice(candidates)]
        client = self.rng.randrange(CLIENTS)
        tx = Transaction.create(
            self.clients[client],
            chain_id=self.chain_id,
            nonce=self._nonces[client],
            contract="sim",
            method="noop",
            args={"n": len(self.accepted)},
        )
        self._nonces[client] += 1
        self.accepted[tx.hash] = self.now_ms
        self._missing_count += len(self.honest)
        self._admit(node, tx)
        self._forward(node, [tx])

    def _admit(self, node: SimNode, tx: Transaction) -> None:
        if tx.hash in node.mempool or tx.hash in node.app.txs:
            return
        node.mempool[tx.hash] = tx
        self._feed(node, RequestsPending(now_ms=self.now_ms, pending=True))

    def _forward(self, node: SimNode, txs: list[Transaction]) -> None:
        """Send `txs` to every peer (again, for requests still pending after REFORWARD_MS, as a
        client would retry: a forward lost in a partition must not lose the request)."""
        for tx in txs:
            node.forwarded_ms[tx.hash] = self.now_ms
            payload = tx.to_wire()
            for destination in range(self.n):
                if destination != node.index:
                    self.network.send(
                        now_ms=self.now_ms,
                        source=node.index,
                        destination=destination,
                        payload=payload,
                        tag=TX_TAG,
                    )

    def _propose(self, node: SimNode) -> None:
        replica = node.replica
        while replica.can_propose and len(replica.in_flight) < PIPELINE_DEPTH:
            batch = [tx for h, tx in node.mempool.items() if h not in node.proposed]
            if not batch:
                return
            batch = batch[:TXS_PER_BLOCK]
            node.proposed.update(tx.hash for tx in batch)
            self._feed(node, ProposeBatch(txs=tuple(batch), now_ms=self.now_ms))

    # --- messages --------------------------------------------------------------------------

    def _deliver(self) -> None:
        delivery = self.network.pop()
        if delivery is None:
            return
        node = self.nodes[delivery.destination]
        if delivery.tag == TX_TAG:
            tx = self._decoded_txs.get(delivery.payload)
            if tx is None:
                tx = self._decoded_txs[delivery.payload] = Transaction.from_wire(delivery.payload)
            self._admit(node, tx)
            return
        message = self._decoded.get(delivery.payload)
        if message is None:
            message = decode_message(delivery.payload, tx_bytes_max=TX_BYTES_MAX_DEFAULT)
            self._decoded[delivery.payload] = message
        node.wal.append(message)
        self._feed(node, MessageReceived(message=message, now_ms=self.now_ms))

    def _feed(self, node: SimNode, event: Event) -> None:
        """Hand `event` to the node's replica and carry out what follows, as the node does."""
        pending = [event]
        while pending:
            for action in node.replica.handle(pending.pop(0)):
                follow_up = self._apply(node, action)
                if follow_up is not None:
                    pending.append(follow_up)

    def _apply(self, node: SimNode, action: Action) -> Event | None:
        match action:
            case Broadcast():
                others = [d for d in range(self.n) if d != node.index]
                self._send(node, action.message, others)
            case Send():
                self._send(node, action.message, [action.to])
            case CommitBlock():
                return self._execute(node, action.block, action.certificate)
            case ViewEntered():
                node.view = action.view
                node.prepared = node.replica.prepared_proofs
                node.proposed.clear()
            case FetchBlocks():
                self._fetch(node, action)
            case CheckpointStable():
                node.stable = StableCheckpoint(
                    seq=action.seq,
                    block_hash=action.proof[0].block_hash,
                    state_digest=action.state_digest,
                    proof=action.proof,
                )
                node.wal = [msg for msg in node.wal if _relevant(msg, action.seq, node.view)]
                node.signed = [msg for msg in node.signed if _relevant(msg, action.seq, 0)]
            case StateDivergence():
                node.divergences.append(action)
                if node.honest:
                    raise SafetyViolation(f"{self.reproduce()}: replica {node.index}: {action}")
            case Rejected():
                node.rejected += 1
        return None

    def _send(self, node: SimNode, message: Message, destinations: list[int]) -> None:
        if node.honest:
            if message.sender == node.index:
                self._audit(node.index, message)
                node.signed.append(message)  # persisted before it leaves
                if isinstance(message, Commit):
                    self.checker.on_commit_vote(
                        node.index, message.view, message.seq, message.block_hash
                    )
            sends = [(d, message) for d in destinations]
        else:
            assert node.byzantine is not None
            sends = node.byzantine.rewrite(message, destinations)
        encoded: dict[int, bytes] = {}
        for destination, out in sends:
            payload = encoded.get(id(out))
            if payload is None:
                payload = encoded[id(out)] = encode_message(out)
            self.network.send(
                now_ms=self.now_ms, source=node.index, destination=destination, payload=payload
            )

    def _audit(self, index: int, message: Message) -> None:
        """No honest replica signs two different messages for one (kind, view, seq), across
        crashes too: this sees every message an honest replica sends, in every incarnation."""
        key = (index, *signing_key(message))
        content = sha256(signed_payload(message)[1])
        known = self._signatures.setdefault(key, content)
        if known != content:
            raise SafetyViolation(
                f"{self.reproduce()}: replica {index} signed two different messages for {key[1:]}"
            )

    def _execute(self, node: SimNode, block: Block, certificate: CommitCertificate) -> Event:
        if node.honest:
            self.checker.on_commit(node.index, block)
        digest = self._run_block(node, block, certificate)
        return BlockExecuted(height=block.height, state_digest=digest)

    def _run_block(self, node: SimNode, block: Block, certificate: CommitCertificate) -> bytes:
        fresh = [tx.hash for tx in block.txs if tx.hash not in node.app.txs]
        digest = node.app.execute(block, certificate)
        node.progress_ms = self.now_ms
        for tx_hash in fresh:
            node.mempool.pop(tx_hash, None)
            node.forwarded_ms.pop(tx_hash, None)
            if node.honest and tx_hash in self.accepted:
                self._missing_count -= 1
        return digest

    # --- state transfer --------------------------------------------------------------------

    def _fetch(self, node: SimNode, request: FetchBlocks) -> None:
        self._ask_for_blocks(node, request.from_height, request.to_height, request.hint)

    def _catch_up(self, node: SimNode) -> None:
        """What the node does after a restart and whenever it committed nothing for
        SYNC_IDLE_MS: fetch whatever blocks a peer has beyond its own. The replica cannot learn
        by itself that it is behind a cluster that has gone quiet: nobody sends it anything."""
        node.progress_ms = self.now_ms
        self._ask_for_blocks(node, node.app.height + 1, None, ())

    def _ask_for_blocks(
        self, node: SimNode, from_height: int, to_height: int | None, hint: tuple[int, ...]
    ) -> None:
        """Ask the first live peer that has block `from_height` for blocks up to `to_height`
        (None: all it has); the answer arrives after a round trip, unless the network loses it."""
        for source in [*hint, *range(self.n)]:
            peer = self.nodes[source]
            if source == node.index or not peer.up or peer.app.height < from_height:
                continue
            if not self.network.reachable(self.now_ms, node.index, source):
                return  # the request is lost; the replica asks again
            delay_ms = self.network.delay_ms() + self.network.delay_ms()
            self._at(self.now_ms + delay_ms, "fetched", node.index, (source, to_height))
            return

    def _fetched(self, node: SimNode, source: int, to_height: int | None) -> None:
        peer = self.nodes[source]
        if (
            not node.up
            or not peer.up
            or not self.network.reachable(self.now_ms, source, node.index)
        ):
            return
        top = peer.app.height if to_height is None else min(to_height, peer.app.height)
        if top <= node.app.height or node.app.height < node.replica.committed_height:
            return
        states: list[BlockState] = []
        for height in range(node.app.height + 1, top + 1):
            block, certificate, _ = peer.app.blocks[height]
            certificate.verify(chain_id=self.chain_id, validators=self.configs[0].validators)
            if node.honest:
                self.checker.on_commit(node.index, block)
            digest = self._run_block(node, block, certificate)
            states.append(BlockState(height=height, block_hash=block.hash, state_digest=digest))
        block, certificate, digest = node.app.blocks[top]
        event = BlocksTransferred(
            header=block.header,
            certificate=certificate,
            state_digest=digest,
            now_ms=self.now_ms,
            states=tuple(states),
        )
        self._feed(node, event)

    # --- crash and restart -----------------------------------------------------------------

    def _crash(self, node: SimNode) -> None:
        if not node.up:
            return
        node.up = False
        committed_to = {
            (msg.seq, msg.view, msg.block_hash) for msg in node.signed if isinstance(msg, Commit)
        }
        node.prepared_at_crash = {
            seq: (view, block_hash)
            for seq, (view, block_hash) in node.replica.prepared.items()
            if (seq, view, block_hash) in committed_to
        }
        self.network.crash(node.index)

    def _restart(self, node: SimNode) -> None:
        if node.up:
            return
        height, view = node.app.height, node.view
        # Like the node, which forgets what it signed only below a stable checkpoint: its own
        # checkpoint at or below the height it restarts at may still be needed by a peer.
        signed = tuple(
            msg
            for msg in node.signed
            if _relevant(msg, height, view) or isinstance(msg, Checkpoint)
        )
        node.replica = self._make_replica(
            node.index, node.app.start(view, signed, node.stable, node.prepared)
        )
        node.up = True
        node.proposed.clear()
        self.network.restore(node.index)
        replay = [msg for msg in node.wal if _relevant(msg, height, view)]
        node.wal = []
        for message in replay:
            node.wal.append(message)
            self._feed(node, MessageReceived(message=message, now_ms=self.now_ms))
        self._check_prepared_kept(node)
        self._catch_up(node)

    def _check_prepared_kept(self, node: SimNode) -> None:
        """A restarted honest replica holds the prepared certificate behind every commit it had
        signed (above its committed height) when it crashed: what it signed and received is
        all on disk. One it lost would be missing from its next view change, where the quorum
        that committed the block counts on it, and with f+1 replicas losing it a new view could
        replace a block committed elsewhere; this catches the loss itself, where a fork needs a
        rare schedule on top. (A certificate it holds without having voted may go: no quorum
        counts on it.)"""
        replica = node.replica
        if not node.honest:
            return
        now = replica.prepared
        floor = max(replica.committed_height, replica.low_watermark)
        for seq, (view, block_hash) in sorted(node.prepared_at_crash.items()):
            kept = now.get(seq)
            if seq > floor and (kept is None or kept[0] < view):
                raise SafetyViolation(
                    f"{self.reproduce()}: replica {node.index} restarted without the prepared "
                    f"certificate it held for seq {seq} (view {view}, block "
                    f"{block_hash.hex()[:16]}); its view changes would leave the block out"
                )


def run_sim(
    n: int,
    seed: int,
    faults: FaultConfig,
    *,
    replica_factory: ReplicaFactory = Replica,
    byzantine: Mapping[int, ByzantineKind] | None = None,
) -> SimReport:
    """One seeded run; raises SafetyViolation or LivenessViolation naming how to reproduce it.

    `byzantine` overrides which replicas are byzantine and how (tests pin a scenario with it).
    """
    if faults.byzantine > max_faulty(n):
        raise ValueError(f"at most f = {max_faulty(n)} byzantine replicas for n = {n}")
    simulation = Simulation(n, seed, faults, replica_factory=replica_factory, byzantine=byzantine)
    return simulation.run()


__all__ = ["ByzantineKind", "FaultConfig", "Partition", "SimReport", "Simulation", "run_sim"]
