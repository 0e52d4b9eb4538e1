"""The consensus log on disk: what a restart needs survives the pruning at stable checkpoints."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from consensus.actions import CheckpointStable
from consensus.events import MessageReceived, RequestsPending, Tick
from consensus.messages import Message, Prepare, ViewChange, sign_prepare, sign_view_change
from consensus.normalcase import VIEWS_AHEAD_MAX
from node import wal
from node.errors import StorageError
from tests.node.conftest import backup_node, make_setup

TX_BYTES_MAX = 1 << 20


def test_a_view_change_under_way_survives_a_checkpoint_and_a_restart(tmp_path: Path) -> None:
    # Replica 1 asks for view 1; before the new view comes, a checkpoint becomes stable and the
    # node prunes its log. Its view change, and a peer's for view 1, must stay: a restarted
    # replica that forgot its view change would go back to acting in view 0.
    setup = make_setup()
    path = tmp_path / "chain.sqlite"
    node = backup_node(setup, path)
    node.feed(RequestsPending(now_ms=1, pending=True))
    node.feed(Tick(now_ms=1_000_000))
    assert node.replica is not None and (node.replica.view, node.replica.view_active) == (1, False)
    peer = sign_view_change(
        setup.validator_keys[2],
        setup.genesis.chain_id,
        new_view=1,
        base_header=None,
        base_certificate=None,
        prepared=(),
        sender=2,
    )
    node.feed(MessageReceived(message=peer, now_ms=1_000_001))
    node._carry_out(CheckpointStable(seq=4, state_digest=bytes(32), proof=()))
    signed = wal.signed(node.storage, tx_bytes_max=TX_BYTES_MAX)
    received = [e.message for e in wal.received(node.storage, tx_bytes_max=TX_BYTES_MAX)]
    node.storage.close()
    assert [(type(m), m.new_view) for m in signed if isinstance(m, ViewChange)] == [(ViewChange, 1)]
    assert peer in received
    restarted = backup_node(setup, path)
    try:
        assert restarted.replica is not None
        assert (restarted.replica.view, restarted.replica.view_active) == (1, False)
    finally:
        restarted.storage.close()


def test_only_validly_signed_messages_the_replica_holds_are_logged_and_each_once(
    tmp_path: Path,
) -> None:
    # Anybody reaching the port may post consensus messages (they are signed, so relays are
    # fine): junk must not grow the log a restart replays, nor a retransmitted pre-prepare,
    # which carries its whole block, each time it comes again.
    setup = make_setup()
    node = backup_node(setup, tmp_path / "chain.sqlite")
    chain_id = setup.genesis.chain_id
    try:
        assert node.replica is not None
        junk = [
            Prepare(view=0, seq=seq, block_hash=bytes(32), sender=2, signature=bytes(64))
            for seq in (1, 2, 10**12)
        ]
        good = sign_prepare(
            setup.validator_keys[2], chain_id, view=0, seq=1, block_hash=bytes(32), sender=2
        )
        beyond = sign_prepare(
            setup.validator_keys[3],
            chain_id,
            view=0,
            seq=node.replica.held_max + 1,
            block_hash=bytes(32),
            sender=3,
        )
        far_view = sign_view_change(
            setup.validator_keys[3],
            chain_id,
            new_view=VIEWS_AHEAD_MAX + 1,
            base_header=None,
            base_certificate=None,
            prepared=(),
            sender=3,
        )
        messages: list[Message] = [*junk, good, good, beyond, far_view, good]
        for message in messages:
            node.feed(MessageReceived(message=message, now_ms=1_000))
        logged = [e.message for e in wal.received(node.storage, tx_bytes_max=TX_BYTES_MAX)]
        assert logged == [good]
        assert node.counters.messages_rejected >= len(junk) + 2
    finally:
        node.storage.close()


class _RefusingCommits:
    """A database connection whose COMMITs fail, as on a full disk."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if sql == "COMMIT":
            raise sqlite3.OperationalError("database or disk is full")
        return self._db.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)


def test_a_commit_the_database_refuses_halts_the_node_before_anything_leaves(
    tmp_path: Path,
) -> None:
    # The node's view change is queued for its peers during the batch whose COMMIT fails: it
    # must not go out, since after a restart the node would not know it had signed it.
    setup = make_setup()
    path = tmp_path / "chain.sqlite"
    node = backup_node(setup, path)
    node.feed(RequestsPending(now_ms=1, pending=True))
    database = node.storage._db
    node.storage._db = _RefusingCommits(database)  # type: ignore[assignment]
    with pytest.raises(StorageError, match="database or disk is full"):
        node.feed(Tick(now_ms=1_000_000))
    assert node.halted is not None and "database or disk is full" in node.halted
    assert all(not link.messages.items for link in node.peers.links.values())
    with pytest.raises(StorageError, match="storage stopped"):
        node.feed(Tick(now_ms=1_000_001))
    node.storage._db = database
    node.storage.close()
    restarted = backup_node(setup, path)
    try:
        assert restarted.replica is not None and restarted.replica.view == 0
        assert wal.signed(restarted.storage, tx_bytes_max=TX_BYTES_MAX) == ()
    finally:
        restarted.storage.close()
