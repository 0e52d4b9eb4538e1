"""The node: one validator process's state and the loop that drives its consensus replica.

Single writer: every input reaches the replica through `Node.feed`, which runs to completion
without awaiting, so the event loop serialises peer messages, client batches, timer ticks and
execution results, and nothing else touches the replica, the mempool or the database. Actions the
replica returns become queued HTTP sends and, for committed blocks, execution and one database
transaction per block.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

from consensus.actions import (
    Broadcast,
    CheckpointStable,
    CommitBlock,
    Rejected,
    Send,
    StateDivergence,
)
from consensus.errors import ConsensusError, InvalidBlock
from consensus.events import BlockExecuted, MessageReceived, ProposeBatch, Tick
from consensus.messages import decode_message, encode_message
from consensus.replica import Replica, ReplicaConfig, ReplicaStart
from contracts.runtime import BlockContext, Runtime
from ledger.block import Block
from ledger.certificate import CommitCertificate
from ledger.crypto import KeyPair
from ledger.errors import LedgerError, SignatureError
from ledger.genesis import Genesis
from ledger.tx import Transaction
from node import pause, wal
from node.errors import Rejection
from node.mempool import Mempool
from node.peers import PeerLink, Peers
from node.storage import Storage

log = logging.getLogger(__name__)

TICK_MS = 100
VERIFIED_CACHE_MAX = 200_000


def _classify(problem: str) -> tuple[str, int]:
    """A counter name and an HTTP status for the runtime's admission message."""
    if "already used" in problem:
        return "replayed_nonce", 409
    if "needs role" in problem:
        return "role_denied", 403
    if "suspended" in problem or "unknown sender" in problem:
        return "unknown_sender", 403
    return "invalid", 400


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(slots=True)
class Counters:
    txs_admitted: int = 0
    txs_committed: int = 0
    blocks_committed: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    messages_received: int = 0
    messages_sent: int = 0
    messages_rejected: int = 0

    def reject(self, reason: str) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + 1


@dataclass(frozen=True, slots=True)
class _FollowUp:
    """An input for the replica held back by a pause (the result of executing a block)."""

    event: Any


class _Validator:
    """Checks a proposed block's transactions for the replica: signatures, once per node."""

    def __init__(self, node: Node) -> None:
        self._node = node

    def validate(self, block: Block) -> None:
        for tx in block.txs:
            if self._node.is_verified(tx.hash):
                continue
            try:
                tx.verify()
            except SignatureError as exc:
                raise InvalidBlock(f"transaction {tx.hash.hex()[:16]}: {exc}") from exc
            self._node.mark_verified(tx.hash)


