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
import functools
import hashlib
import logging
import time
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp

from consensus import messages as m
from consensus.actions import (
    Broadcast,
    CheckpointStable,
    CommitBlock,
    FetchBlocks,
    Rejected,
    Send,
    StateDivergence,
    ViewEntered,
)
from consensus.config import SYNC_IDLE_MS, ChainPoint
from consensus.errors import ConsensusError, InvalidBlock, InvalidMessage
from consensus.events import (
    BlockExecuted,
    BlockState,
    BlocksTransferred,
    MessageReceived,
    ProposeBatch,
    RequestsPending,
    Tick,
)
from consensus.messages import (
    Commit,
    Message,
    NewView,
    Prepare,
    PrePrepare,
    ViewChange,
    decode_message,
    encode_message,
    kind_of,
)
from consensus.normalcase import VIEWS_AHEAD_MAX
from consensus.replica import Replica, ReplicaConfig, ReplicaStart
from contracts.runtime import BlockResult, Runtime
from ledger.block import Block
from ledger.cache import FifoCache
from ledger.certificate import CommitCertificate
from ledger.crypto import Domain, KeyPair
from ledger.encoding import decode, encode
from ledger.errors import EncodingError, LedgerError, SignatureError
from ledger.genesis import Genesis
from ledger.tx import Transaction
from node import pause, wal
from node.byzantine import Byzantine, ByzantineSpec, Mode
from node.catchup import PeerOrder, Transferred, TransferStats, catch_up, follow
from node.commits import CommitFeed
from node.errors import Paused, Rejection
from node.executor import execute_and_store, store_record
from node.faults import FaultInjector
from node.history import encode_proof, stored_stable
from node.mempool import GAPPED_TTL_MS, PENDING_QUERY_MAX, Mempool
from node.oracle_runner import OracleRunner
from node.peer_auth import link_headers
from node.peers import PeerLink, Peers
from node.protocol import PROTOCOL_VERSION
from node.stages import StageClock, clock_ms
from node.storage import Storage

log = logging.getLogger(__name__)
T = TypeVar("T")

TICK_MS = 100
FLOOD_TICK_MS = 50
VERIFIED_CACHE_MAX = 200_000
# Decoded peer messages kept for retransmissions; a pre-prepare pins its block's transactions.
DECODED_CACHE_MAX = 128
# Client batches and forwarded transactions wait in one queue and are admitted a slice at a
# time, yielding to the loop between slices, so admission never holds up consensus messages for
# long: under overload the protocol keeps its pace and the queue, not the round trips, grows.
# Past the bound, clients get 503 (retry later) and forwarded transactions are dropped (a
# proposed block brings them again, checked then).
ADMISSION_BACKLOG_MAX = 8_192
ADMIT_SLICE = 64
ORACLE_RESTART_S = 5.0
# While transactions wait for admission at the primary (it is the bottleneck: the cluster is
# saturated), a partial block waits this many block intervals to fill, not one: every block costs
# each node a few milliseconds whatever its size (signatures, messages, a database commit), so
# under saturation blocks of a few hundred transactions commit about a tenth more a second than
# blocks cut every interval. 16 rather than 8: at n = 7, whose blocks held about 280
# transactions, they hold about 550 and the cluster commits about a tenth more; at n = 4 the
# primary mostly proposes with no block in flight, where it does not wait, and throughput did
# not move beyond the noise. Without a backlog, latency comes first.
FILL_INTERVALS_BACKLOGGED = 16
# A backup holding a sender's next transaction asks the primary how far it holds the sender's run
# when the sender's nonce has not moved for half the view-change timeout, and forwards it what it
# lacks (up to this many): a full pool or admission queue may have refused it, and the primary
# would then never propose the sender's later ones (node/mempool.py). Checked every
# RESEND_SCAN_MS.
RESEND_TXS_MAX = 128
RESEND_SCAN_MS = 250
RESEND_QUERY_TIMEOUT_S = 2.0
# The primary's answer is {"next_nonces": [int, ...], "queued_since_ms"}: two lists and maps.
PENDING_ANSWER_CONTAINERS = 2
RESEND_SKEW_MS = 1_000  # clock skew and delivery time allowed between two validators
EXPIRE_SCAN_MS = 10_000  # how often the pool drops what waited too long behind a gap
VIEW_HISTORY_MAX = 1000  # views entered that the node remembers for the explorer
SIGNATURE_CHECKS_MAX = 4096  # consensus signatures remembered as checked (node -> replica)
# Signatures of logged peer messages remembered, to skip exact duplicates: more than a watermark
# window's messages (what an outage retransmits) at n = 10, about 1 MiB.
LOGGED_MAX = 8_192
# Blocks that must commit past a stalled sender, beyond two per sender waiting here, before the
# node tells its replica that the primary skips it (see _feed_pending).
STARVED_BLOCKS_MIN = 4
# Blocks with a transaction of this contract may suspend, remove or re-role a sender.
IDENTITY_CONTRACT = "identity"


@dataclass(slots=True)
class _Admission:
    """Transactions waiting to be admitted: a client's batch (its outcomes go to `done`) or a
    peer's forwarded ones (`done` is None: nobody waits for them)."""

    raws: list[Any]
    done: asyncio.Future[list[Transaction | Rejection]] | None
    # Forwarded ones: whether they count as clients' (not on a validator's link: see
    # node/peer_auth.py).
    from_client: bool = False
    outcomes: list[Transaction | Rejection] = field(default_factory=list)
    arrived_ms: float = field(default_factory=clock_ms)


def _classify(problem: str) -> tuple[str, int]:
    """A counter name and an HTTP status for the runtime's admission message."""
    if "already used" in problem:
        return "replayed_nonce", 409
    if "needs role" in problem:
        return "role_denied", 403
    if "suspended" in problem or "unknown sender" in problem:
        return "unknown_sender", 403
    return "invalid", 400


def _already_known(tx: Transaction) -> Rejection:
    return Rejection(f"transaction {tx.hash.hex()} is already known", status=409)


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
    messages_stale: int = 0  # too late to matter (at or below the low watermark); not an attack
    view_changes: int = 0
    oracle_reports: int = 0
    oracle_final_predictions: int = 0
    messages_sent_by_type: dict[str, int] = field(default_factory=dict)
    messages_received_by_type: dict[str, int] = field(default_factory=dict)
    blocks_transferred: int = 0
    txs_expired: int = 0
    fetches: int = 0
    txs_resent: int = 0

    def reject(self, reason: str) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + 1


def _decoded_from_outside(decode: Callable[[bytes], T], raw: bytes) -> T:
    """`decode(raw)` for bytes a client or a peer sent. Decoding only reads them, so when the
    decoder fails in a way it does not mean to (a bug), the bytes are refused as malformed and
    the failure logged, instead of answering 500 or ending the task that admits transactions
    (which halts the node, and a few such requests would halt a cluster)."""
    try:
        return decode(raw)
    except (LedgerError, ConsensusError):
        raise
    except Exception as exc:  # logged in full below; the bytes are refused
        log.error("decoding %d bytes from outside failed: %r", len(raw), exc, exc_info=True)
        raise EncodingError(f"cannot be decoded ({type(exc).__name__}: {exc})") from exc


