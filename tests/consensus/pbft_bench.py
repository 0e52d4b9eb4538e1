"""A test bench around one replica: every validator's keys, so tests can speak for any peer."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, TypeVar, overload

from consensus import messages as m
from consensus.actions import Action, Broadcast, CommitBlock, Rejected
from consensus.config import ChainPoint
from consensus.events import BlockExecuted, MessageReceived
from consensus.messages import Message
from consensus.replica import BlockValidator, Replica, ReplicaConfig, ReplicaStart
from consensus.sim.harness import AcceptAll
from ledger.block import ZERO_HASH, Block
from ledger.certificate import CommitCertificate
from ledger.crypto import KeyPair
from ledger.hashing import sha256
from ledger.tx import Transaction

M = TypeVar("M", m.PrePrepare, m.Prepare, m.Commit, m.Checkpoint, m.ViewChange, m.NewView)

CHAIN_ID = "bench-chain"
GENESIS_DIGEST = sha256(b"bench-genesis-state")
GENESIS_TIME_MS = 1_000
GENESIS = ChainPoint(
    height=0,
    hash=ZERO_HASH,
    timestamp_ms=GENESIS_TIME_MS,
    state_height=0,
    state_digest=GENESIS_DIGEST,
)


def validator_keys(n: int) -> list[KeyPair]:
    return [KeyPair.from_seed(sha256(f"bench-{i}".encode())) for i in range(n)]


CLIENT = KeyPair.from_seed(sha256(b"bench-client"))


def make_tx(nonce: int, *, method: str = "noop", chain_id: str = CHAIN_ID) -> Transaction:
    return Transaction.create(
        CLIENT, chain_id=chain_id, nonce=nonce, contract="bench", method=method, args={}
    )


class Bench:
    def __init__(
        self,
        n: int = 4,
        index: int = 1,
        *,
        checkpoint_interval: int = 10,
        watermark_window: int = 40,
        validator: BlockValidator | None = None,
        block_bytes_max: int | None = None,
    ) -> None:
        self.n = n
        self.keys = validator_keys(n)
        self.validators = tuple(key.public_key for key in self.keys)
        self.config = ReplicaConfig(
            chain_id=CHAIN_ID,
            validators=self.validators,
            index=index,
            checkpoint_interval=checkpoint_interval,
            watermark_window=watermark_window,
            block_bytes_max=block_bytes_max,
        )
        start = ReplicaStart(
            height=0,
            block_hash=ZERO_HASH,
            timestamp_ms=GENESIS_TIME_MS,
            state_height=0,
            state_digest=GENESIS_DIGEST,
        )
        self.replica = Replica(self.config, self.keys[index], validator or AcceptAll(), start)
        self.blocks: dict[int, Block] = {}

    # --- building blocks and messages ------------------------------------------------------

    def block(self, seq: int, **changes: object) -> Block:
        """Block `seq` on top of the bench's block seq-1; `changes` override header fields.

        Without changes the block becomes the bench's block `seq` (the honest chain).
        """
        parent = self.blocks.get(seq - 1)
        fields: dict[str, object] = {
            "chain_id": CHAIN_ID,
            "height": seq,
            "prev_hash": ZERO_HASH if parent is None else parent.hash,
            "state_height": 0,
            "state_digest": GENESIS_DIGEST,
            "proposer": 0,
            "view": 0,
            "timestamp_ms": GENESIS_TIME_MS + seq,
            "txs": (make_tx(seq),),
        }
        fields.update(changes)
        block = Block.build(**fields)  # type: ignore[arg-type]
        if not changes:
            self.blocks.setdefault(seq, block)
        return block

    def chain(self, length: int) -> list[Block]:
        return [self.block(seq) for seq in range(1, length + 1)]

    def pre_prepare(
        self, block: Block, *, seq: int | None = None, view: int = 0, sender: int = 0
    ) -> m.PrePrepare:
        return m.sign_pre_prepare(
            self.keys[sender],
            CHAIN_ID,
            view=view,
            seq=block.height if seq is None else seq,
            block=block,
            sender=sender,
        )

    def prepare(self, block: Block, sender: int, *, view: int = 0) -> m.Prepare:
        return m.sign_prepare(
            self.keys[sender],
            CHAIN_ID,
            view=view,
            seq=block.height,
            block_hash=block.hash,
            sender=sender,
        )

    def commit(self, block: Block, sender: int, *, view: int = 0) -> m.Commit:
        return m.sign_commit(
            self.keys[sender],
            CHAIN_ID,
            view=view,
            seq=block.height,
            block_hash=block.hash,
            sender=sender,
        )

    def checkpoint(self, seq: int, block_hash: bytes, digest: bytes, sender: int) -> m.Checkpoint:
        return m.sign_checkpoint(
            self.keys[sender],
            CHAIN_ID,
            seq=seq,
            block_hash=block_hash,
            state_digest=digest,
            sender=sender,
        )

    def proof(self, block: Block, *, view: int = 0, seq: int | None = None) -> m.PreparedProof:
        """A prepared certificate for `block` in `view`: the primary's pre-prepare, 2f prepares."""
        primary = view % self.n
        backups = [i for i in range(self.n) if i != primary][: 2 * self.config.f]
        pre_prepare = self.pre_prepare(block, view=view, sender=primary, seq=seq)
        prepares = tuple(
            m.sign_prepare(
                self.keys[sender],
                CHAIN_ID,
                view=view,
                seq=pre_prepare.seq,
                block_hash=block.hash,
                sender=sender,
            )
            for sender in backups
        )
        return m.PreparedProof(pre_prepare=pre_prepare, prepares=prepares)

    def start_at(self, block: Block, digest: bytes, **fields: Any) -> ReplicaStart:
        """Where a replica restarts that committed and executed `block` (state `digest`), as a
        node rebuilds it: the block's header and certificate, and `fields` (signed, stable...)."""
        return ReplicaStart(
            height=block.height,
            block_hash=block.hash,
            timestamp_ms=block.header.timestamp_ms,
            state_height=block.height,
            state_digest=digest,
            header=block.header,
            certificate=self.certificate(block),
            **fields,
        )

    def certificate(self, block: Block, *, view: int = 0) -> CommitCertificate:
        signers = range(self.config.quorum)
        return CommitCertificate(
            height=block.height,
            view=view,
            block_hash=block.hash,
            commits=tuple((i, self.commit(block, i, view=view).signature) for i in signers),
        )

    def view_change(
        self,
        sender: int,
        new_view: int,
        prepared: tuple[m.PreparedProof, ...] = (),
        base: Block | None = None,
    ) -> m.ViewChange:
        return m.sign_view_change(
            self.keys[sender],
            CHAIN_ID,
            new_view=new_view,
            base_header=None if base is None else base.header,
            base_certificate=None if base is None else self.certificate(base),
            prepared=prepared,
            sender=sender,
        )

    def new_view(
        self, changes: tuple[m.ViewChange, ...], blocks: tuple[Block, ...], *, view: int
    ) -> m.NewView:
        """The new-view message of `view`'s primary: `changes` and pre-prepares for `blocks`."""
        primary = view % self.n
        pre_prepares = tuple(
            self.pre_prepare(block, view=view, sender=primary, seq=block.height) for block in blocks
        )
        return m.sign_new_view(
            self.keys[primary],
            CHAIN_ID,
            view=view,
            view_changes=changes,
            pre_prepares=pre_prepares,
            sender=primary,
        )

    # --- driving the replica ---------------------------------------------------------------

    def deliver(self, *messages: Message, now_ms: int = 0) -> list[Action]:
        actions: list[Action] = []
        for message in messages:
            actions += self.replica.handle(MessageReceived(message=message, now_ms=now_ms))
        return actions

    def others(self) -> list[int]:
        return [i for i in range(self.n) if i != self.replica.index]

    def backups(self) -> list[int]:
        """Backups other than the replica under test."""
        return [i for i in self.others() if i != self.replica.primary]

    def commit_block(self, block: Block) -> list[Action]:
        """Drive `block` (already pre-prepared here) through prepare and commit quorums."""
        f = self.config.f
        prepares = [self.prepare(block, sender) for sender in self.backups()[: 2 * f]]
        commits = [self.commit(block, sender) for sender in self.others()[: 2 * f]]
        return self.deliver(*prepares, *commits)

    def execute(self, height: int, digest: bytes) -> list[Action]:
        return self.replica.handle(BlockExecuted(height=height, state_digest=digest))


@overload
def broadcasts(actions: Sequence[Action]) -> list[Message]: ...


@overload
def broadcasts(actions: Sequence[Action], kind: type[M]) -> list[M]: ...


def broadcasts(actions: Sequence[Action], kind: type[Any] = object) -> list[Any]:
    return [
        action.message
        for action in actions
        if isinstance(action, Broadcast) and isinstance(action.message, kind)
    ]


def rejections(actions: Sequence[Action]) -> list[Rejected]:
    return [action for action in actions if isinstance(action, Rejected)]


def commits(actions: Sequence[Action]) -> list[CommitBlock]:
    return [action for action in actions if isinstance(action, CommitBlock)]


def tamper_txs(block: Block, txs: tuple[Transaction, ...]) -> Block:
    """The same header over different transactions: a tx_root mismatch."""
    return dataclasses.replace(block, txs=txs)
