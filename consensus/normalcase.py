"""The normal case of one replica: proposing, pre-prepare/prepare/commit, checkpoints.

`NormalCase` holds the protocol state every role shares and moves slots through the phases of
the installed view; `consensus.replica.Replica` adds the view change, timers, retransmission and
state transfer on top (see its module docstring for the whole theory of operation).
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
from consensus.config import BlockValidator, ChainPoint, ReplicaConfig, ReplicaStart
from consensus.errors import ConfigError, InvalidMessage, LocalProtocolError, StaleMessage
from consensus.log import MessageLog, Slot
from consensus.messages import (
    Checkpoint,
    Commit,
    MessageKind,
    Prepare,
    PreparedProof,
    PrePrepare,
    Verifier,
)
from ledger.block import Block, BlockHeader
from ledger.certificate import CommitCertificate
from ledger.crypto import KeyPair
from ledger.errors import LedgerError
from ledger.tx import Transaction

# Views a replica keeps messages for on either side of its own (commit evidence) or above it
# (view changes): a byzantine validator signing for ever higher views must not grow its memory
# without bound. An honest replica further ahead is reached otherwise: its new view, sent to a
# replica still asking for an older view (`Replica._answer_late_view_change`), or state transfer.
VIEWS_AHEAD_MAX = 64


class NormalCase:
    """Normal-case protocol state and phases; see `consensus.replica` for the whole replica."""

    def __init__(
        self,
        config: ReplicaConfig,
        keys: KeyPair,
        validator: BlockValidator,
        start: ReplicaStart,
        *,
        verifier: Verifier = m.plain_verifier,
    ) -> None:
        if keys.public_key != config.validators[config.index]:
            raise ConfigError(f"keys do not belong to validator {config.index}")
        self.config = config
        self._keys = keys
        self._validator = validator
        self._verifier = verifier
        self._view = start.view
        self._active = True  # the view is installed (False while changing views)
        self._now_ms = 0
        self._log = MessageLog()
        self._checkpoints = CheckpointVotes(config.quorum)
        if start.stable is not None:
            _check_start_proof(start.stable, config, verifier)
        self._stable: StableCheckpoint | None = start.stable  # resent by _help, not voted on
        self._low = start.height
        self._next_seq = start.height + 1
        self._committed_height = start.height
        self._chain: dict[int, Link] = {start.height: Link(start.block_hash, start.timestamp_ms)}
        self._head_header: BlockHeader | None = start.header
        self._head_certificate: CommitCertificate | None = start.certificate
        self._evidence: dict[tuple[int, int], dict[bytes, set[int]]] = {}
        self._genesis = start.genesis or (
            ChainPoint.genesis(
                block_hash=start.block_hash,
                timestamp_ms=start.timestamp_ms,
                state_digest=start.state_digest,
            )
            if start.height == 0
            else None
        )
        self._view_base: ChainPoint | None = None  # the installed new view's base
        self._proofs: dict[int, PreparedProof] = {}  # highest-view prepared proof per seq
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
    def view_active(self) -> bool:
        """False while this replica is changing to `view` and has no new view for it yet."""
        return self._active

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
    def prepared(self) -> dict[int, tuple[int, bytes]]:
        """seq -> (view, block hash) of the highest-view prepared certificate this replica holds
        above its committed height: what its next view change carries."""
        return {seq: (p.view, p.pre_prepare.block_hash) for seq, p in self._proofs.items()}

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
            and self._active
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

    # --- hooks the full replica fills in ---------------------------------------------------

    def _on_committed(self) -> None:
        """A block was handed out (progress)."""

    def _suspect_primary(self, reason: str) -> None:
        """The primary of the installed view showed it is faulty."""

    def _note_ahead(self, sender: int, seq: int) -> None:
        """`sender` works on `seq`, beyond what this replica holds."""

    def _note_committed_elsewhere(self, seq: int, senders: tuple[int, ...]) -> None:
        """A quorum signed commits for `seq`, which is above our committed height."""

    def _note_view_ahead(self, sender: int, view: int) -> None:
        """`sender` works in `view`, above the view this replica is in."""

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
        pre_prepare = self._sign_pre_prepare(seq, block)
        self._log.slot(self._view, seq).pre_prepare = pre_prepare
        self._next_seq = seq + 1
        self._out.append(Broadcast(message=pre_prepare))
        self._progress(seq)

    def _sign_pre_prepare(self, seq: int, block: Block) -> PrePrepare:
        self._guard(MessageKind.PRE_PREPARE, self._view, seq, block.hash)
        return m.sign_pre_prepare(
            self._keys,
            self.config.chain_id,
            view=self._view,
            seq=seq,
            block=block,
            sender=self.index,
        )

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
            self._suspect_primary(f"two pre-prepares for seq {pre_prepare.seq}")
            raise InvalidMessage(
                f"conflicting pre-prepare for view {pre_prepare.view} seq {pre_prepare.seq}: "
                f"already have block {claimed.block.hash.hex()[:16]}"
            )
        self._check_above_base(pre_prepare)
        check_header(
            pre_prepare, chain_id=self.config.chain_id, block_bytes_max=self.config.block_bytes_max
        )
        self._log.slot(pre_prepare.view, pre_prepare.seq).buffered = pre_prepare
        self._progress(pre_prepare.seq)

    def _try_accept(self, slot: Slot, parent: Link) -> None:
        """Accept the buffered pre-prepare of `slot` now that its parent is known, or drop it."""
        pre_prepare = slot.buffered
        assert pre_prepare is not None
        slot.buffered = None
        try:
            self._check_above_base(pre_prepare)
            self._check_not_committed_otherwise(pre_prepare)
            check_parent(pre_prepare.block, parent)
            if not self._vouched_for(pre_prepare):
                self._check_time(pre_prepare.block)
                check_state_claim(pre_prepare.block, self._executed_height, self._digests)
                self._validator.validate(pre_prepare.block)
        except (InvalidMessage, LedgerError) as exc:
            self._reject(pre_prepare.sender, f"pre-prepare for seq {pre_prepare.seq}: {exc}")
            return
        slot.pre_prepare = pre_prepare

    def _check_time(self, block: Block) -> None:
        """Refuse a block stamped further ahead of this replica's clock than the configured
        skew (judged when the block is accepted, against the time of the event at hand)."""
        ahead = block.header.timestamp_ms - self._now_ms
        if ahead > self.config.clock_skew_max_ms:
            raise InvalidMessage(
                f"timestamp {block.header.timestamp_ms} ms is {ahead} ms ahead of this "
                f"replica's clock; at most {self.config.clock_skew_max_ms} ms is allowed"
            )

    def _check_above_base(self, pre_prepare: PrePrepare) -> None:
        """Refuse a block at or below the installed view's base.

        A new view's blocks start above its base, which is committed; below it the primary has
        nothing to propose, and a replica still fetching the base must take the blocks there
        from their certificates only. Checked on arrival (against the last installed view's
        base, committed too), and again when the block is accepted: one that came while the
        view was being installed waits in its slot, and the base of its own view is known only
        once the new view is in.
        """
        base = self._view_base
        if base is not None and pre_prepare.seq <= base.height:
            reason = (
                f"pre-prepare for seq {pre_prepare.seq} is at or below the base {base.height} "
                f"of view {pre_prepare.view}"
            )
            self._suspect_primary(reason)
            raise InvalidMessage(reason)

    def _check_not_committed_otherwise(self, pre_prepare: PrePrepare) -> None:
        """Refuse a block for a height this replica committed another block at.

        A committed block is final, so a primary proposing another one there is faulty; voting
        for it would help build a commit certificate for a block that never belongs to the chain.
        """
        committed = self._chain.get(pre_prepare.seq)
        if committed is not None and committed.hash != pre_prepare.block.hash:
            reason = f"block {committed.hash.hex()[:16]} is committed at seq {pre_prepare.seq}"
            self._suspect_primary(reason)
            raise InvalidMessage(reason)

    def _vouched_for(self, pre_prepare: PrePrepare) -> bool:
        """Whether this replica signed a prepare or commit for exactly this block at its
        (view, seq): it accepted the block before (a restart replays it), so checks that
        depend on local context are not run again.

        The state claim and the application's rules are judged against what this replica holds
        now, and a restart changes that: it keeps only the digest of the state it restarted
        from, so a claim about an older state ("older than the history kept here") fails on
        replay that passed the first time. Refusing the block then would lose the prepared
        certificate this replica's own signatures stand for, and a view change would leave it
        out: with f+1 replicas forgetting, a block committed elsewhere could be replaced at its
        height. What it signed it stands by, as for every other message it signed.
        """
        key = (pre_prepare.view, pre_prepare.seq)
        block_hash = pre_prepare.block.hash
        return any(
            self._signed.get((kind, *key)) == block_hash
            for kind in (MessageKind.PREPARE, MessageKind.COMMIT)
        )

    def _reject(self, sender: int, reason: str) -> None:
        self._out.append(Rejected(sender=sender, reason=reason))

    # --- prepares and commits --------------------------------------------------------------

    def _on_prepare(self, prepare: Prepare) -> None:
        self._check_phase(prepare)
        if prepare.sender == self.primary:
            raise InvalidMessage(
                f"prepare from the primary {prepare.sender}; its pre-prepare counts"
            )
        slot = self._log.slot(prepare.view, prepare.seq)
        if _record_vote(slot.prepares, prepare):
            proposal = slot.proposal
            if proposal is not None and prepare.block_hash != proposal.block_hash:
                others = sum(
                    1 for p in slot.prepares.values() if p.block_hash != proposal.block_hash
                )
                if others > self.config.f:
                    self._suspect_primary(f"f+1 prepares for another block at {prepare.seq}")
            self._progress(prepare.seq)

    def _on_commit(self, commit: Commit) -> None:
        self._record_evidence(commit)
        self._check_phase(commit)
        slot = self._log.slot(commit.view, commit.seq)
        if _record_vote(slot.commits, commit):
            self._progress(commit.seq)

    def _record_evidence(self, commit: Commit) -> None:
        """Count signed commits per (view, seq, hash) above our committed height, whatever view
        we are in: 2f+1 of them prove a block committed elsewhere (state transfer's cue). Kept
        apart from the log so a byzantine's conflicting vote there cannot hide an honest quorum.
        A sender counts for the first hash it signs only (an honest one signs one): so at most
        n hashes a slot, and a byzantine signing hash after hash cannot crowd out the quorum's.
        """
        if not self._committed_height < commit.seq <= self.held_max:
            return
        if abs(commit.view - self._view) > VIEWS_AHEAD_MAX:
            return
        by_hash = self._evidence.setdefault((commit.view, commit.seq), {})
        if any(commit.sender in signers for signers in by_hash.values()):
            return
        signers = by_hash.setdefault(commit.block_hash, set())
        signers.add(commit.sender)
        if len(signers) >= self.config.quorum:
            self._note_committed_elsewhere(commit.seq, tuple(sorted(signers)))

    def _check_phase(self, message: PrePrepare | Prepare | Commit) -> None:
        if message.view != self._view:
            if message.view > self._view:
                self._note_view_ahead(message.sender, message.view)
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
        if message.seq > self.held_max:
            self._note_ahead(message.sender, message.seq)
            raise InvalidMessage(
                f"{m.kind_of(message)} for seq {message.seq} is beyond the high watermark "
                f"{self.high_watermark} by more than the window"
            )

    @property
    def held_max(self) -> int:
        """The highest seq whose messages are kept. Those past the high watermark are held, not
        acted on: a peer whose checkpoint became stable first may already be working there, and
        dropping its messages would leave this replica behind until state transfer."""
        return self.high_watermark + self.config.watermark_window

    # --- the normal-case pipeline ----------------------------------------------------------

    def _progress(self, seq: int) -> None:
        """Advance slot `seq` and the slots after it that may depend on it, then hand out commits.

        A slot depends on its predecessor (parent hash for a buffered pre-prepare, prepared-ness
        for sending a prepare), so the walk stops at the first missing slot. Nothing moves while
        the replica is changing views.
        """
        if not self._active:
            return
        for s in range(max(seq, self._low + 1), self.high_watermark + 1):
            slot = self._log.get(self._view, s)
            if slot is None or not self._active:
                break  # a missing slot, or a slot's primary just found faulty
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
        is_proposer = slot.pre_prepare.sender == self.index
        if not is_proposer and not slot.prepare_sent and self._parent_prepared(slot.seq):
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
        if not slot.is_prepared(self._prepares_needed()):
            return
        self._note_prepared(slot)
        if not slot.commit_sent and self._parent_commit_sent(slot.seq):
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
            self._record_evidence(commit)
            self._out.append(Broadcast(message=commit))
        if slot.commit_sent and len(slot.matching_commits()) >= self._commit_quorum():
            slot.committed_local = True

    def _note_prepared(self, slot: Slot) -> None:
        """Keep the prepared proof of the highest view per seq, for view changes."""
        known = self._proofs.get(slot.seq)
        if slot.seq <= self._committed_height or (known is not None and known.view >= slot.view):
            return
        pre_prepare = slot.pre_prepare
        assert pre_prepare is not None
        prepares = sorted(
            (
                p
                for p in slot.prepares.values()
                if p.block_hash == pre_prepare.block_hash and p.sender != pre_prepare.sender
            ),
            key=lambda p: p.sender,
        )
        needed = self.config.quorum - 1
        if len(prepares) >= needed:
            self._proofs[slot.seq] = PreparedProof(
                pre_prepare=pre_prepare, prepares=tuple(prepares[:needed])
            )

    # The two thresholds are methods so the simulator's tests can build broken variants.

    def _prepares_needed(self) -> int:
        """2f: with the primary's pre-prepare, a quorum vouching for one block at (view, seq)."""
        return self.config.quorum - 1

    def _commit_quorum(self) -> int:
        return self.config.quorum

    def _settled(self, height: int) -> bool:
        """Whether block `height` is committed here or lies at or below the new view's base
        (committed elsewhere): nothing in this view needs to vouch for it."""
        base = self._view_base
        return height <= self._committed_height or (base is not None and height <= base.height)

    def _parent_prepared(self, seq: int) -> bool:
        if self._settled(seq - 1):
            return True
        parent = self._log.get(self._view, seq - 1)
        return parent is not None and parent.is_prepared(self._prepares_needed())

    def _parent_commit_sent(self, seq: int) -> bool:
        """Whether this replica committed block seq-1, or signed a commit for it in this view.

        A commit for seq waits for it, so a commit certificate (2f+1 commits, f+1 of them
        honest) shows that f+1 honest replicas hold a prepared certificate of this view for
        every block below it down to their committed heads; any 2f+1 view changes carry one of
        them, so every later view keeps the whole chain (see consensus/viewchange.py). Without
        the wait, a replica holding only its own 2f prepares for the parent could be the one
        the certificate depended on, and a later view would fill the parent's seq with a null
        block while a certificate for its child existed.
        """
        if self._settled(seq - 1):
            return True
        parent = self._log.get(self._view, seq - 1)
        return parent is not None and parent.commit_sent

    def _parent_of(self, seq: int) -> Link | None:
        """Block seq-1 as committed here, as the new view's base, or as accepted in this view."""
        committed = self._chain.get(seq - 1)
        if committed is not None:
            return committed
        base = self._view_base
        if base is not None and base.height == seq - 1:
            return Link(base.hash, base.timestamp_ms)
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
            parent = self._chain.get(seq - 1)
            if parent is None:
                return  # block seq-1 is coming by state transfer
            block = slot.pre_prepare.block
            if block.header.prev_hash != parent.hash:
                return  # not a child of the committed chain: the block for seq comes by transfer
            commits = sorted(slot.matching_commits(), key=lambda commit: commit.sender)
            certificate = CommitCertificate(
                height=seq,
                view=slot.view,
                block_hash=block.hash,
                commits=tuple((c.sender, c.signature) for c in commits[: self.config.quorum]),
            )
            self._chain[seq] = Link(block.hash, block.header.timestamp_ms)
            self._committed_height = seq
            self._next_seq = max(self._next_seq, seq + 1)
            self._head_header, self._head_certificate = block.header, certificate
            for stale in [s for s in self._proofs if s <= seq]:
                del self._proofs[stale]
            self._out.append(CommitBlock(block=block, certificate=certificate))
            self._on_committed()

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
        ahead_max = self.held_max
        if seq <= self._low:
            raise StaleMessage(f"checkpoint for seq {seq} is at or below the low watermark")
        if seq > ahead_max:
            self._note_ahead(checkpoint.sender, seq)
            raise InvalidMessage(f"checkpoint for seq {seq} is beyond {ahead_max}")
        if self._checkpoints.add(checkpoint):
            self._check_stable(seq)

    def _check_stable(self, seq: int) -> None:
        found = self._checkpoints.quorum_at(seq)
        if found is None or seq <= self._low:
            return
        if seq > self._executed_height:
            if seq > self._committed_height:
                senders = tuple(c.sender for c in found.proof)
                self._note_committed_elsewhere(seq, senders)
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
        self._collect(seq)
        self._out.append(
            CheckpointStable(seq=seq, state_digest=stable.state_digest, proof=stable.proof)
        )
        self._progress(previous_high + 1)  # held messages may now be within the watermarks

    def _collect(self, seq: int) -> None:
        """Move the low watermark to `seq` and forget what lies at or below it."""
        self._low = seq
        self._log.collect(seq)
        self._evidence = {key: found for key, found in self._evidence.items() if key[1] > seq}
        self._checkpoints.collect(seq + 1)
        self._chain = {h: link for h, link in self._chain.items() if h >= seq}
        self._signed = {
            key: what
            for key, what in self._signed.items()
            if key[2] > seq or key[0] in (MessageKind.VIEW_CHANGE, MessageKind.NEW_VIEW)
        }


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


def _check_start_proof(stable: StableCheckpoint, config: ReplicaConfig, verifier: Verifier) -> None:
    """A restart's stable checkpoint proof is a quorum of validly signed checkpoints (its shape
    ReplicaStart checked): it goes out to peers as it is, so a damaged store must not send on
    what no quorum signed."""
    if len(stable.proof) < config.quorum:
        raise ConfigError(
            f"the proof of stable checkpoint {stable.seq} has {len(stable.proof)} signed "
            f"checkpoints, a quorum is {config.quorum}"
        )
    for checkpoint in stable.proof:
        try:
            m.verify_signature(checkpoint, config.chain_id, config.validators, verifier)
        except InvalidMessage as exc:
            raise ConfigError(f"the proof of stable checkpoint {stable.seq}: {exc}") from exc
