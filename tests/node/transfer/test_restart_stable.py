"""A validator restarted past a stable checkpoint gives its replica the proof it kept, so the
replica can show a peer stuck below that checkpoint a whole quorum again, as before the restart
(consensus: `ReplicaStart.stable`). A stored proof that does not check out stops the start."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from ledger.encoding import decode, encode
from node.errors import StorageError
from node.history import encode_proof
from node.service import Node
from node.storage import Storage
from tests.node.transfer.chain import BLOCKS, PARAMS, SETUP, source_chain


def _restarted(path: Path) -> tuple[Node, Storage]:
    storage = Storage(path)
    node = Node(name="node1", genesis=SETUP.genesis, keys=SETUP.validator_keys[1], storage=storage)
    return node, storage


def test_a_restarted_validator_gives_its_replica_the_latest_stable_proof(tmp_path: Path) -> None:
    path = tmp_path / "chain.sqlite"
    source_chain(SETUP, path).close()
    latest = BLOCKS - BLOCKS % PARAMS.checkpoint_interval
    node, storage = _restarted(path)
    try:
        assert node.replica is not None
        stable = node.replica.stable_checkpoint
        assert stable is not None and stable.seq == latest
        [(_, raw)] = storage.checkpoint_proofs(latest, latest)
        assert encode_proof(stable.proof) == raw
        stored = storage.block(latest)
        assert stored is not None
        assert stable.block_hash == stored.block.hash
        assert node.replica.low_watermark == BLOCKS  # the head, as before: it only resends it
    finally:
        storage.close()


def test_a_damaged_stored_proof_stops_the_start_and_says_so(tmp_path: Path) -> None:
    path = tmp_path / "chain.sqlite"
    source_chain(SETUP, path).close()
    latest = BLOCKS - BLOCKS % PARAMS.checkpoint_interval
    with sqlite3.connect(path) as db:
        (raw,) = db.execute(
            "SELECT proof FROM checkpoint_proofs WHERE seq = ?", (latest,)
        ).fetchone()
        short = encode(decode(raw)[:2])  # two of the three votes
        db.execute("UPDATE checkpoint_proofs SET proof = ? WHERE seq = ?", (short, latest))
    storage = Storage(path)
    try:
        with pytest.raises(StorageError, match=f"proof for {latest} needs 3 distinct.*damaged"):
            Node(name="node1", genesis=SETUP.genesis, keys=SETUP.validator_keys[1], storage=storage)
    finally:
        storage.close()
