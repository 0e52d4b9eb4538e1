"""A pre-prepare's signature covers its header only: a copy with other transactions must not
keep the genuine one out of the log a restart replays."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from consensus.messages import encode_message, sign_commit, sign_pre_prepare, sign_prepare
from ledger.encoding import encode
from ledger.tx import Transaction
from node import wal
from tests.node.conftest import backup_node, make_setup, next_block

TX_BYTES_MAX = 1 << 20


def test_a_tampered_copy_logged_first_does_not_hide_the_genuine_pre_prepare(
    tmp_path: Path,
) -> None:
    # A relay (or the primary itself) sends validator 1 a copy of the primary's pre-prepare
    # with the same header and signature but a transaction's signature forged (its body, so
    # the tx root, unchanged): it decodes and its signature verifies. Logged and remembered
    # by signature, it kept the genuine one, which came next, out of the log as an "exact
    # duplicate"; after a restart, replay handed the replica the forged copy, which it took
    # without checking the transactions (its own restored prepare vouched for that block
    # hash), then committed, stored and served. A pre-prepare is now logged only with its
    # transactions' signatures good.
    setup = make_setup()
    keys, chain_id = setup.validator_keys, setup.genesis.chain_id
    path = tmp_path / "chain.sqlite"
    node = backup_node(setup, path)
    admin = setup.identities["admin"]
    tx = Transaction.create(
        admin, chain_id=chain_id, nonce=0, contract="orders", method="noop", args={}
    )
    # The same body (so the same tx root) under a signature that does not verify.
    forged = Transaction.from_wire(encode({"body": tx.body, "signature": bytes(64)}))
    first = next_block(setup, node.storage, (tx,))
    genuine = sign_pre_prepare(keys[0], chain_id, view=0, seq=1, block=first, sender=0)
    tampered = dataclasses.replace(genuine, block=dataclasses.replace(first, txs=(forged,)))
    assert tampered.signature == genuine.signature and tampered != genuine
    prepare_2 = sign_prepare(keys[2], chain_id, view=0, seq=1, block_hash=first.hash, sender=2)
    # Through the node's edge, as a peer's batches come (decoded, then fed).
    for message in (tampered, genuine, prepare_2):
        node.receive_peer_batch([encode_message(message)], [], from_validator=True)
    assert node.replica is not None and node.replica.prepared == {1: (0, first.hash)}
    logged = [e.message for e in wal.received(node.storage, tx_bytes_max=TX_BYTES_MAX)]
    node.storage.close()

    restarted = backup_node(setup, path)
    try:
        restarted._replay()
        assert restarted.replica is not None
        # It commits block 1 once the others' commits come; what it stores must be the block
        # the primary signed, whose transactions' signatures verify.
        for sender in (0, 2):
            commit = sign_commit(
                keys[sender], chain_id, view=0, seq=1, block_hash=first.hash, sender=sender
            )
            restarted.receive_peer_batch([encode_message(commit)], [], from_validator=True)
        stored = restarted.storage.block(1)
        assert stored is not None
        assert stored.block.to_wire() == first.to_wire()
        assert genuine in logged and tampered not in logged
    finally:
        restarted.storage.close()
