"""Byzantine validators for test clusters: a node that lies, signing with its own key.

Test-only, and refused unless the environment says so (`ALLOW_ENV=1`) as well as the node's
`--byzantine MODE` option: a production node must never run this by accident. The replica inside
stays honest and `consensus/` is untouched; what changes is what leaves the node. The node hands
every message its replica wants sent to `Byzantine.outgoing`, which returns what actually goes to
each destination. The node still writes the honest message to its log first, so the lie is only
on the wire, as it would be for a validator whose operator patched its sender.

Modes (`Mode`):
  equivocate         as primary, a different block for the same sequence to each half of the
                     replicas, each backed by this node's commit for it
  conflicting-votes  prepares and commits for a bogus block digest to some replicas, and now and
                     then both the true and the bogus vote to one replica
  invalid-blocks     as primary, blocks honest replicas must refuse, in turn: a tx root that does
                     not match the transactions, a transaction with a corrupted signature, and a
                     parent hash that is not the previous block's
  flood              junk bytes, re-signed messages for far-away sequences and duplicates of its
                     own recent messages, at most RATE per second to each peer (default 200)
  withhold           drops its outgoing consensus messages, each with probability RATE (default 1)

The spec is `MODE` or `MODE=RATE`; the random choices are seeded, so a run can be repeated.
"""

from __future__ import annotations

import dataclasses
import enum
import os
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from random import Random

from consensus import messages as m
from consensus.messages import Commit, Message, Prepare, PrePrepare, encode_message
from ledger.block import Block
from ledger.crypto import KeyPair
from ledger.encoding import encode
from ledger.hashing import sha256
from ledger.tx import Transaction
from node.errors import NodeError

ALLOW_ENV = "MILLCHAIN_ALLOW_BYZANTINE"
FLOOD_RATE_PER_S_DEFAULT = 200.0
FLOOD_RATE_PER_S_MAX = 5000.0
RECENT_KEPT = 64  # own messages kept for the flood's duplicates


class Mode(enum.StrEnum):
    EQUIVOCATE = "equivocate"
    CONFLICTING_VOTES = "conflicting-votes"
    INVALID_BLOCKS = "invalid-blocks"
    FLOOD = "flood"
    WITHHOLD = "withhold"


