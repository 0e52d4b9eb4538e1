"""What can go wrong in a simulated run, and the byzantine replicas.

`FaultConfig` names the fault classes a run draws from; the simulator turns it and the seed into a
concrete schedule (which replicas crash when, which partitions, which replicas are byzantine and
how). A byzantine replica is a real `Replica` whose outgoing messages `Byzantine.rewrite` corrupts
before they reach the network, signing with the replica's own key where a lie needs a signature.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass
from random import Random

from consensus import messages as m
from consensus.messages import Commit, Message, NewView, Prepare, PrePrepare, ViewChange
from ledger.block import Block, BlockHeader
from ledger.crypto import KeyPair
from ledger.hashing import sha256


class ByzantineKind(enum.StrEnum):
    SILENT = "silent"  # sends nothing
    EQUIVOCATE = "equivocate"  # as primary: different blocks to different replicas
    CONFLICTING_VOTES = "conflicting-votes"  # prepares/commits for blocks it never got
    BAD_SIGNATURES = "bad-signatures"  # corrupts the signature of what it sends
    STALE_VIEWS = "stale-views"  # re-signs its messages for an older view
    # as a new view's primary: re-proposes other blocks than its view changes imply
    BAD_NEW_VIEW = "bad-new-view"
    # hides the certificates it prepared, or asks for a view further ahead than the one it left
    LYING_VIEW_CHANGES = "lying-view-changes"
    # as primary: with each block also offers another one for a height likely committed already
    REWRITE_HISTORY = "rewrite-history"


FAULT_NAMES = ("crash", "partition", "loss", "dup", "reorder", "delay", "byzantine")
FAULTY_MS_DEFAULT = 4_000


@dataclass(frozen=True, slots=True, kw_only=True)
class FaultConfig:
    crash: bool = False
    partition: bool = False
    loss: bool = False
    dup: bool = False
    reorder: bool = False
    delay: bool = False  # long-tailed delays instead of uniform ones
    byzantine: int = 0  # how many byzantine replicas (at most f; clipped by the simulator)
    byzantine_kinds: tuple[ByzantineKind, ...] = tuple(ByzantineKind)
    # the faulty phase; then the network heals and crashed nodes restart
    faulty_ms: int = FAULTY_MS_DEFAULT
    liveness_ms: int = 60_000  # how long after healing every accepted request must be committed
    tx_interval_ms: int = 40  # a client request every this often, during the faulty phase

    @classmethod
    def none(cls) -> FaultConfig:
        return cls()

    @classmethod
    def all(cls, byzantine: int = 1) -> FaultConfig:
        return cls(
            crash=True,
            partition=True,
            loss=True,
            dup=True,
            reorder=True,
            delay=True,
            byzantine=byzantine,
        )

    @classmethod
    def parse(cls, spec: str, *, byzantine: int | None = None) -> FaultConfig:
        """ "all", "none", or a comma list of FAULT_NAMES (e.g. "crash,loss,byzantine")."""
        spec = spec.strip().lower()
        if spec == "all":
            return cls.all(1 if byzantine is None else byzantine)
        if spec in ("none", ""):
            return dataclasses.replace(cls.none(), byzantine=byzantine or 0)
        names = {name.strip() for name in spec.split(",") if name.strip()}
        unknown = names - set(FAULT_NAMES)
        if unknown:
            raise ValueError(
                f"unknown fault(s) {', '.join(sorted(unknown))}; expected all, none or a list "
                f"of {', '.join(FAULT_NAMES)}"
            )
        flags = {name: name in names for name in FAULT_NAMES if name != "byzantine"}
        count = byzantine if byzantine is not None else (1 if "byzantine" in names else 0)
        return cls(**flags, byzantine=count)  # type: ignore[arg-type]

    def cli_options(self) -> str:
        """The `millchain sim` options that select these faults."""
        names = [name for name in FAULT_NAMES[:-1] if getattr(self, name)]
        options = f"--faults {','.join(names) or 'none'} --byzantine {self.byzantine}"
        if self.faulty_ms != FAULTY_MS_DEFAULT:
            options += f" --faulty-ms {self.faulty_ms}"
        return options

    def describe(self) -> str:
        names = [name for name in FAULT_NAMES[:-1] if getattr(self, name)]
        if self.byzantine:
            names.append(f"byzantine={self.byzantine}")
        return ",".join(names) or "none"


class Byzantine:
    """Rewrites what one byzantine replica sends: a list of (destination, message) per send."""

    def __init__(self, kind: ByzantineKind, keys: KeyPair, chain_id: str, rng: Random) -> None:
        self.kind = kind
        self._keys = keys
        self._chain_id = chain_id
        self._rng = rng
        # REWRITE_HISTORY: headers it proposed in earlier views or based a new view on, and in
        # the view it proposes in now; the (view, height) pairs it has rewritten.
        self._history: dict[int, BlockHeader] = {}
        self._this_view: dict[int, BlockHeader] = {}
        self._view = 0
        self._done: set[tuple[int, int]] = set()

    def rewrite(self, message: Message, destinations: list[int]) -> list[tuple[int, Message]]:
        match self.kind:
            case ByzantineKind.SILENT:
                return []
            case ByzantineKind.EQUIVOCATE if isinstance(message, PrePrepare):
                # Each side gets its own block, backed by this replica's commit for it.
                other = self._other_pre_prepare(message)
                half = max(len(destinations) // 2, 1)
                sends: list[tuple[int, Message]] = []
                for i, d in enumerate(destinations):
                    pp = message if i < half else other
                    sends += [(d, pp), (d, self._commit_for(pp))]
                return sends
            case ByzantineKind.CONFLICTING_VOTES if isinstance(message, Prepare | Commit):
                return [
                    (d, self._other_vote(message) if self._rng.random() < 0.5 else message)
                    for d in destinations
                ]
            case ByzantineKind.BAD_SIGNATURES:
                bad = dataclasses.replace(message, signature=bytes(64))
                return [(d, bad if self._rng.random() < 0.7 else message) for d in destinations]
            case ByzantineKind.STALE_VIEWS if isinstance(message, Prepare | Commit | PrePrepare):
                stale = self._stale(message)
                return [(d, stale) for d in destinations]
            case ByzantineKind.REWRITE_HISTORY if isinstance(message, PrePrepare):
                sends = [(d, message) for d in destinations]
                earlier = self._rewritten(message)
                if earlier is not None:
                    sends += [(d, earlier) for d in destinations]
                return sends
            case ByzantineKind.REWRITE_HISTORY if isinstance(message, NewView):
                self._note_new_view(message)
            case ByzantineKind.BAD_NEW_VIEW if isinstance(message, NewView):
                bad = self._bad_new_view(message)
                return [(d, bad) for d in destinations]
            case ByzantineKind.LYING_VIEW_CHANGES if isinstance(message, ViewChange):
                lie = self._lying_view_change(message)
                return [(d, lie) for d in destinations]
        return [(d, message) for d in destinations]

    def _rewritten(self, pre_prepare: PrePrepare) -> PrePrepare | None:
        """Another block for a height most likely committed before this view: one of the last 3
        it proposed in earlier views, or the base of the new view it installed. Same parent, no
        transactions, pre-prepared in the current view, once per height and view (rewriting
        its own proposals of this view would only give it away as an equivocator)."""
        view, seq = pre_prepare.view, pre_prepare.seq
        if view != self._view:
            self._history.update(self._this_view)
            self._this_view, self._view = {}, view
        self._this_view[seq] = pre_prepare.block.header
        top = max(self._history, default=0)
        heights = [h for h in self._history if top - 3 <= h < seq and (view, h) not in self._done]
        if not heights:
            return None
        height = self._rng.choice(heights)
        self._done.add((view, height))
        header = self._history[height]
        block = Block.build(
            chain_id=header.chain_id,
            height=height,
            prev_hash=header.prev_hash,
            state_height=header.state_height,
            state_digest=header.state_digest,
            proposer=pre_prepare.sender,
            view=view,
            timestamp_ms=header.timestamp_ms + 1,
            txs=(),
        )
        return m.sign_pre_prepare(
            self._keys,
            self._chain_id,
            view=view,
            seq=height,
            block=block,
            sender=pre_prepare.sender,
        )

    def _note_new_view(self, new_view: NewView) -> None:
        """Remember the new view's base (committed, so another block there is a rewrite)."""
        bases = [vc.base_header for vc in new_view.view_changes if vc.base_header is not None]
        if bases:
            base = max(bases, key=lambda header: header.height)
            self._history[base.height] = base

    def _bad_new_view(self, new_view: NewView) -> NewView:
        """One of: a re-proposed block swapped for another, the highest one left out, or (with
        nothing to re-propose) one view change short of a quorum. All signed by this replica."""
        view_changes, pre_prepares = list(new_view.view_changes), list(new_view.pre_prepares)
        if pre_prepares and self._rng.random() < 0.5:
            index = self._rng.randrange(len(pre_prepares))
            pre_prepares[index] = self._other_pre_prepare(pre_prepares[index])
        elif pre_prepares:
            pre_prepares.pop()
        else:
            view_changes.pop()
        return m.sign_new_view(
            self._keys,
            self._chain_id,
            view=new_view.view,
            view_changes=tuple(view_changes),
            pre_prepares=tuple(pre_prepares),
            sender=new_view.sender,
        )

    def _lying_view_change(self, view_change: ViewChange) -> ViewChange:
        """Its prepared certificates left out, or a view 1 to 3 further ahead asked for."""
        hide = bool(view_change.prepared) and self._rng.random() < 0.5
        return m.sign_view_change(
            self._keys,
            self._chain_id,
            new_view=view_change.new_view + (0 if hide else self._rng.randint(1, 3)),
            base_header=view_change.base_header,
            base_certificate=view_change.base_certificate,
            prepared=() if hide else view_change.prepared,
            sender=view_change.sender,
        )

    def _other_pre_prepare(self, pre_prepare: PrePrepare) -> PrePrepare:
        header = dataclasses.replace(
            pre_prepare.block.header, timestamp_ms=pre_prepare.block.header.timestamp_ms + 1
        )
        block = Block(header=header, txs=pre_prepare.block.txs)
        return m.sign_pre_prepare(
            self._keys,
            self._chain_id,
            view=pre_prepare.view,
            seq=pre_prepare.seq,
            block=block,
            sender=pre_prepare.sender,
        )

    def _commit_for(self, pre_prepare: PrePrepare) -> Commit:
        return m.sign_commit(
            self._keys,
            self._chain_id,
            view=pre_prepare.view,
            seq=pre_prepare.seq,
            block_hash=pre_prepare.block_hash,
            sender=pre_prepare.sender,
        )

    def _other_vote(self, vote: Prepare | Commit) -> Prepare | Commit:
        bogus = sha256(vote.block_hash + b"byzantine")
        sign = m.sign_prepare if isinstance(vote, Prepare) else m.sign_commit
        return sign(
            self._keys,
            self._chain_id,
            view=vote.view,
            seq=vote.seq,
            block_hash=bogus,
            sender=vote.sender,
        )

    def _stale(self, message: Prepare | Commit | PrePrepare) -> Message:
        view = max(message.view - 1, 0)
        if isinstance(message, PrePrepare):
            return m.sign_pre_prepare(
                self._keys,
                self._chain_id,
                view=view,
                seq=message.seq,
                block=message.block,
                sender=message.sender,
            )
        return self._other_vote(dataclasses.replace(message, view=view))
