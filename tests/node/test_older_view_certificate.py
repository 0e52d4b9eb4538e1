"""A prepared certificate from a view before the one a replica restarts in must survive."""

from __future__ import annotations

from pathlib import Path

from consensus.events import MessageReceived
from consensus.messages import (
    PreparedProof,
    sign_pre_prepare,
    sign_prepare,
)
from tests.node.conftest import backup_node, make_setup, next_block
from tests.node.restarts import new_view_re_proposing, restarted, view_change_on_timeout

TX_BYTES_MAX = 1 << 20


def test_a_certificate_prepared_before_a_new_view_survives_a_restart(tmp_path: Path) -> None:
    # Validator 1 prepares block 1 in view 0 and signs its commit; the commits of the others
    # do not reach it. It misses the view change and installs view 2 straight from the new
    # view's NEW-VIEW (it never sent a view change of its own), which re-proposes block 1, but
    # view 2 stalls before block 1 prepares there. Its view-0 certificate is what its next
    # view change must carry (with a byzantine peer, the quorum for view 3 may hold no other
    # one, and block 1 may hold a commit certificate from view 0). Before a restart it does. After
    # one, replay refuses the view-0 messages as stale: the node kept the certificates the
    # replica held as it entered view 2 (node/wal.py), and hands them back.
    setup = make_setup()
    keys, chain_id = setup.validator_keys, setup.genesis.chain_id
    path = tmp_path / "chain.sqlite"
    node = backup_node(setup, path)
    first = next_block(setup, node.storage, ())
    now_ms = first.header.timestamp_ms + 1
    pre_prepare = sign_pre_prepare(keys[0], chain_id, view=0, seq=1, block=first, sender=0)
    prepare_2 = sign_prepare(keys[2], chain_id, view=0, seq=1, block_hash=first.hash, sender=2)
    for message in (pre_prepare, prepare_2):
        node.feed(MessageReceived(message=message, now_ms=now_ms))
    assert node.replica is not None and node.replica.prepared == {1: (0, first.hash)}

    proof = PreparedProof(
        pre_prepare=pre_prepare,
        prepares=(
            sign_prepare(keys[1], chain_id, view=0, seq=1, block_hash=first.hash, sender=1),
            prepare_2,
        ),
    )
    new_view = new_view_re_proposing(setup, 2, first, {2: (proof,)})
    node.feed(MessageReceived(message=new_view, now_ms=now_ms))
    assert (node.replica.view, node.replica.view_active) == (2, True)
    assert node.replica.prepared == {1: (0, first.hash)}  # live: kept across the new view
    node.storage.close()

    node = restarted(setup, path)
    try:
        replica = node.replica
        assert replica is not None and (replica.view, replica.view_active) == (2, True)
        mine = view_change_on_timeout(node, now_ms, 3)
        assert [(p.seq, p.view) for p in mine.prepared] == [(1, 0)]
    finally:
        node.storage.close()
