"""One PBFT replica as a sans-IO state machine: `Replica.handle(event) -> list[Action]`.

Theory of operation
-------------------
n = len(validators) >= 4 replicas tolerate f = max_faulty(n) faults; a quorum is n - f (2f+1).
The primary of view v is validator v mod n. Sequence numbers are block heights.

Normal case, for each sequence number s between the watermarks (low < s <= high):

1. The primary, handed a batch (`ProposeBatch`), builds block s on top of block s-1 (committed or
   pre-prepared by it), signs a PrePrepare(v, s, block) and broadcasts it. Its pre-prepare stands
   for its prepare. Several sequence numbers may be in flight at once.
2. A backup checks the pre-prepare (sender is the primary, view, watermarks, first proposal for
   (v, s), header fields, tx root, parent hash, timestamp, the state digest the header vouches for,
   then the application's `BlockValidator`). A pre-prepare whose parent s-1 is not known yet is
   buffered in its slot until the parent is accepted.
   Messages up to one window past the high watermark are held in the log but not acted on until
   the watermarks move (a peer whose checkpoint became stable earlier may already be there).
3. A backup broadcasts Prepare(v, s, hash) for an accepted pre-prepare only once s-1 is prepared
   here in the same view, or committed. This keeps every prepared block's parent prepared at f+1
   honest replicas, which the view change will rely on to carry hash-chained blocks over.
4. Prepared(s) = accepted pre-prepare + 2f matching prepares from distinct backups (own included).
   On prepared, broadcast Commit(v, s, hash), whose signature is over exactly the ledger's commit
   payload, so commits are certificate material.
5. Committed-local(s) = prepared + a quorum of matching commits (own included). Blocks are handed
   out as `CommitBlock(block, certificate)` strictly in height order, each once.

Checkpoints: when the application reports `BlockExecuted(h)` with h a multiple of the checkpoint
interval, the replica broadcasts Checkpoint(h, block hash, state digest). A quorum of matching
checkpoints for a seq we have executed, agreeing with our own, makes it stable: low watermark = h,
high = h + window, and the log at and below h is collected. A quorum that disagrees with our own
state yields `StateDivergence` (the node stops) instead.

Every message is signature-checked here; anything that breaks a rule becomes a `Rejected` action
and changes nothing (`stale=True` when it merely came too late, below the low watermark). Exact
duplicates are ignored silently. Before signing, the replica records (kind, view, seq) -> what
it signed and refuses to sign anything different for that key.

Open for later: the log is keyed by (view, seq) and every phase message carries its view; view
change will add timers driven by `Tick`, and state transfer will use checkpoint proofs.
"""

from __future__ import annotations

from typing import TypeVar

from consensus import messages as m
from consensus.actions import (
    Action,
    Broadcast,
    CheckpointStable,
    CommitBlock,
    Rejected,
    StateDivergence,
)
from consensus.admission import Link, check_header, check_parent, check_state_claim
from consensus.checkpoints import CheckpointVotes, StableCheckpoint
from consensus.config import BlockValidator, ReplicaConfig, ReplicaStart
from consensus.errors import ConfigError, InvalidMessage, LocalProtocolError, StaleMessage
from consensus.events import BlockExecuted, Event, MessageReceived, ProposeBatch, Tick
from consensus.log import MessageLog, Slot
from consensus.messages import Checkpoint, Commit, Message, MessageKind, Prepare, PrePrepare
from ledger.block import Block
from ledger.certificate import CommitCertificate
from ledger.crypto import KeyPair
from ledger.errors import LedgerError
from ledger.tx import Transaction

# ReplicaConfig, ReplicaStart and BlockValidator live in consensus.config; they are part of this
# module's interface because a replica cannot be built without them.
__all__ = ["BlockValidator", "Replica", "ReplicaConfig", "ReplicaStart"]