class Node:
    def __init__(
        self,
        *,
        name: str,
        genesis: Genesis,
        keys: KeyPair,
        storage: Storage,
        pipeline_depth: int = 8,
    ) -> None:
        index = genesis.validator_index(keys.public_key)
        if index is None:
            raise Rejection(f"node key {keys.public_key.hex()[:16]} is not a genesis validator")
        self.name = name
        self.index = index
        self.genesis = genesis
        self.params = genesis.params
        self.keys = keys
        self.storage = storage
        self.runtime = Runtime.default()
        self.pipeline_depth = pipeline_depth
        self.counters = Counters()
        self.started_ms = now_ms()
        self.last_commit_ms: int | None = None
        self.halted: str | None = None
        storage.initialise(
            genesis_hash=genesis.hash,
            writes=self.runtime.genesis_writes(genesis),
            digest=self.runtime.genesis_digest(genesis),
            time_ms=genesis.genesis_time_ms,
        )
        self.mempool = Mempool(
            capacity=self.params.mempool_txs_max,
            committed_nonce=lambda sender: self.runtime.account_nonce(self.storage, sender),
        )
        self._verified: dict[bytes, None] = {}
        self._waiters: dict[bytes, list[asyncio.Future[None]]] = {}
        self._wake_cutter = asyncio.Event()
        self._commit_event = asyncio.Event()
        head = storage.head()
        self.replica = Replica(
            ReplicaConfig(
                chain_id=genesis.chain_id,
                validators=genesis.validator_keys,
                index=index,
                checkpoint_interval=self.params.checkpoint_interval,
                watermark_window=self.params.watermark_window,
            ),
            keys,
            _Validator(self),
            ReplicaStart(
                height=head.height,
                block_hash=head.hash,
                timestamp_ms=head.timestamp_ms,
                state_height=head.height,
                state_digest=head.state_digest,
            ),
        )
        self.peers = Peers(
            self_index=index,
            links=[
                PeerLink(index=i, name=v.name, url=v.url)
                for i, v in enumerate(genesis.validators)
                if i != index
            ],
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._replaying = False
        self.pause_point: pause.PausePoint | None = None
        self.paused_at: dict[str, Any] | None = None
        self._held_events: deque[Any] = deque()
        self._held_actions: deque[Any] = deque()

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        self._replay()
        await self.peers.start()
        self._tasks = [
            asyncio.create_task(self._guarded(self._cutter()), name="block-cutter"),
            asyncio.create_task(self._guarded(self._ticker()), name="ticker"),
        ]
        log.info(
            "node %s (validator %d of %d) started at height %d",
            self.name,
            self.index,
            self.genesis.n,
            self.storage.head().height,
        )

    async def _guarded(self, work: Coroutine[Any, Any, None]) -> None:
        """Run a background loop; if it dies of a bug, halt the node loudly instead of limping."""
        try:
            await work
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("background task failed")
            self.halted = f"internal error in a background task: {exc!r}"

    def _replay(self) -> None:
        """Feed the logged inputs back through the live path (sends go out again: harmless)."""
        events = wal.replay(self.storage, tx_bytes_max=self.params.tx_bytes_max)
        self._replaying = True
        try:
            for event in events:
                self.feed(event)
        finally:
            self._replaying = False
        if events:
            log.info(
                "replayed %d logged inputs; at height %d", len(events), self.storage.head().height
            )

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.peers.stop()
        for futures in self._waiters.values():
            for future in futures:
                future.cancel()
        self.storage.close()

    # -- client inputs -----------------------------------------------------------------------

    def submit(self, raw: bytes) -> Transaction:
        """Admit a client transaction or raise a Rejection; forward it to the peers."""
        tx = self._admit(raw)
        self.peers.forward_txs([raw])
        return tx

    def _admit(self, raw: bytes) -> Transaction:
        self._check_running()
        try:
            tx = Transaction.from_wire(raw, bytes_max=self.params.tx_bytes_max)
        except LedgerError as exc:
            self.counters.reject("malformed")
            raise Rejection(f"malformed transaction: {exc}") from exc
        if tx.chain_id != self.genesis.chain_id:
            self.counters.reject("wrong_chain")
            raise Rejection(
                f"transaction is for chain {tx.chain_id!r}, this is {self.genesis.chain_id!r}"
            )
        if tx.hash in self.mempool or self.storage.has_tx(tx.hash):
            self.counters.reject("duplicate")
            raise Rejection(f"transaction {tx.hash.hex()} is already known", status=409)
        identity = self.runtime.identity_of(self.storage, tx.sender)
        if identity is None:
            self.counters.reject("unknown_sender")
            raise Rejection(f"sender {tx.sender.hex()} is not a known identity", status=403)
        problem = self.runtime.admission_error(self.storage, self.genesis.chain_id, tx)
        if problem is not None:
            reason, status = _classify(problem)
            self.counters.reject(reason)
            raise Rejection(problem, status=status)
        try:
            tx.verify()
        except SignatureError as exc:
            self.counters.reject("bad_signature")
            raise Rejection(f"bad signature: {exc}", status=401) from exc
        try:
            self.mempool.add(tx)
        except Rejection as exc:
            self.counters.reject(type(exc).__name__.lower())
            raise
        self.mark_verified(tx.hash)
        self.counters.txs_admitted += 1
        self._wake_cutter.set()
        return tx

    def receive_peer_batch(self, messages: Sequence[Any], txs: Sequence[Any]) -> None:
        """Feed a peer's batch: forwarded transactions, then consensus messages."""
        if self.paused_at is not None:
            raise Rejection("node is paused by its operator; retry later", status=503)
        for raw in txs:
            if not isinstance(raw, bytes):
                self.counters.reject("peer_malformed")
                continue
            try:
                self._admit(raw)
            except Rejection:
                continue  # counted by _admit; a forwarded duplicate is normal
        for raw in messages:
            self.counters.messages_received += 1
            if not isinstance(raw, bytes):
                self.counters.messages_rejected += 1
                continue
            try:
                message = decode_message(raw, tx_bytes_max=self.params.tx_bytes_max)
            except (ConsensusError, LedgerError) as exc:
                self.counters.messages_rejected += 1
                log.debug("dropped a malformed consensus message: %s", exc)
                continue
            self.feed(MessageReceived(message=message, now_ms=now_ms()))

    async def wait_committed(self, tx_hash: bytes, timeout_s: float) -> bool:
        if self.storage.has_tx(tx_hash):
            return True
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(tx_hash, []).append(future)
        try:
            await asyncio.wait_for(asyncio.shield(future), timeout_s)
        except TimeoutError:
            return self.storage.has_tx(tx_hash)
        finally:
            waiters = self._waiters.get(tx_hash)
            if waiters is not None and future in waiters:
                waiters.remove(future)
                if not waiters:
                    del self._waiters[tx_hash]
        return True

    # -- the single writer -------------------------------------------------------------------

    def feed(self, event: Any) -> None:
        """Log one input, hand it to the replica, and carry out every action that follows."""
        if self.halted is not None:
            return
        if self.paused_at is not None:
            self._held_events.append(event)
            return
        if not self._replaying:
            wal.record(self.storage, event, next_seq=self.replica.next_seq)
        self._carry_out_all(deque(self.replica.handle(event)))

    def _carry_out_all(self, actions: deque[Any]) -> None:
        while actions:
            action = actions.popleft()
            point = self.pause_point
            if point is not None and self._hits_pause(action):
                if not pause.holds_before(point.phase):
                    self._carry_out(action)  # its follow-up waits until the node resumes
                else:
                    actions.appendleft(action)
                self._held_actions.extend(actions)
                return
            follow_up = self._carry_out(action)
            if follow_up is not None:
                actions.extend(self.replica.handle(follow_up))

    def _hits_pause(self, action: Any) -> bool:
        assert self.pause_point is not None
        hit, seq = pause.matches(self.pause_point, action)
        if hit:
            self.paused_at = {"phase": str(self.pause_point.phase), "seq": seq}
            self.pause_point = None
            log.warning("paused at %s of sequence %s", self.paused_at["phase"], seq)
        return hit

    def arm_pause(self, point: pause.PausePoint) -> None:
        self.pause_point = point
        log.warning("pause armed at %s (sequence >= %d)", point.phase, point.seq_min)

    def resume(self) -> None:
        """Leave a pause: carry out what was held, then the inputs that arrived meanwhile."""
        self.pause_point = None
        self.paused_at = None
        held_actions, self._held_actions = self._held_actions, deque()
        held_events, self._held_events = self._held_events, deque()
        self._carry_out_all(held_actions)
        for event in held_events:
            self.feed(event)

    def _carry_out(self, action: Any) -> Any:
        match action:
            case Broadcast(message=message):
                self.peers.broadcast(encode_message(message))
                self.counters.messages_sent += len(self.peers.links)
            case Send(to=to, message=message):
                self.peers.send(to, encode_message(message))
                self.counters.messages_sent += 1
            case CommitBlock(block=block, certificate=certificate):
                executed = self._execute(block, certificate)
                if self.paused_at is not None:
                    self._held_actions.appendleft(_FollowUp(executed))
                    return None
                return executed
            case _FollowUp(event=event):
                return event
            case Rejected(sender=sender, reason=reason):
                self.counters.messages_rejected += 1
                log.debug("rejected a message from validator %s: %s", sender, reason)
            case CheckpointStable(seq=seq):
                pruned = self.storage.wal_prune(stable_seq=seq, view=self.replica.view)
                log.info("checkpoint %d is stable; pruned %d log entries", seq, pruned)
            case StateDivergence(height=height, ours=ours, quorum=quorum):
                self._halt(
                    f"state digest at height {height} is {ours.hex()[:16]} here but "
                    f"{quorum.hex()[:16]} at a quorum of validators; stopping"
                )
            case _:
                log.warning("unhandled consensus action %r", action)
        return None

    def _execute(self, block: Block, certificate: CommitCertificate) -> BlockExecuted:
        head = self.storage.head()
        context = BlockContext(
            chain_id=self.genesis.chain_id,
            height=block.height,
            timestamp_ms=block.header.timestamp_ms,
            proposer=block.header.proposer,
        )
        result = self.runtime.execute_block(self.storage, context, block.txs, head.state_digest)
        self.storage.commit_block(block, certificate, result)
        self.mempool.remove_committed(block.txs)
        self.counters.blocks_committed += 1
        self.counters.txs_committed += len(block.txs)
        self.last_commit_ms = now_ms()
        for tx in block.txs:
            self._verified.pop(tx.hash, None)
            for future in self._waiters.pop(tx.hash, []):
                if not future.done():
                    future.set_result(None)
        self._commit_event.set()
        self._commit_event = asyncio.Event()
        self._wake_cutter.set()
        return BlockExecuted(height=block.height, state_digest=result.state_digest)

    def _halt(self, reason: str) -> None:
        log.critical(reason)
        self.halted = reason

    def _check_running(self) -> None:
        if self.halted is not None:
            raise Rejection(f"node halted: {self.halted}", status=503)

    # -- verified-signature cache ------------------------------------------------------------

    def is_verified(self, tx_hash: bytes) -> bool:
        return tx_hash in self._verified

    def mark_verified(self, tx_hash: bytes) -> None:
        if len(self._verified) >= VERIFIED_CACHE_MAX:
            self._verified.pop(next(iter(self._verified)))
        self._verified[tx_hash] = None

    # -- timers ------------------------------------------------------------------------------

    async def _cutter(self) -> None:
        """Propose blocks while this node is primary: at once when a block's worth is ready,
        else every block interval; at most `pipeline_depth` blocks in flight."""
        interval_s = self.params.block_interval_ms / 1000
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake_cutter.wait(), interval_s)
            self._wake_cutter.clear()
            self._propose_ready()

    def _propose_ready(self) -> None:
        while (
            self.halted is None
            and self.replica.is_primary
            and self.replica.can_propose
            and len(self.replica.in_flight) < self.pipeline_depth
        ):
            batch = self.mempool.cut(self.params.block_txs_max)
            if not batch:
                return
            self.feed(ProposeBatch(txs=tuple(batch), now_ms=now_ms()))

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(TICK_MS / 1000)
            self.feed(Tick(now_ms=now_ms()))

    # -- reads -------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        head = self.storage.head()
        return {
            "name": self.name,
            "index": self.index,
            "chain_id": self.genesis.chain_id,
            "height": head.height,
            "head": head.hash.hex(),
            "state_digest": head.state_digest.hex(),
            "timestamp_ms": head.timestamp_ms,
            "view": self.replica.view,
            "primary": self.replica.primary,
            "primary_name": self.genesis.validators[self.replica.primary].name,
            "is_primary": self.replica.is_primary,
            "mempool": len(self.mempool),
            "last_commit_ms": self.last_commit_ms,
            "halted": self.halted,
            "peers": self.peers.status(),
            "counters": {
                "txs_admitted": self.counters.txs_admitted,
                "txs_committed": self.counters.txs_committed,
                "blocks_committed": self.counters.blocks_committed,
                "messages_received": self.counters.messages_received,
                "messages_sent": self.counters.messages_sent,
                "messages_rejected": self.counters.messages_rejected,
                "rejected": dict(sorted(self.counters.rejected.items())),
            },
        }