@dataclass(frozen=True, slots=True)
class _FollowUp:
    """An input for the replica held back by a pause (the result of executing a block)."""

    event: Any


class _Validator:
    """Checks a proposed block for the replica: its size against the genesis limit, and its
    transactions' signatures, once per node."""

    def __init__(self, node: Node) -> None:
        self._node = node

    def validate(self, block: Block) -> None:
        txs_max = self._node.params.block_txs_max
        if len(block.txs) > txs_max:
            raise InvalidBlock(
                f"block {block.height} has {len(block.txs)} transactions; the genesis "
                f"limit block_txs_max is {txs_max}"
            )
        for tx in block.txs:
            if self._node.is_verified(tx):
                continue
            try:
                tx.verify()
            except SignatureError as exc:
                raise InvalidBlock(f"transaction {tx.hash.hex()[:16]}: {exc}") from exc
            self._node.mark_verified(tx)


class Node:
    def __init__(
        self,
        *,
        name: str,
        genesis: Genesis,
        keys: KeyPair,
        storage: Storage,
        pipeline_depth: int = 8,
        observer: bool = False,
        oracle_keys: KeyPair | None = None,
        models_dir: Path | None = None,
        byzantine: ByzantineSpec | None = None,
        faults: FaultInjector | None = None,
    ) -> None:
        """`faults`: the rules of the node's links (FaultInjector.kept_at keeps them across
        restarts); none, in memory, if not given."""
        found = genesis.validator_index(keys.public_key)
        if byzantine is not None and (observer or found is None):
            raise Rejection("only a validator can be byzantine")
        if observer and found is not None:
            raise Rejection("an observer must not use a validator's key")
        if not observer and found is None:
            raise Rejection(f"node key {keys.public_key.hex()[:16]} is not a genesis validator")
        if found is not None and genesis.validators[found].name != name:
            # Two processes signing with one validator's key would equivocate as that validator.
            raise Rejection(
                f"node {name} holds the key of validator {genesis.validators[found].name}; "
                "each node must use its own key file"
            )
        index = -1 if found is None else found
        self.name = name
        self.index = index
        self.observer = observer
        self.genesis = genesis
        self.params = genesis.params
        self.keys = keys
        self.storage = storage
        self.runtime = Runtime.default()
        self.pipeline_depth = pipeline_depth
        self.block_bytes_max = genesis.block_bytes_max
        self.counters = Counters()
        self.transfer = TransferStats()
        self.peer_order = PeerOrder()  # which peers catch-ups ask first, learned across them
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
        # tx hash -> the signature checked for it
        self._verified: FifoCache[bytes, bytes] = FifoCache(VERIFIED_CACHE_MAX)
        self.commit_feed = CommitFeed()
        self.stages = StageClock()
        # sha256 of a peer message's bytes -> message
        self._decoded: FifoCache[bytes, Message] = FifoCache(DECODED_CACHE_MAX)
        self._waiters: dict[bytes, list[asyncio.Future[None]]] = {}
        self._wake_cutter = asyncio.Event()
        self._admissions: deque[_Admission] = deque()
        self._admission_backlog = 0  # transactions in _admissions not admitted yet
        self._admissions_ready = asyncio.Event()
        # A new primary proposes only once it has executed every block below its first
        # sequence number of the view: blocks the new view re-proposes, or that committed
        # elsewhere while this node was away, hold transactions still in its mempool.
        self._propose_after_height = 0
        self._last_proposal_ms = 0
        # Consensus signatures checked, good or forged, by (key, domain, payload, signature):
        # the node checks a message before logging it, and the replica then does not check it
        # again (a forged one costs a flood's sender one check, not two).
        self._signature_checks: FifoCache[tuple[bytes, Domain, bytes, bytes], bool] = FifoCache(
            SIGNATURE_CHECKS_MAX
        )
        # The signatures of the peer messages logged lately: an exact duplicate (a retransmitted
        # pre-prepare carries its whole block) is not logged again.
        self._logged: FifoCache[bytes, bool] = FifoCache(LOGGED_MAX)
        self._block_validator = _Validator(self)
        self.replica: Replica | None = (
            None
            if observer
            else Replica(
                ReplicaConfig(
                    chain_id=genesis.chain_id,
                    validators=genesis.validator_keys,
                    index=index,
                    checkpoint_interval=self.params.checkpoint_interval,
                    watermark_window=self.params.watermark_window,
                    view_change_timeout_ms=self.params.view_change_timeout_ms,
                    block_bytes_max=self.block_bytes_max,
                ),
                keys,
                self._block_validator,
                self._replica_start(),
                verifier=self._message_verifier,
            )
        )
        # An observer talks to every validator (to forward client transactions); a validator
        # to every other one.
        self.faults = FaultInjector() if faults is None else faults
        self.peers = Peers(
            self_index=index,
            faults=self.faults,
            links=[
                PeerLink(index=i, name=v.name, url=v.url)
                for i, v in enumerate(genesis.validators)
                if i != index
            ],
            proof=None if found is None else self._link_proof,
        )
        storage.on_failure = self._storage_failed
        self._tasks: list[asyncio.Task[None]] = []
        self._replaying = False
        self.pause_point: pause.PausePoint | None = None
        self.paused_at: dict[str, Any] | None = None
        self._held_events: deque[Any] = deque()
        # The latest Tick and RequestsPending held by a pause, by type: they only say what time
        # it is and whether requests wait, and the ticker makes ten a second of each for as
        # long as a pause lasts.
        self._held_timers: dict[type, Tick | RequestsPending] = {}
        self._held_actions: deque[Any] = deque()
        self._fetch_task: asyncio.Task[None] | None = None
        self._pending_fed = False
        # (view, entered at ms, height) of the newest VIEW_HISTORY_MAX views entered (the
        # explorer shows them; counters.view_changes counts them all).
        self.view_history: deque[tuple[int, int, int]] = deque(maxlen=VIEW_HISTORY_MAX)
        self.oracle: OracleRunner | None = None
        if oracle_keys is not None and not observer:
            self.oracle = OracleRunner(
                keys=oracle_keys,
                chain_id=genesis.chain_id,
                storage=storage,
                models_dir=models_dir or Path("models"),
                next_nonce=self.mempool.next_nonce,
                submit=functools.partial(self.submit, from_client=False),
                # Others' transactions wait here: the node is under load.
                busy=lambda: len(self.mempool) > self.mempool.pending_count(oracle_keys.public_key),
                tx_bytes_max=genesis.params.tx_bytes_max,
            )
        self._session: aiohttp.ClientSession | None = None
        self.byzantine: Byzantine | None = (
            None
            if byzantine is None
            else Byzantine(byzantine, keys=keys, chain_id=genesis.chain_id, index=index)
        )

    def _replica_start(self) -> ReplicaStart:
        """Where a (re)started replica begins: the stored head, its view, what it signed, and
        the latest stable checkpoint it kept the proof of."""
        head, genesis = self.storage.head(), self.storage.genesis_head()
        stored = self.storage.block(head.height) if head.height else None
        proof = self.storage.latest_checkpoint_proof(head.height)
        return ReplicaStart(
            height=head.height,
            block_hash=head.hash,
            timestamp_ms=head.timestamp_ms,
            state_height=head.height,
            state_digest=head.state_digest,
            view=wal.view(self.storage),
            header=None if stored is None else stored.block.header,
            certificate=None if stored is None else stored.certificate,
            signed=wal.signed(self.storage, tx_bytes_max=self.params.tx_bytes_max),
            genesis=ChainPoint.genesis(
                block_hash=genesis.hash,
                timestamp_ms=genesis.timestamp_ms,
                state_digest=genesis.state_digest,
            ),
            stable=None if proof is None else stored_stable(self.genesis, *proof),
            prepared=wal.prepared(self.storage, tx_bytes_max=self.params.tx_bytes_max),
        )

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        self.storage.checkpoint_in_background()
        self.storage.load_tx_filter()  # before any admission: see Storage.load_tx_filter
        await self.peers.start()
        if self.replica is None:
            # An observer follows the chain, and admits clients' transactions to forward them.
            self._tasks = [
                asyncio.create_task(self._guarded(self._follow()), name="follower"),
                asyncio.create_task(self._guarded(self._admit_queued()), name="admission"),
                asyncio.create_task(self._guarded(self._expirer()), name="expirer"),
            ]
            log.info("observer %s started at height %d", self.name, self.storage.head().height)
            return
        self._replay()
        self._tasks = [
            asyncio.create_task(self._guarded(self._cutter()), name="block-cutter"),
            asyncio.create_task(self._guarded(self._ticker()), name="ticker"),
            asyncio.create_task(self._guarded(self._sync_when_idle()), name="idle-sync"),
            asyncio.create_task(self._guarded(self._admit_queued()), name="admission"),
            asyncio.create_task(self._guarded(self._resender()), name="resender"),
            asyncio.create_task(self._guarded(self._expirer()), name="expirer"),
        ]
        self._start_fetch(self.storage.head().height + 1, None, ())  # catch up after a restart
        if self.oracle is not None:
            self._tasks.append(asyncio.create_task(self._oracle_supervised(), name="oracle"))
        if self.byzantine is not None:
            log.warning("BYZANTINE node: %s (test-only)", self.byzantine.spec)
            if self.byzantine.mode is Mode.FLOOD:
                self._tasks.append(asyncio.create_task(self._guarded(self._flood()), name="flood"))
        log.info(
            "node %s (validator %d of %d) started at height %d",
            self.name,
            self.index,
            self.genesis.n,
            self.storage.head().height,
        )

    async def _follow(self) -> None:
        """An observer follows the chain: certified blocks from the validators, checked
        offline and executed, without taking part in consensus."""
        assert self._session is not None
        urls = [v.url for v in self.genesis.validators]
        await follow(
            self._session,
            self.genesis,
            self.storage,
            urls,
            apply=self._apply_followed,
            stats=self.transfer,
            order=self.peer_order,
        )

    def _apply_followed(self, items: Sequence[Transferred]) -> int:
        with self.storage.batch(), self.storage.bulk():
            for item in items:
                self._store_transferred(item)
        self.counters.blocks_transferred += len(items)
        return len(items)

    def _store_transferred(self, item: Transferred) -> bytes:
        """Store a fetched block, its checked record as it is or executed here; returns the
        state digest after it."""
        certified, record = item.certified, item.record
        if record is None:
            block = certified.block()
            result = execute_and_store(
                self.runtime, self.storage, self.genesis, block, certified.certificate
            )
            self._after_commit(block, result)
            return result.state_digest
        store_record(self.storage, certified.header, record)
        if len(self.mempool):  # else there is nothing its transactions could take out of it
            block = certified.block()
            self.mempool.remove_committed(block.txs, self._still_admissible)
            self._drop_refused_after(block)
        finals = sum(1 for event in record.events if event[1:3] == ("oracle", "final"))
        self._note_committed(record.height, certified.tx_ids, finals)
        return record.state_digest

    async def _guarded(self, work: Coroutine[Any, Any, None]) -> None:
        """Run a background loop; if it dies of a bug, halt the node loudly instead of limping."""
        try:
            await work
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("background task failed")
            self.halted = f"internal error in a background task: {exc!r}"

    async def _oracle_supervised(self) -> None:
        """Run the oracle, starting it again ORACLE_RESTART_S after it dies of a bug: its
        reports are this validator's opinion, and a failure there must not halt consensus (every
        validator runs the same code on the same readings, so a halt would stop the chain)."""
        assert self.oracle is not None
        while True:
            try:
                await self.oracle.run()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # logged in full below; the oracle starts over
                log.exception("the oracle failed; starting it again in %s s", ORACLE_RESTART_S)
                self.oracle.last_error = f"failed, started again: {exc!r}"[:500]
                self.oracle.restarts += 1
            await asyncio.sleep(ORACLE_RESTART_S)

    def _replay(self) -> None:
        """Feed the logged peer messages back through the live path (resends are harmless)."""
        events = wal.received(self.storage, tx_bytes_max=self.params.tx_bytes_max)
        self._replaying = True
        try:
            for event in events:
                self.feed(event)
        finally:
            self._replaying = False
        log.info(
            "restored view %s and replayed %d logged messages; at height %d",
            None if self.replica is None else self.replica.view,
            len(events),
            self.storage.head().height,
        )

    async def stop(self) -> None:
        tasks = [*self._tasks, *([self._fetch_task] if self._fetch_task else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.peers.stop()
        if self._session is not None:
            await self._session.close()
        for futures in self._waiters.values():
            for future in futures:
                future.cancel()
        for admission in self._admissions:
            if admission.done is not None:
                admission.done.cancel()
        self.storage.close()

    # -- client inputs -----------------------------------------------------------------------

    def submit(self, raw: bytes, *, from_client: bool = True) -> Transaction:
        """Admit a client transaction or raise a Rejection; forward it to the peers.
        `from_client=False`: this validator's own (its oracle's reports), which may fill the
        pool as far as forwarded ones may (see Mempool.client_max)."""
        with self.storage.batch():
            tx = self._admit(raw, from_client=from_client)
        self.peers.forward_txs([raw])
        return tx

    async def submit_batch(self, raws: list[Any]) -> list[Transaction | Rejection]:
        """Queue a client's batch for admission (see ADMISSION_BACKLOG_MAX) and return each
        transaction's outcome in order once admitted; a Rejection (503) if the queue is full."""
        self._check_running()
        if self._admission_backlog + len(raws) > ADMISSION_BACKLOG_MAX:
            self.counters.reject("busy")
            raise Rejection(
                f"node is busy: {self._admission_backlog} transactions wait for admission; "
                "retry later",
                status=503,
            )
        done: asyncio.Future[list[Transaction | Rejection]] = (
            asyncio.get_running_loop().create_future()
        )
        admission = _Admission(raws=raws, done=done)
        self._queue_admission(admission)
        outcomes = await done
        self.stages.admitted(admission.arrived_ms)
        return outcomes

    @property
    def admission_backlog(self) -> int:
        """Transactions queued for admission (client batches and forwarded ones)."""
        return self._admission_backlog

    def _queue_admission(self, admission: _Admission) -> None:
        self._admissions.append(admission)
        self._admission_backlog += len(admission.raws)
        self._admissions_ready.set()

    def submit_many(
        self, raws: Sequence[Any], arrived_ms: float | None = None
    ) -> list[Transaction | Rejection]:
        """Admit a client's batch: each transaction on its own (one bad one does not spoil the
        rest); the admitted ones are forwarded together. Returns each one's outcome in order."""
        self._check_running()
        outcomes: list[Transaction | Rejection] = []
        admitted: list[Transaction] = []
        with self.storage.batch():
            for raw in raws:
                if not isinstance(raw, bytes):
                    self.counters.reject("malformed")
                    outcomes.append(Rejection("each transaction must be msgpack bytes"))
                    continue
                try:
                    tx = self._admit(raw, arrived_ms, from_client=True)
                except Rejection as exc:
                    outcomes.append(exc)
                    continue
                outcomes.append(tx)
                admitted.append(tx)
        if admitted:
            self.peers.forward_txs([tx.wire for tx in admitted])
            if arrived_ms is not None:  # it waited for admission: the forward is what counts
                self.mempool.mark_sent((tx.hash for tx in admitted), clock_ms())
        return outcomes

    def _admit(
        self, raw: bytes, arrived_ms: float | None = None, *, from_client: bool
    ) -> Transaction:
        """Admit one transaction (`arrived_ms`: when its batch reached this node; now if None;
        `from_client`: a client sent it here, rather than a peer forwarding it)."""
        self._check_running()
        try:
            tx = _decoded_from_outside(
                functools.partial(Transaction.from_wire, bytes_max=self.params.tx_bytes_max), raw
            )
        except LedgerError as exc:
            self.counters.reject("malformed")
            raise Rejection(f"malformed transaction: {exc}") from exc
        if tx.chain_id != self.genesis.chain_id:
            self.counters.reject("wrong_chain")
            raise Rejection(
                f"transaction is for chain {tx.chain_id!r}, this is {self.genesis.chain_id!r}"
            )
        if tx.hash in self.mempool:
            self.counters.reject("duplicate")
            raise _already_known(tx)
        refused = self._refusal(tx)
        if refused is not None:
            reason, rejection = refused
            self.counters.reject(reason)
            raise rejection
        try:
            # Before the signature check, the costliest step.
            self.mempool.check_room(tx, from_client=from_client)
        except Rejection as exc:
            self.counters.reject(type(exc).__name__.lower())
            raise
        if not self.is_verified(tx):  # a proposed block may have brought it first
            try:
                tx.verify()
            except SignatureError as exc:
                self.counters.reject("bad_signature")
                raise Rejection(f"bad signature: {exc}", status=401) from exc
        self.mempool.add(tx, clock_ms() if arrived_ms is None else arrived_ms)
        self.mark_verified(tx)
        self.counters.txs_admitted += 1
        self._wake_cutter.set()
        if not self._pending_fed:
            self._feed_pending()
        return tx

    def _refusal(self, tx: Transaction) -> tuple[str, Rejection] | None:
        """Why admission refuses `tx` against the chain as it stands, or None: the counter's
        reason and the Rejection. Asked of a new transaction, and of a pending one whose block
        failed it at a gate, which stays pending only if this says None (`_still_admissible`).
        """
        # Committed already, it is a duplicate only if the inclusion that counts succeeded. A
        # failed one goes on to the gates below: a failure past them used the nonce, which the
        # nonce gate refuses; one that failed a gate used nothing and may run now (a faulty
        # primary included it early, say, or its sender was suspended then).
        if self.storage.tx_succeeded(tx.hash):
            return "duplicate", _already_known(tx)
        # The sender's identity, its nonce, the method, its roles and arguments, as execution
        # would check them (an unknown sender is refused there too: 403).
        problem = self.runtime.admission_error(self.storage, self.genesis.chain_id, tx)
        if problem is not None:
            reason, status = _classify(problem)
            return reason, Rejection(problem, status=status)
        return None

    def _still_admissible(self, tx: Transaction) -> bool:
        """Whether a pending transaction a committed block failed at a gate, its nonce unused,
        stays pending: admission would take the same bytes now (see Mempool.remove_committed).
        Its signature and room in the pool were checked when it was admitted."""
        return self._refusal(tx) is None

    def receive_peer_batch(
        self, messages: Sequence[Any], txs: Sequence[Any], *, from_validator: bool
    ) -> None:
        """Feed a peer's batch: consensus messages, then forwarded transactions (admitted as
        clients' unless `from_validator`: the batch came on a validator's link)."""
        if self.paused_at is not None:
            raise Paused("node is paused by its operator; retry later")
        # One database transaction for the whole batch: its log records and what this node
        # signs in answer are committed before the handler returns, so before anything is sent.
        with self.storage.batch():
            self._receive_peer_batch(messages, txs, from_validator)

    def _receive_peer_batch(
        self, messages: Sequence[Any], txs: Sequence[Any], from_validator: bool
    ) -> None:
        # Consensus messages now, forwarded transactions later: every round trip of the
        # protocol waits on the messages, while admitting transactions takes a while (see
        # _admit_queued). A pre-prepare whose transactions are not here yet has them
        # verified by the validator, and admission then skips the check.
        for raw in messages:
            self.counters.messages_received += 1
            if not isinstance(raw, bytes):
                self.counters.messages_rejected += 1
                continue
            try:
                message = self._decode_message(raw)
            except (ConsensusError, LedgerError) as exc:
                self.counters.messages_rejected += 1
                log.debug("dropped a malformed consensus message: %s", exc)
                continue
            kind = str(kind_of(message))
            received = self.counters.messages_received_by_type
            received[kind] = received.get(kind, 0) + 1
            self.feed(MessageReceived(message=message, now_ms=now_ms()), raw=raw)
        room = ADMISSION_BACKLOG_MAX - self._admission_backlog
        if len(txs) > room:
            self.counters.reject("peer_backlog_full")
        if room > 0 and txs:
            admission = _Admission(raws=list(txs[:room]), done=None, from_client=not from_validator)
            self._queue_admission(admission)

    async def _admit_queued(self) -> None:
        """Admit queued batches in order, ADMIT_SLICE transactions per database transaction,
        yielding to the loop between slices."""
        while True:
            await self._admissions_ready.wait()
            self._admissions_ready.clear()
            while self._admissions:
                if self.paused_at is not None and self.halted is None:
                    await asyncio.sleep(TICK_MS / 1000)
                    continue
                admission = self._admissions[0]
                start = len(admission.outcomes)
                part = admission.raws[start : start + ADMIT_SLICE]
                if self.halted is not None:
                    outcomes: list[Transaction | Rejection] = [
                        Rejection(f"node halted: {self.halted}", status=503) for _ in part
                    ]
                elif admission.done is None:
                    outcomes = self._admit_forwarded(
                        part, admission.arrived_ms, from_client=admission.from_client
                    )
                else:
                    outcomes = self.submit_many(part, admission.arrived_ms)
                admission.outcomes.extend(outcomes)
                self._admission_backlog -= len(part)
                if len(admission.outcomes) == len(admission.raws):
                    self._admissions.popleft()
                    if admission.done is not None and not admission.done.done():
                        admission.done.set_result(admission.outcomes)
                await asyncio.sleep(0)

    def _admit_forwarded(
        self, raws: list[Any], arrived_ms: float, *, from_client: bool
    ) -> list[Transaction | Rejection]:
        outcomes: list[Transaction | Rejection] = []
        with self.storage.batch():
            for raw in raws:
                if not isinstance(raw, bytes):
                    self.counters.reject("peer_malformed")
                    outcomes.append(Rejection("a forwarded transaction must be bytes"))
                    continue
                try:
                    outcomes.append(self._admit(raw, arrived_ms, from_client=from_client))
                except Rejection as exc:
                    outcomes.append(exc)  # counted by _admit; a forwarded duplicate is normal
        return outcomes

    def _decode_message(self, raw: bytes) -> Message:
        """Decode a peer's message, reusing the decoded object when the same bytes came before.

        Messages are immutable, and retransmissions resend the same bytes (a primary resends
        its pre-prepares, whole blocks, to every peer while a slot is stuck): decoding those
        again would cost the most exactly when the node is already behind."""
        key = hashlib.sha256(raw).digest()
        message = self._decoded.get(key)
        if message is None:
            message = _decoded_from_outside(
                functools.partial(decode_message, tx_bytes_max=self.params.tx_bytes_max), raw
            )
            self._decoded.remember(key, message)
        return message

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

    def feed(self, event: Any, *, raw: bytes | None = None) -> None:
        """Log one input, hand it to the replica, and carry out every action that follows
        (`raw`: the bytes a received message was decoded from, logged as they are)."""
        with self.storage.batch():
            self._feed(event, raw)

    def _feed(self, event: Any, raw: bytes | None) -> None:
        if self.halted is not None:
            return
        if self.paused_at is not None:
            if isinstance(event, Tick | RequestsPending):
                self._held_timers[type(event)] = event
            else:
                self._held_events.append(event)
            return
        replica = self.replica
        if replica is None:
            return  # an observer takes no part in consensus
        unlogged = isinstance(event, MessageReceived) and not self._replaying
        if unlogged and self._worth_logging(replica, event.message):
            self._log_received(event, raw)
            unlogged = False
        view = replica.view
        actions = replica.handle(event)
        if unlogged and isinstance(event.message, NewView) and replica.view != view:
            # A NEW-VIEW too far ahead to log on arrival (see _worth_logging) that the replica
            # installed all the same, as it does a late view change's answer: a restart in its
            # view needs it as much as a near one's (Replica._lacks_new_view). Still in this
            # input's database transaction, so on disk before anything that follows leaves.
            self._log_received(event, raw)
        self._carry_out_all(deque(actions))

    def _log_received(self, event: MessageReceived, raw: bytes | None) -> None:
        wal.record_received(self.storage, event, raw)
        self._logged.remember(event.message.signature, True)

    def _worth_logging(self, replica: Replica, message: Message) -> bool:
        """Whether a peer's message goes to the log a restart replays: not an exact duplicate of
        one logged lately, signed by the validator it names, and for a sequence number the
        replica holds (a view change or new view within the views it keeps); a pre-prepare only
        with its transactions' signatures good. The replica refuses the rest and keeps nothing
        of them, so a restart needs none of them: logged, anybody reaching the port could grow
        the log without bound with junk, and a pre-prepare retransmitted through an outage was
        logged whole each time.

        A pre-prepare's signature covers its block's header, whose tx_root covers the
        transactions' bodies but not their signatures: a copy with a signature forged carries
        the primary's signature too. Logged (and so remembered) first, it kept the genuine one
        out of the log; replayed after a restart, it was taken without the transactions being
        checked (the replica's own restored prepare vouched for the block's hash), then
        committed, stored and served."""
        if message.signature in self._logged:
            return False
        if isinstance(message, ViewChange | NewView):
            view = message.new_view if isinstance(message, ViewChange) else message.view
            if view > replica.view + VIEWS_AHEAD_MAX:
                return False
        elif not replica.low_watermark < message.seq <= replica.held_max:
            return False
        try:
            m.verify_signature(
                message, self.genesis.chain_id, self.genesis.validator_keys, self._message_verifier
            )
            if isinstance(message, PrePrepare):
                self._block_validator.validate(message.block)
        except (InvalidMessage, InvalidBlock):
            return False
        return True

    def _message_verifier(
        self, public_key: bytes, domain: Domain, chain_id: str, payload: bytes, signature: bytes
    ) -> bool:
        key = (public_key, domain, payload, signature)
        known = self._signature_checks.get(key)
        if known is not None:
            return known
        good = m.plain_verifier(public_key, domain, chain_id, payload, signature)
        self._signature_checks.remember(key, good)
        return good

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
            if follow_up is not None and self.replica is not None:
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
        held_timers, self._held_timers = self._held_timers, {}
        self._carry_out_all(held_actions)
        for event in [*held_events, *held_timers.values()]:
            self.feed(event)

    @property
    def held_inputs(self) -> int:
        """Inputs and actions a pause holds back, carried out when the node resumes."""
        return len(self._held_actions) + len(self._held_events) + len(self._held_timers)

    def _link_proof(self, receiver: int) -> dict[str, str]:
        """The headers that show validator `receiver` this validator opens a link to it."""
        return link_headers(
            self.keys,
            self.genesis.chain_id,
            sender=self.index,
            receiver=receiver,
            now_ms=now_ms(),
        )

    def _count_sent(self, message: Message, copies: int) -> None:
        """Count `copies` sends of `message`, in all and by its type."""
        kind = str(kind_of(message))
        by_type = self.counters.messages_sent_by_type
        by_type[kind] = by_type.get(kind, 0) + copies
        self.counters.messages_sent += copies

    def _carry_out(self, action: Any) -> Any:
        match action:
            case Broadcast(message=message):
                self._mark_stage(message)
                self._count_sent(message, len(self.peers.links))
                self._persist_if_ours(message)
                if self.byzantine is None:
                    self.peers.broadcast(encode_message(message))
                else:
                    self._send_byzantine(message, list(self.peers.links))
            case Send(to=to, message=message):
                self._count_sent(message, 1)
                self._persist_if_ours(message)
                if self.byzantine is None:
                    self.peers.send(to, encode_message(message))
                else:
                    self._send_byzantine(message, [to])
            case CommitBlock(block=block, certificate=certificate):
                self.stages.committed(block.height, block.hash)
                executed = self._execute(block, certificate)
                self.stages.executed(block.height, block.hash, block.header.timestamp_ms)
                if self.paused_at is not None:
                    self._held_actions.appendleft(_FollowUp(executed))
                    return None
                return executed
            case _FollowUp(event=event):
                return event
            case Rejected(sender=sender, reason=reason, stale=stale):
                if stale:
                    self.counters.messages_stale += 1
                else:
                    self.counters.messages_rejected += 1
                    log.debug("rejected a message from validator %s: %s", sender, reason)
            case CheckpointStable(seq=seq, proof=proof):
                # Kept for peers catching up: it vouches for the digest they rebuild.
                self.storage.put_checkpoint_proof(seq, encode_proof(proof))
                view = 0 if self.replica is None else self.replica.view
                pruned = self.storage.log_prune(stable_seq=seq, view=view)
                log.info("checkpoint %d is stable; pruned %d log records", seq, pruned)
            case ViewEntered(view=view):
                wal.record_view(self.storage, view)
                if self.replica is not None:
                    wal.record_prepared(self.storage, self.replica.prepared_proofs)
                self.view_history.append((view, now_ms(), self.storage.head().height))
                self.counters.view_changes += 1
                self.mempool.return_in_flight()
                if self.replica is not None:
                    self._propose_after_height = self.replica.next_seq - 1
                self._wake_cutter.set()
                log.warning(
                    "entered view %d; primary is %s",
                    view,
                    self.genesis.validators[view % self.genesis.n].name,
                )
            case FetchBlocks(from_height=start, to_height=end, hint=hint):
                self._start_fetch(start, end, hint)
            case StateDivergence(height=height, ours=ours, quorum=quorum):
                self._halt(
                    f"state digest at height {height} is {ours.hex()[:16]} here but "
                    f"{quorum.hex()[:16]} at a quorum of validators; stopping"
                )
            case _:
                log.warning("unhandled consensus action %r", action)
        return None

    def _mark_stage(self, message: Message) -> None:
        """What this node broadcasts tells where a block stands here: its pre-prepare (the
        primary) or prepare (a backup) once it accepted the proposal, its commit once prepared."""
        if getattr(message, "sender", None) != self.index:
            return
        if isinstance(message, PrePrepare):
            arrivals = [self.mempool.arrived_ms(tx.hash) for tx in message.block.txs]
            known = [ms for ms in arrivals if ms is not None]
            if known:
                self.stages.arrived(message.seq, message.block.hash, min(known))
        if isinstance(message, PrePrepare):
            self.stages.pre_prepared(message.seq, message.block.hash)
        elif isinstance(message, Prepare):
            self.stages.pre_prepared(message.seq, message.block_hash)
        elif isinstance(message, Commit):
            self.stages.prepared(message.seq, message.block_hash)

    def _send_byzantine(self, message: Message, destinations: list[int]) -> None:
        """Send what the byzantine wrapper puts in place of `message` (the honest message is
        already on disk: the lie is only on the wire)."""
        assert self.byzantine is not None
        encoded: dict[int, bytes] = {}
        for destination, sent in self.byzantine.outgoing(message, destinations):
            raw = encoded.get(id(sent))
            if raw is None:
                raw = encoded[id(sent)] = encode_message(sent)
            self.peers.send(destination, raw)

    async def _flood(self) -> None:
        """Junk and duplicates to every peer at the byzantine spec's rate (messages per second
        per peer), in ticks of FLOOD_TICK_MS."""
        assert self.byzantine is not None and self.replica is not None
        owed = 0.0
        while True:
            await asyncio.sleep(FLOOD_TICK_MS / 1000)
            owed += self.byzantine.spec.rate * FLOOD_TICK_MS / 1000
            count = int(owed)
            owed -= count
            for index in self.peers.links:
                items = self.byzantine.flood_batch(
                    count, seq_base=self.replica.committed_height, view=self.replica.view
                )
                for item in items:
                    self.peers.send(index, item)

    def _persist_if_ours(self, message: Message) -> None:
        """What this node signed is on disk before it leaves (others' messages it relays are
        not ours to record)."""
        if getattr(message, "sender", None) == self.index:
            wal.record_signed(self.storage, message)

    def _execute(self, block: Block, certificate: CommitCertificate) -> BlockExecuted:
        result = execute_and_store(self.runtime, self.storage, self.genesis, block, certificate)
        self._after_commit(block, result)
        if self.oracle is not None:
            self.oracle.on_block(block, result.receipts)  # live commits only, not catch-up
        return BlockExecuted(height=block.height, state_digest=result.state_digest)

    def _after_commit(self, block: Block, result: BlockResult) -> None:
        self.mempool.remove_committed(block.txs, self._still_admissible)
        self._drop_refused_after(block)
        finals = sum(
            1
            for r in result.receipts
            for e in r.events
            if e.contract == "oracle" and e.kind == "final"
        )
        self._note_committed(block.height, [tx.hash for tx in block.txs], finals)

    def _drop_refused_after(self, block: Block) -> None:
        """After a block that may have changed who may send what (an identity transaction),
        drop the pending transactions admission now refuses (see Mempool.drop_refused)."""
        if len(self.mempool) and any(tx.contract == IDENTITY_CONTRACT for tx in block.txs):
            self.mempool.drop_refused(self._still_admissible)

    def _note_committed(self, height: int, tx_hashes: Sequence[bytes], finals: int) -> None:
        """Counters, the commit feed and clients waiting, once block `height` is stored
        (`finals`: the oracle predictions it finalised)."""
        self.counters.oracle_final_predictions += finals
        if self.oracle is not None:
            self.counters.oracle_reports = self.oracle.reports_submitted
        self.counters.blocks_committed += 1
        self.counters.txs_committed += len(tx_hashes)
        self.last_commit_ms = now_ms()
        self.commit_feed.record(height, self.last_commit_ms, tx_hashes)
        for tx_hash in tx_hashes:
            self._verified.pop(tx_hash, None)
            for future in self._waiters.pop(tx_hash, []):
                if not future.done():
                    future.set_result(None)
        self._wake_cutter.set()

    # -- state transfer ----------------------------------------------------------------------

    async def _sync_when_idle(self) -> None:
        while True:
            await asyncio.sleep(SYNC_IDLE_MS / 1000)
            idle_since = self.last_commit_ms if self.last_commit_ms is not None else 0
            if self.halted is None and now_ms() - idle_since >= SYNC_IDLE_MS:
                self._start_fetch(self.storage.head().height + 1, None, ())

    def _start_fetch(self, start: int, end: int | None, hint: tuple[int, ...]) -> None:
        """Fetch certified blocks from `start` up to `end` (None: as far as peers have)."""
        if self._fetch_task is not None and not self._fetch_task.done():
            return  # one catch-up at a time; the replica asks again if it stalls
        order = [*hint, *(i for i in range(self.genesis.n) if i not in hint)]
        validators = self.genesis.validators
        urls = [
            validators[i].url
            for i in order
            if i != self.index and not self.faults.is_blocked(validators[i].name)
        ]
        if end is not None:
            self.counters.fetches += 1
            log.info("behind: fetching blocks %d..%d", start, end)
        self._fetch_task = asyncio.create_task(
            self._guarded(self._fetch(urls, end)), name="state-transfer"
        )

    async def _fetch(self, urls: list[str], end: int | None) -> None:
        assert self._session is not None
        index_of = {v.url: i for i, v in enumerate(self.genesis.validators)}
        applied = await catch_up(
            self._session,
            self.genesis,
            self.storage,
            urls,
            to_height=end,
            apply=self._apply_transferred,
            stats=self.transfer,
            order=self.peer_order,
            proof=None if self.observer else lambda url: self._link_proof(index_of[url]),
        )
        if end is None and applied:
            self.counters.fetches += 1
            log.info("caught up %d blocks the peers had committed without us", applied)

    def _apply_transferred(self, items: Sequence[Transferred]) -> int:
        """Store certified blocks from a peer (checked or executed, see node/catchup.py), then
        tell the replica where it now stands. Returns how many were applied."""
        if self.halted is not None or self.paused_at is not None or not items:
            return 0
        digest = b""
        states: list[BlockState] = []
        # One database commit for the whole fetched run of blocks, and no savepoint a block.
        with self.storage.batch(), self.storage.bulk():
            for item in items:
                digest = self._store_transferred(item)
                header = item.certified.header
                states.append(
                    BlockState(height=header.height, block_hash=header.hash, state_digest=digest)
                )
        self.counters.blocks_transferred += len(items)
        last = items[-1].certified
        self.feed(
            BlocksTransferred(
                header=last.header,
                certificate=last.certificate,
                state_digest=digest,
                now_ms=now_ms(),
                states=tuple(states),
            )
        )
        return len(items)

    def _halt(self, reason: str) -> None:
        log.critical(reason)
        self.halted = reason

    def _storage_failed(self, reason: str) -> None:
        """The database refused a commit: what the node did since the last one is not on disk,
        so none of it may leave (a signed message sent but not recorded could be contradicted
        after a restart). Its peers' queues are dropped before the event loop runs again."""
        for link in self.peers.links.values():
            link.messages.drop_all()
            link.txs.drop_all()
        self._halt(f"{reason}; restart the node once the disk takes writes again")

    def _check_running(self) -> None:
        if self.halted is not None:
            raise Rejection(f"node halted: {self.halted}", status=503)

    # -- verified-signature cache ------------------------------------------------------------

    def is_verified(self, tx: Transaction) -> bool:
        """Whether this very signature was checked for this transaction. The hash covers the
        body only, so a primary could pair a known body with a corrupted signature: the cache
        must not vouch for signature bytes it never checked."""
        return self._verified.get(tx.hash) == tx.signature

    def mark_verified(self, tx: Transaction) -> None:
        self._verified.remember(tx.hash, tx.signature)

    # -- timers ------------------------------------------------------------------------------

    async def _cutter(self) -> None:
        """Propose blocks while this node is primary, up to `pipeline_depth` in flight.

        Adaptive batching: with nothing in flight, whatever is ready goes out at once; while
        blocks are being agreed, a full block (by count or by bytes) goes out as soon as it is
        ready, and a partial one once the last proposal is a block interval old, or
        FILL_INTERVALS_BACKLOGGED intervals while transactions wait for admission here. Under
        light load a transaction waits at most one interval before it is proposed, instead of a
        whole round of the block ahead of it; under heavy load blocks fill up and the per-block
        cost is spread thin. Woken by
        admissions, commits and view changes; besides, every block interval while this node is
        primary with transactions pending, and every TICK_MS otherwise (an idle cluster's nodes
        would spend a few per cent of a core on waking up fifty times a second)."""
        interval_s = self.params.block_interval_ms / 1000
        while True:
            replica = self.replica
            pending = replica is not None and replica.is_primary and len(self.mempool) > 0
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval_s if pending else TICK_MS / 1000):
                    await self._wake_cutter.wait()
            self._wake_cutter.clear()
            self._propose_ready()

    def _propose_ready(self) -> None:
        replica = self.replica
        if replica is None or not replica.is_primary or not self.mempool:
            return  # nothing to propose here: spare the database the question below
        if self.storage.head().height < self._propose_after_height:
            return  # the blocks before ours are not executed here yet: see __init__
        while (
            replica is not None
            and self.halted is None
            and replica.is_primary
            and replica.can_propose
            and len(replica.in_flight) < self.pipeline_depth
        ):
            intervals = FILL_INTERVALS_BACKLOGGED if self._admission_backlog > 0 else 1
            if (
                replica.in_flight
                and not self.mempool.ready_count_at_least(self.params.block_txs_max)
                and not self.mempool.ready_bytes_at_least(self.block_bytes_max)
                and now_ms() - self._last_proposal_ms < self.params.block_interval_ms * intervals
            ):
                return  # a block is being agreed: let this one fill up meanwhile
            batch = self.mempool.cut(self.params.block_txs_max, self.block_bytes_max)
            if not batch:
                return
            self._last_proposal_ms = now_ms()
            self.feed(ProposeBatch(txs=tuple(batch), now_ms=self._last_proposal_ms))

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(TICK_MS / 1000)
            self.feed(Tick(now_ms=now_ms()))
            self._feed_pending()

    async def _resender(self) -> None:
        after_ms = self.params.view_change_timeout_ms / 2
        while True:
            await asyncio.sleep(RESEND_SCAN_MS / 1000)
            await self._resend_stalled(after_ms)

    async def _expirer(self) -> None:
        while True:
            await asyncio.sleep(EXPIRE_SCAN_MS / 1000)
            self.expire_gapped(clock_ms())

    def expire_gapped(self, at_ms: float) -> None:
        """Drop the transactions that have waited behind a missing nonce for GAPPED_TTL_MS."""
        expired = self.mempool.expire_gapped(at_ms, GAPPED_TTL_MS)
        if expired:
            self.counters.txs_expired += len(expired)
            log.info(
                "dropped %d transactions that waited %d s behind a missing nonce",
                len(expired),
                GAPPED_TTL_MS // 1000,
            )

    async def _resend_stalled(self, after_ms: float) -> None:
        """Ask the primary how far it holds the runs of senders stalled here, and forward it the
        transactions it lacks (see RESEND_TXS_MAX)."""
        replica = self.replica
        if replica is None or self.halted is not None or self.paused_at is not None:
            return
        if not replica.view_active:
            self._spread_stalled(after_ms)
            return
        if replica.is_primary:
            return
        view, primary = replica.view, replica.primary
        link = self.peers.links[primary]
        if link.txs.items or self.peers.faults.is_blocked(link.name):
            return  # transactions still queued for it go first: they may be the missing ones
        senders = self.mempool.stalled(now_ms(), after_ms, PENDING_QUERY_MAX)
        if not senders:
            return
        body = await self.peers.ask(
            primary, "/peer/pending", encode({"senders": senders}), RESEND_QUERY_TIMEOUT_S
        )
        try:
            answer = (
                None if body is None else decode(body, containers_max=PENDING_ANSWER_CONTAINERS)
            )
        except EncodingError:
            answer = None
        if not isinstance(answer, dict):
            answer = {}
        next_nonces, queued_since = answer.get("next_nonces"), answer.get("queued_since_ms")
        if (
            not isinstance(next_nonces, list)
            or len(next_nonces) != len(senders)
            or not (queued_since is None or isinstance(queued_since, int))
        ):
            if body is not None:
                log.warning("the primary's answer to /peer/pending is malformed")
            return
        if (
            self.halted is not None
            or self.paused_at is not None
            or replica.view != view
            or not replica.view_active
        ):
            return  # the view changed (or the node stopped) while the primary was asked
        resent: list[Transaction] = []
        for sender, nonce in zip(senders, next_nonces, strict=True):
            run = self.mempool.run_from(sender, nonce, RESEND_TXS_MAX) if type(nonce) is int else []
            if run and self._missed(run[0], queued_since):
                resent.extend(run)
        if resent:
            self.peers.forward_txs_to(primary, [tx.wire for tx in resent])
            self.mempool.mark_sent((tx.hash for tx in resent), clock_ms())
            self.counters.txs_resent += len(resent)

    def _spread_stalled(self, after_ms: float) -> None:
        """While this node changes view it knows no primary to ask: it sends the runs of the
        senders stalled here to every validator, whose admission forwards them to theirs. A
        node cut off when it admitted them (its forwards lost), and left alone in a view the
        others never entered, held them for ever, and the senders' later transactions waited
        at every node behind them."""
        resent = [
            tx
            for sender in self.mempool.stalled(now_ms(), after_ms, PENDING_QUERY_MAX)
            for tx in self.mempool.ready_run(sender, RESEND_TXS_MAX)
        ]
        if not resent:
            return
        self.peers.forward_txs([tx.wire for tx in resent])
        self.mempool.mark_sent((tx.hash for tx in resent), clock_ms())
        self.counters.txs_resent += len(resent)

    def _missed(self, tx: Transaction, queued_since_ms: int | None) -> bool:
        """Whether the primary, which lacks `tx`, must have refused or lost it rather than still
        holding it in its admission queue: the queue is empty, or the oldest batch in it reached
        the primary more than RESEND_SKEW_MS after `tx` was last sent to it (the queue is served
        in order of arrival). A client's transaction counts from its forward, not its arrival
        here: under load it may wait here in the admission queue for seconds first."""
        if queued_since_ms is None:
            return True
        sent = self.mempool.sent_ms(tx.hash)
        return sent is not None and sent < queued_since_ms - RESEND_SKEW_MS

    def pending_runs(self, senders: Sequence[bytes]) -> dict[str, Any]:
        """For a peer: the nonce this node lacks first, past each sender's ready run, and when
        the oldest batch waiting in its admission queue arrived (wall-clock ms; None if the
        queue is empty): a transaction forwarded before then is not waiting in it."""
        oldest = self._admissions[0].arrived_ms if self._admissions else None
        return {
            "next_nonces": [self.mempool.next_nonce(sender) for sender in senders],
            "queued_since_ms": None if oldest is None else int(oldest),
        }

    def _feed_pending(self) -> None:
        """Tell the replica whether client work waits (it arms the view-change timer), and since
        when a sender has waited while enough blocks passed it by that its primary must have
        skipped it (Mempool.starved_since): twice as many as senders wait here, and a few."""
        pending = self.mempool.has_ready()
        self._pending_fed = pending
        starved = (
            self.mempool.starved_since(2 * self.mempool.senders + STARVED_BLOCKS_MIN)
            if pending
            else None
        )
        self.feed(
            RequestsPending(
                now_ms=now_ms(),
                pending=pending,
                starved_since_ms=None if starved is None else int(starved),
            )
        )

    # -- reads ---------------------------------------------------------------------------

    def _consensus_status(self) -> dict[str, Any]:
        replica = self.replica
        if replica is None:
            return {
                "view": None,
                "primary": None,
                "primary_name": None,
                "is_primary": False,
                "view_active": None,
            }
        return {
            "view": replica.view,
            "primary": replica.primary,
            "primary_name": self.genesis.validators[replica.primary].name,
            "is_primary": replica.is_primary,
            "view_active": replica.view_active,
        }

    def _byzantine_status(self) -> dict[str, Any] | None:
        if self.byzantine is None:
            return None
        counters = self.byzantine.counters
        return {
            "mode": str(self.byzantine.mode),
            "rate": self.byzantine.spec.rate,
            "rewritten": counters.rewritten,
            "withheld": counters.withheld,
            "flooded": counters.flooded,
        }

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
            "role": "observer" if self.replica is None else "validator",
            "protocol_version": PROTOCOL_VERSION,
            **self._consensus_status(),
            "mempool": len(self.mempool),
            "admission_queue": self.admission_backlog,
            "last_commit_ms": self.last_commit_ms,
            "halted": self.halted,
            "fsync": self.storage.fsync,
            "peers": self.peers.status(),
            "oracle": None if self.oracle is None else self.oracle.status(),
            "byzantine": self._byzantine_status(),
            "started_ms": self.started_ms,
            "transfer": {
                "first_fetch_ms": self.transfer.first_fetch_ms,
                "blocks_fetched": self.transfer.blocks_fetched,
                "blocks_checked": self.transfer.blocks_checked,
                "blocks_executed": self.transfer.blocks_executed,
                "runs_refused": self.transfer.runs_refused,
            },
            "stages": self.stages.summary(),
            "counters": {
                "txs_admitted": self.counters.txs_admitted,
                "txs_committed": self.counters.txs_committed,
                "blocks_committed": self.counters.blocks_committed,
                "messages_received": self.counters.messages_received,
                "messages_sent": self.counters.messages_sent,
                "messages_rejected": self.counters.messages_rejected,
                "messages_stale": self.counters.messages_stale,
                "view_changes": self.counters.view_changes,
                "blocks_transferred": self.counters.blocks_transferred,
                "fetches": self.counters.fetches,
                "txs_resent": self.counters.txs_resent,
                "txs_expired": self.counters.txs_expired,
                "rejected": dict(sorted(self.counters.rejected.items())),
            },
        }
