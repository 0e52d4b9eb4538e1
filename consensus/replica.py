"""One PBFT replica as a sans-IO state machine: `Replica.handle(event) -> list[Action]`.

Theory of operation
-------------------
n = len(validators) >= 4 replicas tolerate f = max_faulty(n) faults; a quorum is n - f (2f+1).
The primary of view v is validator v mod n. Sequence numbers are block heights.

Normal case (`consensus.normalcase`), for each sequence number s between the watermarks:

1. The primary, handed a batch (`ProposeBatch`), builds block s on top of block s-1 (committed or
   pre-prepared by it), signs a PrePrepare(v, s, block) and broadcasts it. Its pre-prepare stands
   for its prepare. Several sequence numbers may be in flight at once.
2. A backup checks the pre-prepare (sender is the primary, view, watermarks, first proposal for
   (v, s), header fields, tx root, parent hash, timestamp, the state digest the header vouches for,
   then the application's `BlockValidator`). A pre-prepare whose parent s-1 is not known yet is
   buffered in its slot until the parent is accepted. Messages up to one window past the high
   watermark are held in the log but not acted on until the watermarks move. A pre-prepare at or
   below the installed new view's base, or for a height committed here with another block, is
   refused and the primary suspected.
3. A backup broadcasts Prepare(v, s, hash) for an accepted pre-prepare only once s-1 is prepared
   here in the same view, or committed (or is the installed new view's base).
4. Prepared(s) = accepted pre-prepare + 2f matching prepares from distinct backups (own included).
   The replica keeps the prepared proof of the highest view per seq for view changes, and
   broadcasts Commit(v, s, hash), signed over exactly the ledger's commit payload, once it has
   sent its commit for s-1 in the same view (or s-1 is committed, or the new view's base). So a
   commit certificate for a block means f+1 honest replicas prepared it and every block below it
   in that view, which the view change relies on: a certificate alone proves a block final.
5. Committed-local(s) = prepared + a quorum of matching commits. Blocks are handed out as
   `CommitBlock(block, certificate)` strictly in height order, each once.

Checkpoints: executing a multiple of the checkpoint interval broadcasts Checkpoint(h, hash,
digest); a quorum agreeing with our own state makes it stable (watermarks move, the log below is
collected); a quorum that disagrees yields `StateDivergence`.

View change (`consensus.viewchange` holds the pure parts). The node feeds `RequestsPending`: while
it holds uncommitted client transactions a deadline is armed (`view_change_timeout_ms`), pushed
back by every commit, disarmed when nothing is pending. `Tick` fires it: the replica moves to view
v+1, stops taking normal-case messages for v, and broadcasts ViewChange(v+1, base = its committed
head with its commit certificate, the prepared proofs above it). A primary caught equivocating (two
pre-prepares for one slot, or f+1 prepares for another block than its pre-prepare) triggers the
same at once. f+1 view changes for views above ours pull this replica to the smallest of them.
Once 2f+1 view changes for the target view are in, a deadline of timeout * 2^k (k = views since
the last installed one, minus one) is armed; if no new view arrives by then, on to the next view.
The new primary, with 2f+1 valid view changes, broadcasts NewView(their summaries, the
pre-prepares the choice implies, with the blocks); every replica checks the whole thing
(signatures, proofs, the recomputed choice, the blocks) before installing the view
(`ViewEntered`), then runs the re-proposed slots through the normal case. A replica whose
committed height is below the new view's base fetches the blocks.
Since a replica that missed a new view keeps resending its view change, active replicas answer a
view change for a view at or below theirs by sending it the new view they installed.

State transfer: when the replica learns that blocks above its committed height were committed (a
stable checkpoint, 2f+1 commits, a view-change or new-view base, f+1 peers working beyond its
high watermark), and it is stuck or cannot get there by itself, it emits `FetchBlocks`; the node
feeds `BlocksTransferred` for the last block fetched, with the state after each block fetched,
and the replica fast-forwards to it.
`FetchBlocks` is re-emitted every `fetch_retry_ms` while there is no progress.

Retransmission: on `Tick`, a replica that has not committed for `retransmit_ms` while slots are
in flight rebroadcasts its own messages for them (the same signed bytes), its unstable checkpoint
and, while changing views, its view change. A replica that sees a peer far behind sends it the
commits of its committed head (and the proof of its stable checkpoint) so the peer can fetch.

Restart: the node persists everything the replica signed before sending it and the views it
installed; a restarted replica gets them in `ReplicaStart` (`view`, `signed`, and the chain's
start in `genesis`) and resends those messages rather than ever signing something different for
one (kind, view, seq). A backup restarted in a view it installed takes that view's NEW-VIEW
again when its node replays it (a primary restores its own from what it signed): the view's
re-proposed blocks, and so its prepared certificates, come from it. Every message is
signature-checked here; anything that breaks a rule becomes a `Rejected` action and changes
nothing (`stale=True` when it merely came too late). Exact duplicates are ignored silently.
"""