class ByzantineRefused(NodeError):
    """Byzantine behaviour asked for without the environment allowing it, or a bad spec."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ByzantineSpec:
    mode: Mode
    rate: float  # withhold: fraction of messages dropped; flood: messages per second per peer
    seed: int = 0

    @classmethod
    def parse(cls, text: str, *, seed: int = 0) -> ByzantineSpec:
        """`MODE` or `MODE=RATE` (see the module docstring)."""
        name, _, rate_text = text.strip().partition("=")
        try:
            mode = Mode(name)
        except ValueError:
            modes = ", ".join(mode.value for mode in Mode)
            raise ByzantineRefused(
                f"unknown byzantine mode {name!r}; expected one of {modes}"
            ) from None
        rate = _default_rate(mode) if not rate_text else _parse_rate(mode, rate_text)
        return cls(mode=mode, rate=rate, seed=seed)


def _default_rate(mode: Mode) -> float:
    return FLOOD_RATE_PER_S_DEFAULT if mode is Mode.FLOOD else 1.0


def _parse_rate(mode: Mode, text: str) -> float:
    try:
        rate = float(text)
    except ValueError:
        raise ByzantineRefused(f"byzantine rate must be a number, got {text!r}") from None
    if mode is Mode.WITHHOLD and not 0.0 <= rate <= 1.0:
        raise ByzantineRefused(f"withhold=RATE is a probability in [0, 1], got {rate}")
    if mode is Mode.FLOOD and not 0.0 < rate <= FLOOD_RATE_PER_S_MAX:
        raise ByzantineRefused(
            f"flood=RATE is messages per second per peer in (0, {FLOOD_RATE_PER_S_MAX:.0f}], "
            f"got {rate}"
        )
    if mode not in (Mode.WITHHOLD, Mode.FLOOD):
        raise ByzantineRefused(f"byzantine mode {mode} takes no rate")
    return rate


def check_allowed(environ: Mapping[str, str] = os.environ) -> None:
    """Raise unless the environment explicitly allows byzantine behaviour."""
    if environ.get(ALLOW_ENV) != "1":
        raise ByzantineRefused(
            f"byzantine behaviour is for test clusters only; set {ALLOW_ENV}=1 to allow it"
        )


@dataclass(slots=True)
class ByzantineCounters:
    rewritten: int = 0  # messages replaced by a lie
    withheld: int = 0  # messages not sent
    flooded: int = 0  # junk and duplicate messages sent


class Byzantine:
    """What one byzantine validator sends in place of its replica's honest messages."""

    def __init__(self, spec: ByzantineSpec, *, keys: KeyPair, chain_id: str, index: int) -> None:
        check_allowed()
        self.spec = spec
        self.counters = ByzantineCounters()
        self._keys = keys
        self._chain_id = chain_id
        self._index = index
        self._rng = Random(spec.seed)
        self._recent: deque[bytes] = deque(maxlen=RECENT_KEPT)

    @property
    def mode(self) -> Mode:
        return self.spec.mode

    def outgoing(self, message: Message, destinations: Sequence[int]) -> list[tuple[int, Message]]:
        """(destination, message) pairs to send in place of `message` to `destinations`."""
        sends = self._rewrite(message, list(destinations))
        if self.mode is Mode.FLOOD:
            self._recent.extend(encode_message(sent) for _, sent in sends[:1])
        return sends

    def _rewrite(self, message: Message, destinations: list[int]) -> list[tuple[int, Message]]:
        match self.mode:
            case Mode.EQUIVOCATE if isinstance(message, PrePrepare):
                return self._equivocate(message, destinations)
            case Mode.CONFLICTING_VOTES if isinstance(message, Prepare | Commit):
                return self._conflicting_votes(message, destinations)
            case Mode.INVALID_BLOCKS if isinstance(message, PrePrepare):
                self.counters.rewritten += 1
                invalid = self._invalid_pre_prepare(message)
                return [(d, invalid) for d in destinations]
            case Mode.WITHHOLD:
                kept = [d for d in destinations if self._rng.random() >= self.spec.rate]
                self.counters.withheld += len(destinations) - len(kept)
                return [(d, message) for d in kept]
        return [(d, message) for d in destinations]

    # -- equivocation --------------------------------------------------------------------------

    def _equivocate(
        self, pre_prepare: PrePrepare, destinations: list[int]
    ) -> list[tuple[int, Message]]:
        other = self._resign(pre_prepare, _other_block(pre_prepare.block))
        half = max(len(destinations) // 2, 1)
        sends: list[tuple[int, Message]] = []
        for i, destination in enumerate(destinations):
            chosen = pre_prepare if i < half else other
            sends += [(destination, chosen), (destination, self._commit_for(chosen))]
        self.counters.rewritten += len(destinations) - half
        return sends

    def _commit_for(self, pre_prepare: PrePrepare) -> Commit:
        return m.sign_commit(
            self._keys,
            self._chain_id,
            view=pre_prepare.view,
            seq=pre_prepare.seq,
            block_hash=pre_prepare.block_hash,
            sender=self._index,
        )

    # -- conflicting votes ---------------------------------------------------------------------

    def _conflicting_votes(
        self, vote: Prepare | Commit, destinations: list[int]
    ) -> list[tuple[int, Message]]:
        bogus = self._vote_for(vote, sha256(vote.block_hash + b"byzantine"))
        sends: list[tuple[int, Message]] = []
        for destination in destinations:
            draw = self._rng.random()
            if draw < 0.5:
                sends.append((destination, bogus))
            elif draw < 0.7:
                sends += [(destination, vote), (destination, bogus)]
            else:
                sends.append((destination, vote))
        self.counters.rewritten += sum(1 for _, sent in sends if sent is bogus)
        return sends

    def _vote_for(self, vote: Prepare | Commit, block_hash: bytes) -> Prepare | Commit:
        sign = m.sign_prepare if isinstance(vote, Prepare) else m.sign_commit
        return sign(
            self._keys,
            self._chain_id,
            view=vote.view,
            seq=vote.seq,
            block_hash=block_hash,
            sender=self._index,
        )

    # -- invalid blocks ------------------------------------------------------------------------

    def _invalid_pre_prepare(self, pre_prepare: PrePrepare) -> PrePrepare:
        block = pre_prepare.block
        kind = pre_prepare.seq % 3
        if kind == 1 and block.txs:
            invalid = _bad_signature_block(block)
        elif kind == 2:
            invalid = _wrong_parent_block(block)
        else:
            invalid = _bad_tx_root_block(block)
        return self._resign(pre_prepare, invalid)

    def _resign(self, pre_prepare: PrePrepare, block: Block) -> PrePrepare:
        return m.sign_pre_prepare(
            self._keys,
            self._chain_id,
            view=pre_prepare.view,
            seq=pre_prepare.seq,
            block=block,
            sender=self._index,
        )

    # -- flood -----------------------------------------------------------------------------------

    def flood_batch(self, count: int, *, seq_base: int, view: int) -> list[bytes]:
        """`count` junk items for one peer: random bytes, truncated and duplicated own messages,
        and validly signed votes for sequences far past any watermark."""
        items: list[bytes] = []
        for _ in range(count):
            draw = self._rng.random()
            if draw < 0.3 or not self._recent:
                items.append(self._rng.randbytes(self._rng.randint(1, 512)))
            elif draw < 0.55:
                recent = self._rng.choice(self._recent)
                items.append(recent[: self._rng.randint(0, len(recent) - 1)])
            elif draw < 0.8:
                items.append(self._rng.choice(self._recent))
            else:
                seq = seq_base + 10_000 + self._rng.randint(0, 1_000_000)
                vote = m.sign_prepare(
                    self._keys,
                    self._chain_id,
                    view=view,
                    seq=seq,
                    block_hash=self._rng.randbytes(32),
                    sender=self._index,
                )
                items.append(encode_message(vote))
        self.counters.flooded += len(items)
        return items


def _other_block(block: Block) -> Block:
    """The same transactions under a header one millisecond later: another block hash."""
    header = dataclasses.replace(block.header, timestamp_ms=block.header.timestamp_ms + 1)
    return Block(header=header, txs=block.txs)


def _bad_tx_root_block(block: Block) -> Block:
    header = dataclasses.replace(block.header, tx_root=sha256(block.header.tx_root + b"bad"))
    return Block(header=header, txs=block.txs)


def _wrong_parent_block(block: Block) -> Block:
    header = dataclasses.replace(block.header, prev_hash=sha256(block.header.prev_hash + b"bad"))
    return Block(header=header, txs=block.txs)


def _bad_signature_block(block: Block) -> Block:
    """A known transaction with its signature corrupted, under a consistent tx root: the body
    (and so the transaction hash) is the signed one, only the signature bytes are wrong. Built
    from its wire form, which is what goes out (a transaction keeps the bytes it came from)."""
    first = block.txs[0]
    corrupted = bytes([first.signature[0] ^ 0xFF]) + first.signature[1:]
    forged = Transaction.from_wire(encode({"body": first.body, "signature": corrupted}))
    txs = (forged, *block.txs[1:])
    header = block.header
    return Block.build(
        chain_id=header.chain_id,
        height=header.height,
        prev_hash=header.prev_hash,
        state_height=header.state_height,
        state_digest=header.state_digest,
        proposer=header.proposer,
        view=header.view,
        timestamp_ms=header.timestamp_ms,
        txs=txs,
    )