class Replica:
    """One replica's protocol state; see the module docstring for how it moves."""

    def __init__(
        self, config: ReplicaConfig, keys: KeyPair, validator: BlockValidator, start: ReplicaStart
    ) -> None:
        if keys.public_key != config.validators[config.index]:
            raise ConfigError(f"keys do not belong to validator {config.index}")
        self.config = config
        self._keys = keys
        self._validator = validator
        self._view = 0
        self._log = MessageLog()
        self._checkpoints = CheckpointVotes(config.quorum)
        self._stable: StableCheckpoint | None = None
        self._low = start.height
        self._next_seq = start.height + 1
        self._committed_height = start.height
        self._chain: dict[int, Link] = {start.height: Link(start.block_hash, start.timestamp_ms)}
        self._executed_height = start.state_height
        self._digests: dict[int, bytes] = {start.state_height: start.state_digest}
        self._signed: dict[tuple[MessageKind, int, int], bytes] = {}
        self._diverged: set[int] = set()
        self._out: list[Action] = []

    # --- read-only state -------------------------------------------------------------------

    @property
    def index(self) -> int:
        return self.config.index

    @property
    def view(self) -> int:
        return self._view

    @property
    def primary(self) -> int:
        return self._view % self.config.n

    @property
    def is_primary(self) -> bool:
        return self.primary == self.index

    @property
    def committed_height(self) -> int:
        return self._committed_height

    @property
    def executed_height(self) -> int:
        return self._executed_height

    @property
    def low_watermark(self) -> int:
        return self._low

    @property
    def high_watermark(self) -> int:
        return self._low + self.config.watermark_window

    @property
    def next_seq(self) -> int:
        return self._next_seq

    @property
    def in_flight(self) -> tuple[int, ...]:
        """Sequence numbers proposed or pre-prepared in this view but not yet committed."""
        return tuple(
            sorted(
                slot.seq
                for slot in self._log
                if slot.view == self._view
                and slot.proposal is not None
                and slot.seq > self._committed_height
            )
        )

    @property
    def can_propose(self) -> bool:
        return (
            self.is_primary
            and self._next_seq <= self.high_watermark
            and len(self.in_flight) < self.config.watermark_window
        )

    @property
    def stable_checkpoint(self) -> StableCheckpoint | None:
        return self._stable

    @property
    def log_size(self) -> int:
        """Slots held in the message log (at most two watermark windows per view)."""
        return len(self._log)

    # --- events ----------------------------------------------------------------------------

    def handle(self, event: Event) -> list[Action]:
        self._out = []
        match event:
            case MessageReceived():
                self._on_message(event.message)
            case ProposeBatch():
                self._propose(event.txs, event.now_ms)
            case BlockExecuted():
                self._on_executed(event.height, event.state_digest)
            case Tick():
                pass
        out, self._out = self._out, []
        return out

    def _on_message(self, message: Message) -> None:
        try:
            m.verify_signature(message, self.config.chain_id, self.config.validators)
            if message.sender == self.index:
                raise InvalidMessage(f"{m.kind_of(message)} claims to come from this replica")
            match message:
                case PrePrepare():
                    self._on_pre_prepare(message)
                case Prepare():
                    self._on_prepare(message)
                case Commit():
                    self._on_commit(message)
                case Checkpoint():
                    self._on_checkpoint(message)
        except StaleMessage as exc:
            self._out.append(Rejected(sender=message.sender, reason=str(exc), stale=True))
        except InvalidMessage as exc:
            self._reject(message.sender, str(exc))

    def _reject(self, sender: int, reason: str) -> None:
        self._out.append(Rejected(sender=sender, reason=reason))

    # --- proposing (primary) ---------------------------------------------------------------

    def _propose(self, txs: tuple[Transaction, ...], now_ms: int) -> None:
        if not self.can_propose:
            raise LocalProtocolError(
                f"replica {self.index} cannot propose seq {self._next_seq} now (primary "
                f"{self.primary}, high watermark {self.high_watermark}, "
                f"{len(self.in_flight)} in flight); check can_propose first"
            )
        seq = self._next_seq
        parent = self._parent_of(seq)
        if parent is None:
            raise LocalProtocolError(f"the primary lost block {seq - 1}")
        block = Block.build(
            chain_id=self.config.chain_id,
            height=seq,
            prev_hash=parent.hash,
            state_height=self._executed_height,
            state_digest=self._digests[self._executed_height],
            proposer=self.index,
            view=self._view,
            timestamp_ms=max(now_ms, parent.timestamp_ms),
            txs=txs,
        )
        try:
            block.check_shape()
        except LedgerError as exc:
            raise LocalProtocolError(
                f"the batch for seq {seq} makes a malformed block: {exc}"
            ) from exc
        self._guard(MessageKind.PRE_PREPARE, self._view, seq, block.hash)
        pre_prepare = m.sign_pre_prepare(
            self._keys,
            self.config.chain_id,
            view=self._view,
            seq=seq,
            block=block,
            sender=self.index,
        )
        self._log.slot(self._view, seq).pre_prepare = pre_prepare
        self._next_seq = seq + 1
        self._out.append(Broadcast(message=pre_prepare))
        self._progress(seq)

    # --- accepting pre-prepares (backups) --------------------------------------------------

    def _on_pre_prepare(self, pre_prepare: PrePrepare) -> None:
        self._check_phase(pre_prepare)
        if pre_prepare.sender != self.primary:
            raise InvalidMessage(
                f"pre-prepare from validator {pre_prepare.sender}, but the primary of view "
                f"{self._view} is {self.primary}"
            )
        known = self._log.get(pre_prepare.view, pre_prepare.seq)
        claimed = None if known is None else known.proposal
        if claimed is not None:
            if claimed.block.hash == pre_prepare.block.hash:
                return
            raise InvalidMessage(
                f"conflicting pre-prepare for view {pre_prepare.view} seq {pre_prepare.seq}: "
                f"already have block {claimed.block.hash.hex()[:16]}"
            )
        check_header(pre_prepare, chain_id=self.config.chain_id)
        self._log.slot(pre_prepare.view, pre_prepare.seq).buffered = pre_prepare
        self._progress(pre_prepare.seq)

    def _try_accept(self, slot: Slot, parent: Link) -> None:
        """Accept the buffered pre-prepare of `slot` now that its parent is known, or drop it."""
        pre_prepare = slot.buffered
        assert pre_prepare is not None
        slot.buffered = None
        try:
            check_parent(pre_prepare.block, parent)
            check_state_claim(pre_prepare.block, self._executed_height, self._digests)
            self._validator.validate(pre_prepare.block)
        except (InvalidMessage, LedgerError) as exc:
            self._reject(pre_prepare.sender, f"pre-prepare for seq {pre_prepare.seq}: {exc}")
            return
        slot.pre_prepare = pre_prepare

    # --- prepares and commits --------------------------------------------------------------

    def _on_prepare(self, prepare: Prepare) -> None:
        self._check_phase(prepare)
        if prepare.sender == self.primary:
            raise InvalidMessage(
                f"prepare from the primary {prepare.sender}; its pre-prepare counts"
            )
        slot = self._log.slot(prepare.view, prepare.seq)
        if _record_vote(slot.prepares, prepare):
            self._progress(prepare.seq)

    def _on_commit(self, commit: Commit) -> None:
        self._check_phase(commit)
        slot = self._log.slot(commit.view, commit.seq)
        if _record_vote(slot.commits, commit):
            self._progress(commit.seq)

    def _check_phase(self, message: PrePrepare | Prepare | Commit) -> None:
        if message.view != self._view:
            error = StaleMessage if message.view < self._view else InvalidMessage
            raise error(
                f"{m.kind_of(message)} for view {message.view}, "
                f"this replica is in view {self._view}"
            )
        if message.seq <= self._low:
            raise StaleMessage(
                f"{m.kind_of(message)} for seq {message.seq} is at or below the low watermark "
                f"{self._low}"
            )
        if message.seq > self._held_max:
            raise InvalidMessage(
                f"{m.kind_of(message)} for seq {message.seq} is beyond the high watermark "
                f"{self.high_watermark} by more than the window"
            )

    @property
    def _held_max(self) -> int:
        """The highest seq whose messages are kept. Those past the high watermark are held, not
        acted on: a peer whose checkpoint became stable first may already be working there, and
        dropping its messages would leave this replica behind until state transfer."""
        return self.high_watermark + self.config.watermark_window

    # --- the normal-case pipeline ----------------------------------------------------------

    def _progress(self, seq: int) -> None:
        """Advance slot `seq` and the slots after it that may depend on it, then hand out commits.

        A slot depends on its predecessor (parent hash for a buffered pre-prepare, prepared-ness
        for sending a prepare), so the walk stops at the first missing slot.
        """
        for s in range(seq, self.high_watermark + 1):
            slot = self._log.get(self._view, s)
            if slot is None:
                break
            self._step(slot)
        self._emit_commits()

    def _step(self, slot: Slot) -> None:
        if slot.buffered is not None:
            parent = self._parent_of(slot.seq)
            if parent is not None:
                self._try_accept(slot, parent)
        if slot.pre_prepare is None:
            return
        block_hash = slot.pre_prepare.block.hash
        if not self.is_primary and not slot.prepare_sent and self._parent_prepared(slot.seq):
            self._guard(MessageKind.PREPARE, slot.view, slot.seq, block_hash)
            prepare = m.sign_prepare(
                self._keys,
                self.config.chain_id,
                view=slot.view,
                seq=slot.seq,
                block_hash=block_hash,
                sender=self.index,
            )
            slot.prepares[self.index] = prepare
            slot.prepare_sent = True
            self._out.append(Broadcast(message=prepare))
        if not slot.commit_sent and slot.is_prepared(self._prepares_needed()):
            self._guard(MessageKind.COMMIT, slot.view, slot.seq, block_hash)
            commit = m.sign_commit(
                self._keys,
                self.config.chain_id,
                view=slot.view,
                seq=slot.seq,
                block_hash=block_hash,
                sender=self.index,
            )
            slot.commits[self.index] = commit
            slot.commit_sent = True
            self._out.append(Broadcast(message=commit))
        if slot.commit_sent and len(slot.matching_commits()) >= self._commit_quorum():
            slot.committed_local = True

    # The two thresholds are methods so the simulator's tests can build broken variants.

    def _prepares_needed(self) -> int:
        """2f: with the primary's pre-prepare, a quorum vouching for one block at (view, seq)."""
        return self.config.quorum - 1

    def _commit_quorum(self) -> int:
        return self.config.quorum

    def _parent_prepared(self, seq: int) -> bool:
        if seq - 1 <= self._committed_height:
            return True
        parent = self._log.get(self._view, seq - 1)
        return parent is not None and parent.is_prepared(self._prepares_needed())

    def _parent_of(self, seq: int) -> Link | None:
        """Block seq-1 as committed here, or as accepted in this view; None if not known yet."""
        committed = self._chain.get(seq - 1)
        if committed is not None:
            return committed
        slot = self._log.get(self._view, seq - 1)
        if slot is None or slot.pre_prepare is None:
            return None
        header = slot.pre_prepare.block.header
        return Link(header.hash, header.timestamp_ms)

    def _emit_commits(self) -> None:
        while True:
            seq = self._committed_height + 1
            slot = self._log.get(self._view, seq)
            if slot is None or not slot.committed_local or slot.pre_prepare is None:
                return
            block = slot.pre_prepare.block
            commits = sorted(slot.matching_commits(), key=lambda commit: commit.sender)
            certificate = CommitCertificate(
                height=seq,
                view=slot.view,
                block_hash=block.hash,
                commits=tuple((c.sender, c.signature) for c in commits[: self.config.quorum]),
            )
            self._chain[seq] = Link(block.hash, block.header.timestamp_ms)
            self._committed_height = seq
            self._out.append(CommitBlock(block=block, certificate=certificate))

    def _guard(self, kind: MessageKind, view: int, seq: int, what: bytes) -> None:
        """Record what we sign for (kind, view, seq); refuse to sign anything else for it."""
        key = (kind, view, seq)
        signed = self._signed.setdefault(key, what)
        if signed != what:
            raise LocalProtocolError(f"refusing to sign a second, different {kind} for {key[1:]}")

    # --- execution and checkpoints ---------------------------------------------------------

    def _on_executed(self, height: int, state_digest: bytes) -> None:
        if height != self._executed_height + 1 or height > self._committed_height:
            raise LocalProtocolError(
                f"executed block {height}, expected {self._executed_height + 1} "
                f"(committed up to {self._committed_height})"
            )
        self._executed_height = height
        self._digests[height] = state_digest
        self._digests.pop(height - self._digests_kept(), None)
        if height % self.config.checkpoint_interval or height <= self._low:
            return
        block_hash = self._chain[height].hash
        self._guard(MessageKind.CHECKPOINT, 0, height, block_hash + state_digest)
        checkpoint = m.sign_checkpoint(
            self._keys,
            self.config.chain_id,
            seq=height,
            block_hash=block_hash,
            state_digest=state_digest,
            sender=self.index,
        )
        self._checkpoints.add(checkpoint)
        self._out.append(Broadcast(message=checkpoint))
        self._check_stable(height)

    def _digests_kept(self) -> int:
        """How many executed heights' digests to keep for checking proposers' state claims."""
        return 2 * self.config.watermark_window

    def _on_checkpoint(self, checkpoint: Checkpoint) -> None:
        seq = checkpoint.seq
        if seq % self.config.checkpoint_interval:
            raise InvalidMessage(
                f"checkpoint for seq {seq}, not a multiple of {self.config.checkpoint_interval}"
            )
        ahead_max = self._held_max
        if seq <= self._low:
            raise StaleMessage(f"checkpoint for seq {seq} is at or below the low watermark")
        if seq > ahead_max:
            raise InvalidMessage(f"checkpoint for seq {seq} is beyond {ahead_max}")
        if self._checkpoints.add(checkpoint):
            self._check_stable(seq)

    def _check_stable(self, seq: int) -> None:
        found = self._checkpoints.quorum_at(seq)
        if found is None or seq > self._executed_height or seq <= self._low:
            return
        ours = self._digests[seq]
        if (found.block_hash, found.state_digest) != (self._chain[seq].hash, ours):
            if seq not in self._diverged:
                self._diverged.add(seq)
                self._out.append(StateDivergence(height=seq, ours=ours, quorum=found.state_digest))
            return
        self._make_stable(found)

    def _make_stable(self, stable: StableCheckpoint) -> None:
        seq = stable.seq
        previous_high = self.high_watermark
        self._stable = stable
        self._low = seq
        self._log.collect(seq)
        self._checkpoints.collect(seq + 1)
        self._chain = {h: link for h, link in self._chain.items() if h >= seq}
        self._signed = {key: what for key, what in self._signed.items() if key[2] > seq}
        self._out.append(CheckpointStable(seq=seq, state_digest=stable.state_digest))
        self._progress(previous_high + 1)  # held messages may now be within the watermarks


_Vote = TypeVar("_Vote", Prepare, Commit)


def _record_vote(votes: dict[int, _Vote], vote: _Vote) -> bool:
    """Store `vote` by sender; False for an exact duplicate. Raise on a conflicting vote."""
    known = votes.get(vote.sender)
    if known is None:
        votes[vote.sender] = vote
        return True
    if known.block_hash == vote.block_hash:
        return False
    raise InvalidMessage(
        f"validator {vote.sender} sent two different {m.kind_of(vote)}s for view {vote.view} "
        f"seq {vote.seq}"
    )