from __future__ import annotations

from consensus import messages as m
from consensus.actions import Action, Broadcast, FetchBlocks, Rejected, Send, ViewEntered
from consensus.admission import Link
from consensus.config import BlockValidator, ChainPoint, ReplicaConfig, ReplicaStart
from consensus.errors import InvalidMessage, LocalProtocolError, StaleMessage
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
    MessageKind,
    NewView,
    Prepare,
    PrePrepare,
    Verifier,
    ViewChange,
)
from consensus.normalcase import VIEWS_AHEAD_MAX, NormalCase
from consensus.viewchange import (
    Choice,
    blocks_for,
    check_new_view,
    check_view_change,
    choose_blocks,
)
from ledger.crypto import KeyPair
from ledger.encoding import encode
from ledger.hashing import sha256

# ReplicaConfig, ReplicaStart and BlockValidator live in consensus.config; they are part of this
# module's interface because a replica cannot be built without them.
__all__ = ["BlockValidator", "Replica", "ReplicaConfig", "ReplicaStart"]

BACKOFF_EXPONENT_MAX = 10
# The normal-case deadline doubles for each view entered since the last commit, up to 2^4 times
# the timeout (see _normal_timeout_ms).
PATIENCE_EXPONENT_MAX = 4


class Replica(NormalCase):
    """One replica's protocol state; see the module docstring for how it moves."""

    def __init__(
        self,
        config: ReplicaConfig,
        keys: KeyPair,
        validator: BlockValidator,
        start: ReplicaStart,
        *,
        verifier: Verifier = m.plain_verifier,
    ) -> None:
        super().__init__(config, keys, validator, start, verifier=verifier)
        self._installed = start.view
        # The view this replica last saw a commit in (or started in).
        self._progress_view = start.view
        self._requests_pending = False
        # Set from RequestsPending.starved_since_ms (a backup in an active view only).
        self._starved_deadline_ms: int | None = None
        self._deadline_ms: int | None = None
        self._next_retransmit_ms: int | None = None
        self._my_view_changes: dict[int, ViewChange] = {}
        self._view_changes: dict[int, dict[int, ViewChange]] = {}
        self._new_view: NewView | None = None
        # Per sender: the highest view above ours it sent a normal-case message for.
        self._working_ahead: dict[int, int] = {}
        self._helped_ms: dict[int, int] = {}
        self._ahead: dict[int, int] = {}
        self._fetch_to = 0
        self._fetch_hint: tuple[int, ...] = ()
        self._fetch_sent_ms: int | None = None
        # Our own checkpoint at or below our low watermark that peers may still need to make it
        # stable: one a state transfer took us past, or the latest we signed before a restart
        # put our low watermark at or above it (see `_help`).
        self._late_checkpoint: Checkpoint | None = None
        self._restore(start.signed)
        for proof in start.prepared:
            self._restore_proof(proof)

    # --- read-only state -------------------------------------------------------------------

    @property
    def prepared_proofs(self) -> tuple[m.PreparedProof, ...]:
        """The prepared certificates a view change of ours would carry now (by seq)."""
        return tuple(self._proofs[seq] for seq in sorted(self._proofs))

    @property
    def view_change_deadline_ms(self) -> int | None:
        """When the armed view-change deadline fires (None if none is armed): the earlier of
        the one commits push back and the one a starved request set."""
        armed = [d for d in (self._deadline_ms, self._starved_deadline_ms) if d is not None]
        return min(armed, default=None)

    # --- events ----------------------------------------------------------------------------

    def handle(self, event: Event) -> list[Action]:
        self._out = []
        match event:
            case MessageReceived():
                self._now_ms = event.now_ms
                self._on_message(event.message)
            case ProposeBatch():
                self._now_ms = event.now_ms
                self._propose(event.txs, event.now_ms)
            case BlockExecuted():
                self._on_executed(event.height, event.state_digest)
            case Tick():
                self._now_ms = event.now_ms
                self._on_tick()
            case RequestsPending():
                self._now_ms = event.now_ms
                self._on_requests_pending(event.pending, event.starved_since_ms)
            case BlocksTransferred():
                self._now_ms = max(self._now_ms, event.now_ms)
                self._on_transferred(event)
        out, self._out = self._out, []
        return out

    def _on_message(self, message: Message) -> None:
        try:
            m.verify_signature(
                message, self.config.chain_id, self.config.validators, self._verifier
            )
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
                case ViewChange():
                    self._on_view_change(message)
                case NewView():
                    self._on_new_view(message)
        except StaleMessage as exc:
            self._out.append(Rejected(sender=message.sender, reason=str(exc), stale=True))
            self._help_if_behind(message)
        except InvalidMessage as exc:
            self._reject(message.sender, str(exc))

    # --- timers ----------------------------------------------------------------------------

    def _on_requests_pending(self, pending: bool, starved_since_ms: int | None) -> None:
        self._requests_pending = pending
        if not self._active:
            return  # the view-change deadline governs
        if not pending:
            self._deadline_ms = None
        elif self._deadline_ms is None:
            self._deadline_ms = self._now_ms + self._normal_timeout_ms()
        self._starved_deadline_ms = (
            None
            if not pending or starved_since_ms is None or self.is_primary
            else starved_since_ms + 2 * self._normal_timeout_ms()
        )

    def _normal_timeout_ms(self) -> int:
        """How long the normal case may go without a commit while requests wait: the timeout,
        doubled for each view entered since this replica last saw a commit. A view change that
        did not bring progress is most often a cluster too loaded to commit within the timeout
        (every validator short of CPU), not a faulty primary after a faulty primary; with the
        same short deadline in every view, such a cluster changed view again and again and
        committed nothing. Once a block commits, the timeout is back to its base."""
        exponent = min(max(self._view - self._progress_view, 0), PATIENCE_EXPONENT_MAX)
        return int(self.config.view_change_timeout_ms * 2**exponent)

    def _on_committed(self) -> None:
        self._next_retransmit_ms = self._now_ms + self.config.retransmit_ms
        if self._active:
            self._progress_view = self._view
        if self._active and self._requests_pending:
            self._deadline_ms = self._now_ms + self._normal_timeout_ms()
        if self._committed_height >= self._fetch_to:
            self._fetch_sent_ms = None

    def _on_tick(self) -> None:
        now = self._now_ms
        starved = self._starved_deadline_ms
        if (self._deadline_ms is not None and now >= self._deadline_ms) or (
            starved is not None and self._active and now >= starved
        ):
            self._start_view_change(self._view + 1)
        if not self._waiting():
            self._next_retransmit_ms = None
        elif self._next_retransmit_ms is None:
            self._next_retransmit_ms = now + self.config.retransmit_ms
        elif now >= self._next_retransmit_ms:
            self._next_retransmit_ms = now + self.config.retransmit_ms
            self._retransmit()
        if (
            self._fetch_to > self._committed_height
            and self._fetch_sent_ms is not None
            and now >= self._fetch_sent_ms + self.config.fetch_retry_ms
        ):
            self._emit_fetch()

    def _waiting(self) -> bool:
        """Whether something of ours is unfinished: a view change, a slot, a checkpoint, a fetch."""
        return (
            not self._active
            or bool(self.in_flight)
            or self._fetch_to > self._committed_height
            or bool(self._checkpoints.own(self.index, above=self._low))
        )

    def _retransmit(self) -> None:
        """Resend our own latest messages where we are stuck (same bytes, never re-signed)."""
        if self._fetch_to > self._committed_height and self._fetch_sent_ms is None:
            self._emit_fetch()
        if not self._active:
            mine = self._my_view_changes.get(self._view)
            if mine is not None:
                self._out.append(Broadcast(message=mine))
            return
        for slot in sorted(self._log, key=lambda s: s.seq):
            if slot.view != self._view or slot.seq <= self._committed_height:
                continue
            own_pp = (
                slot.pre_prepare
                if slot.pre_prepare and slot.pre_prepare.sender == self.index
                else None
            )
            for message in (own_pp, slot.prepares.get(self.index), slot.commits.get(self.index)):
                if message is not None:
                    self._out.append(Broadcast(message=message))
        mine_checkpoints = self._checkpoints.own(self.index, above=self._low)
        for checkpoint in mine_checkpoints:
            self._out.append(Broadcast(message=checkpoint))

    # --- starting a view change ------------------------------------------------------------

    def _suspect_primary(self, reason: str) -> None:
        if self._active:
            self._start_view_change(self._view + 1)

    def _start_view_change(self, target: int) -> None:
        if target < self._view or (target == self._view and self._active):
            return
        view_change = self._my_view_changes.get(target)
        if view_change is None:
            view_change = self._make_view_change(target)
            if view_change is None:
                return
        self._view, self._active = target, False
        self._deadline_ms = self._starved_deadline_ms = None
        self._next_retransmit_ms = self._now_ms + self.config.retransmit_ms
        self._view_changes.setdefault(target, {})[self.index] = view_change
        self._out.append(Broadcast(message=view_change))
        self._count_view_changes(target)

    def _make_view_change(self, target: int) -> ViewChange | None:
        if self._committed_height > 0 and (
            self._head_header is None or self._head_certificate is None
        ):
            return None  # no proof of our base: abstain rather than under-report (see ReplicaStart)
        base = self._committed_height
        prepared = tuple(self._proofs[seq] for seq in sorted(self._proofs) if seq > base)
        header = self._head_header if base > 0 else None
        certificate = self._head_certificate if base > 0 else None
        body = m.view_change_body(
            new_view=target,
            base_header=header,
            base_certificate=certificate,
            prepared=[m.summarise_proof(proof) for proof in prepared],
        )
        self._guard(MessageKind.VIEW_CHANGE, target, 0, sha256(encode(body)))
        view_change = m.sign_view_change(
            self._keys,
            self.config.chain_id,
            new_view=target,
            base_header=header,
            base_certificate=certificate,
            prepared=prepared,
            sender=self.index,
        )
        self._my_view_changes[target] = view_change
        return view_change

    # --- receiving view changes ------------------------------------------------------------

    def _on_view_change(self, view_change: ViewChange) -> None:
        target = view_change.new_view
        if target <= self._view and (self._active or target < self._view):
            self._answer_late_view_change(view_change)
            raise StaleMessage(f"view change for view {target}, this replica is in {self._view}")
        if target > self._view + VIEWS_AHEAD_MAX:
            raise InvalidMessage(
                f"view change for view {target}, more than {VIEWS_AHEAD_MAX} views above this "
                f"replica's {self._view}"
            )
        if view_change.base_height < self._committed_height:
            self._help(view_change.sender)
        votes = self._view_changes.setdefault(target, {})
        if view_change.sender in votes:
            return
        check_view_change(view_change, self.config, self._verifier, self._validator)
        votes[view_change.sender] = view_change
        if view_change.base_height > self._committed_height:
            self._learn_committed(view_change.base_height, (view_change.sender,), urgent=False)
        self._join_higher_views()
        if target == self._view:
            self._count_view_changes(target)

    def _answer_late_view_change(self, view_change: ViewChange) -> None:
        """`sender` is still changing to a view this replica has left behind: show it the new
        view we installed, or, while we are changing views ourselves, our own view change for
        its view. That one may be what it lacks: sent once and lost on the way, it was not
        sent again once we moved to the next view, and without 2f+1 view changes the sender
        never even arms its timer to follow us (see `_count_view_changes`), so it would wait
        for its view for ever."""
        sender = view_change.sender
        if self._active:
            if self._new_view is not None and self._may_help(sender):
                self._out.append(Send(to=sender, message=self._new_view))
        else:
            own = self._my_view_changes.get(view_change.new_view)
            if own is not None and self._may_help(sender):
                self._out.append(Send(to=sender, message=own))
        if view_change.base_height < self._committed_height:
            self._help(sender)

    def _join_higher_views(self) -> None:
        """f+1 replicas asking for views above ours, or working in them: one of them is honest,
        so follow. (One working in a view installed it: a replica cut off while the others
        changed view learns so from their prepares and commits, and its view change for that
        view is answered with the view's NEW-VIEW, see `_answer_late_view_change`; without
        this it stayed in its old view, refusing their messages, until the next view change.)"""
        highest: dict[int, int] = {}
        for view, votes in self._view_changes.items():
            if view > self._view or (view == self._view and self._active):
                for sender in votes:
                    if sender != self.index:
                        highest[sender] = max(highest.get(sender, 0), view)
        for sender, view in self._working_ahead.items():
            if view > self._view or (view == self._view and not self._active):
                highest[sender] = max(highest.get(sender, 0), view)
        if len(highest) > self.config.f:
            self._start_view_change(min(highest.values()))

    def _note_view_ahead(self, sender: int, view: int) -> None:
        if view > self._view + VIEWS_AHEAD_MAX or view <= self._working_ahead.get(sender, -1):
            return
        self._working_ahead[sender] = view
        self._join_higher_views()

    def _count_view_changes(self, target: int) -> None:
        votes = self._view_changes.get(target, {})
        if len(votes) < self.config.quorum or self._active:
            return
        if self._deadline_ms is None:
            exponent = min(max(target - self._installed - 1, 0), BACKOFF_EXPONENT_MAX)
            self._deadline_ms = self._now_ms + self.config.view_change_timeout_ms * 2**exponent
        if target % self.config.n == self.index and self._new_view_for(target) is None:
            self._send_new_view(target, votes)

    def _new_view_for(self, view: int) -> NewView | None:
        nv = self._new_view
        return nv if nv is not None and nv.view == view else None

    def _send_new_view(self, target: int, votes: dict[int, ViewChange]) -> None:
        others = [votes[s] for s in sorted(votes) if s != self.index]
        chosen = [votes[self.index], *others[: self.config.quorum - 1]]
        chosen.sort(key=lambda vc: vc.sender)
        try:
            choice = choose_blocks(
                [vc.summary() for vc in chosen],
                view=target,
                config=self.config,
                genesis=self._genesis,
            )
            blocks = blocks_for(choice, chosen)
        except InvalidMessage:
            return
        pre_prepares = tuple(self._sign_pre_prepare(block.height, block) for block in blocks)
        self._guard(MessageKind.NEW_VIEW, target, 0, b"".join(pp.signature for pp in pre_prepares))
        new_view = m.sign_new_view(
            self._keys,
            self.config.chain_id,
            view=target,
            view_changes=tuple(chosen),
            pre_prepares=pre_prepares,
            sender=self.index,
        )
        self._out.append(Broadcast(message=new_view))
        self._install(new_view, choice)

    # --- new view --------------------------------------------------------------------------

    def _on_new_view(self, new_view: NewView) -> None:
        if new_view.view < self._view or (
            new_view.view == self._view and self._active and not self._lacks_new_view()
        ):
            raise StaleMessage(f"new view {new_view.view}, this replica is in {self._view}")
        choice = check_new_view(
            new_view, self.config, self._verifier, self._genesis, self._validator
        )
        self._install(new_view, choice, entered=new_view.view != self._installed)

    def _lacks_new_view(self) -> bool:
        """Whether this replica is active in a view it installed but holds no NEW-VIEW for: a
        backup restarted in its persisted view. The NEW-VIEW its node replays (or that the
        primary sends again) must be taken then: without it the view's re-proposed blocks are
        unknown here, the pre-prepares built on them wait for a parent forever, and the next
        VIEW-CHANGE leaves out blocks this replica prepared and committed in that view, which
        a later view could replace. (A primary restores its own from what it signed.)"""
        return (
            self._view > 0
            and self._view == self._installed
            and self._new_view_for(self._view) is None
        )

    def _install(self, new_view: NewView, choice: Choice, *, entered: bool = True) -> None:
        """Install `new_view`; `entered`: a view this replica was not in yet (a restarted one
        taking its own view's NEW-VIEW again has entered it before, and says nothing)."""
        view = new_view.view
        self._view, self._active, self._installed = view, True, view
        self._new_view = new_view
        self._view_base = choice.base
        self._view_changes = {v: votes for v, votes in self._view_changes.items() if v > view}
        self._working_ahead = {s: v for s, v in self._working_ahead.items() if v > view}
        self._my_view_changes = {v: vc for v, vc in self._my_view_changes.items() if v >= view}
        self._deadline_ms = self._starved_deadline_ms = None
        if self._requests_pending:
            self._deadline_ms = self._now_ms + self._normal_timeout_ms()
        for pp in new_view.pre_prepares:
            if pp.seq > max(self._committed_height, self._low):
                slot = self._log.slot(view, pp.seq)
                slot.pre_prepare, slot.buffered = pp, None
        self._next_seq = max(choice.max_seq, self._committed_height) + 1
        if entered:
            self._out.append(ViewEntered(view=view))
        if choice.base.height > self._committed_height:
            hint = tuple(
                vc.sender for vc in new_view.view_changes if vc.base_height >= choice.base.height
            )
            self._learn_committed(choice.base.height, hint, urgent=True)
        self._progress(self._committed_height + 1)

    # --- state transfer --------------------------------------------------------------------

    def _note_ahead(self, sender: int, seq: int) -> None:
        self._ahead[sender] = max(self._ahead.get(sender, 0), seq)
        if len(self._ahead) > self.config.f:
            ranked = sorted(self._ahead.values(), reverse=True)
            target = ranked[self.config.f]  # at least one honest replica is this far
            hint = tuple(s for s, seq_ in sorted(self._ahead.items()) if seq_ >= target)
            self._learn_committed(target - self.config.watermark_window, hint, urgent=True)

    def _note_committed_elsewhere(self, seq: int, senders: tuple[int, ...]) -> None:
        self._learn_committed(seq, senders, urgent=seq > self.high_watermark)

    def _learn_committed(self, height: int, hint: tuple[int, ...], *, urgent: bool) -> None:
        """Blocks up to `height` are committed elsewhere; fetch them now if `urgent` (this replica
        cannot get there by itself), else when it is stuck (the next retransmission round)."""
        if height <= self._committed_height or (height <= self._fetch_to and not urgent):
            return
        if height > self._fetch_to:
            self._fetch_to, self._fetch_hint = height, hint
            self._fetch_sent_ms = None
        if urgent and self._fetch_sent_ms is None:
            self._emit_fetch()

    def _emit_fetch(self) -> None:
        self._fetch_sent_ms = self._now_ms
        self._out.append(
            FetchBlocks(
                from_height=self._committed_height + 1,
                to_height=self._fetch_to,
                hint=self._fetch_hint,
            )
        )

    def _on_transferred(self, event: BlocksTransferred) -> None:
        height = event.height
        if event.certificate.height != height or event.certificate.block_hash != event.block_hash:
            raise LocalProtocolError("BlocksTransferred: the certificate is not for the header")
        if height <= self._committed_height:
            return
        if self._executed_height < self._committed_height:
            raise LocalProtocolError(
                f"BlocksTransferred to {height} before executing committed block "
                f"{self._executed_height + 1}"
            )
        previous_height = self._committed_height
        self._committed_height = self._executed_height = height
        self._chain[height] = Link(event.block_hash, event.timestamp_ms)
        # Added to what it kept, as _on_executed does: a node feeds one event per part it
        # applied, and a proposal may vouch for a state an earlier part reached.
        kept = height - self._digests_kept()
        self._digests.update((state.height, state.state_digest) for state in event.states)
        self._digests[height] = event.state_digest
        self._digests = {h: digest for h, digest in self._digests.items() if h > kept}
        self._head_header, self._head_certificate = event.header, event.certificate
        self._proofs = {s: p for s, p in self._proofs.items() if s > height}
        self._ahead = {}
        previous_high = self.high_watermark
        if height > self._low:
            self._collect(height)
        self._next_seq = max(self._next_seq, height + 1)
        self._sign_transferred_checkpoint(event.states, above=previous_height)
        self._on_committed()
        self._progress(min(previous_high, height) + 1)

    def _sign_transferred_checkpoint(self, states: tuple[BlockState, ...], *, above: int) -> None:
        """Sign our checkpoint for the highest checkpoint height a transfer took us past.

        The others may need it: with f validators faulty, a checkpoint becomes stable only if
        every honest one signs it, and a replica that jumped over the height by state transfer
        would otherwise never sign it. The honest replicas that executed it would then hold
        2f votes for ever, their low watermark stuck below it, until the primary could propose
        nothing more. It is resent to peers that are still stuck below it (`_help`).
        """
        interval = self.config.checkpoint_interval
        due = [
            state
            for state in states
            if state.height % interval == 0 and above < state.height <= self._committed_height
        ]
        if not due:
            return
        top = max(due, key=lambda state: state.height)
        what = top.block_hash + top.state_digest
        if self._signed.get((MessageKind.CHECKPOINT, 0, top.height), what) != what:
            return  # we signed another state there: the stable checkpoint will tell who is right
        self._guard(MessageKind.CHECKPOINT, 0, top.height, what)
        checkpoint = m.sign_checkpoint(
            self._keys,
            self.config.chain_id,
            seq=top.height,
            block_hash=top.block_hash,
            state_digest=top.state_digest,
            sender=self.index,
        )
        self._late_checkpoint = checkpoint
        self._out.append(Broadcast(message=checkpoint))

    # --- helping peers that fell behind ----------------------------------------------------

    def _may_help(self, sender: int) -> bool:
        last = self._helped_ms.get(sender)
        if last is not None and self._now_ms < last + self.config.retransmit_ms:
            return False
        self._helped_ms[sender] = self._now_ms
        return True

    def _help_if_behind(self, message: Message) -> None:
        """A peer's message at or below our low watermark: it is behind us, or stuck there
        (resending its checkpoints while waiting for them to become stable)."""
        kinds = PrePrepare | Prepare | Commit | Checkpoint
        if isinstance(message, kinds) and message.seq <= self._low:
            self._help(message.sender)

    def _help(self, sender: int) -> None:
        """Show `sender` what we committed, so it can fetch it (see `_learn_committed`), and
        the checkpoint we signed after a state transfer, which it may need to move on."""
        if not self._may_help(sender):
            return
        proof: tuple[Message, ...] = () if self._stable is None else self._stable.proof
        late = self._late_checkpoint
        if late is not None and (self._stable is None or late.seq > self._stable.seq):
            proof = (*proof, late)
        for message in (*self._head_commit_messages(), *proof):
            if message.sender != sender:
                self._out.append(Send(to=sender, message=message))

    def _head_commit_messages(self) -> tuple[Commit, ...]:
        """The commits behind our committed head, rebuilt from its certificate."""
        certificate = self._head_certificate
        if certificate is None:
            return ()
        return tuple(
            Commit(
                view=certificate.view,
                seq=certificate.height,
                block_hash=certificate.block_hash,
                sender=sender,
                signature=signature,
            )
            for sender, signature in certificate.commits
        )

    # --- restart ---------------------------------------------------------------------------

    def _restore(self, signed: tuple[Message, ...]) -> None:
        """Take back what this replica signed before a restart, so it never contradicts it.

        The latest new view it sent is installed first (its slots are the view's), then its votes
        and checkpoints go back into the log, then a view change it started resumes.
        """
        if any(message.sender != self.index for message in signed):
            raise LocalProtocolError("ReplicaStart.signed holds another validator's message")
        own_new_views = [message for message in signed if isinstance(message, NewView)]
        latest = max(own_new_views, key=lambda nv: nv.view, default=None)
        if latest is not None and latest.view >= self._installed:
            for pp in latest.pre_prepares:
                self._guard(MessageKind.PRE_PREPARE, pp.view, pp.seq, pp.block_hash)
            self._install(latest, _own_choice(latest))
            self._out = []
        for message in signed:
            match message:
                case PrePrepare() | Prepare() | Commit():
                    self._restore_vote(message)
                case Checkpoint():
                    self._restore_checkpoint(message)
                case ViewChange():
                    self._restore_view_change(message)
        pending = max(self._my_view_changes, default=-1)
        if pending > self._view:
            self._view, self._active = pending, False
            self._view_changes.setdefault(pending, {})[self.index] = self._my_view_changes[pending]

    def _restore_checkpoint(self, checkpoint: Checkpoint) -> None:
        """Take back a checkpoint we signed. One at or below the low watermark we restarted at
        is not ours to vote with any more, but it may not be stable at a peer that missed it:
        with f validators faulty such a peer needs every honest vote, and its window would stay
        stuck below the next checkpoints for good. The latest is kept to resend (`_help`), as
        after a state transfer."""
        what = checkpoint.block_hash + checkpoint.state_digest
        if checkpoint.seq > self._low:
            self._guard(MessageKind.CHECKPOINT, 0, checkpoint.seq, what)
            self._checkpoints.add(checkpoint)
            return
        late = self._late_checkpoint
        if late is None or checkpoint.seq > late.seq:
            self._late_checkpoint = checkpoint

    def _restore_view_change(self, view_change: ViewChange) -> None:
        self._my_view_changes[view_change.new_view] = view_change
        for proof in view_change.prepared:
            self._restore_proof(proof)

    def _restore_proof(self, proof: m.PreparedProof) -> None:
        known = self._proofs.get(proof.seq)
        if proof.seq > self._committed_height and (known is None or known.view < proof.view):
            self._proofs[proof.seq] = proof

    def _restore_vote(self, message: PrePrepare | Prepare | Commit) -> None:
        if message.seq <= self._low:
            return
        slot = self._log.slot(message.view, message.seq)
        match message:
            case PrePrepare():
                self._guard(MessageKind.PRE_PREPARE, message.view, message.seq, message.block_hash)
                slot.pre_prepare = message
                if message.view == self._view:
                    self._next_seq = max(self._next_seq, message.seq + 1)
            case Prepare():
                self._guard(MessageKind.PREPARE, message.view, message.seq, message.block_hash)
                slot.prepares[self.index] = message
                slot.prepare_sent = True
            case Commit():
                self._guard(MessageKind.COMMIT, message.view, message.seq, message.block_hash)
                slot.commits[self.index] = message
                slot.commit_sent = True
                self._record_evidence(message)


def _own_choice(new_view: NewView) -> Choice:
    """The choice behind a new view this replica sent itself (no need to recompute it)."""
    top = max(new_view.view_changes, key=lambda vc: (vc.base_height, -vc.sender))
    header = top.base_header
    base = (
        ChainPoint.of(header)
        if header is not None
        else ChainPoint(height=0, hash=b"", timestamp_ms=0, state_height=0, state_digest=b"")
    )
    return Choice(
        base=base,
        base_header=header,
        base_certificate=top.base_certificate,
        headers=tuple(pp.block.header for pp in new_view.pre_prepares),
    )
