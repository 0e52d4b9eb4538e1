"""A new view installed far ahead of a replica's view must survive a restart like a near one."""

from __future__ import annotations

from pathlib import Path

import pytest

from consensus.events import MessageReceived
from consensus.messages import (
    PreparedProof,
    sign_pre_prepare,
    sign_prepare,
)
from consensus.normalcase import VIEWS_AHEAD_MAX
from tests.node.conftest import backup_node, make_setup, next_block
from tests.node.restarts import CHANGERS, new_view_re_proposing, restarted, view_change_on_timeout

TX_BYTES_MAX = 1 << 20


@pytest.mark.parametrize("view", [2, VIEWS_AHEAD_MAX + 2])
def test_a_backup_restarted_in_a_far_view_keeps_what_it_prepared_there(
    tmp_path: Path, view: int
) -> None:
    # Validator 1 (a backup) is cut off in view 0 while the others go through views; the new
    # primary answers its late view change with its NEW-VIEW (Replica._answer_late_view_change),
    # which it installs whatever the distance. It prepares the re-proposed block 1 there and
    # signs a commit. A restart must rebuild that prepared certificate: its next view change
    # has to carry it (a block it committed to must not be replaceable by a later view).
    setup = make_setup()
    keys, chain_id = setup.validator_keys, setup.genesis.chain_id
    path = tmp_path / "chain.sqlite"
    node = backup_node(setup, path)
    first = next_block(setup, node.storage, ())
    now_ms = first.header.timestamp_ms + 1
    proof = PreparedProof(
        pre_prepare=sign_pre_prepare(keys[0], chain_id, view=0, seq=1, block=first, sender=0),
        prepares=tuple(
            sign_prepare(keys[s], chain_id, view=0, seq=1, block_hash=first.hash, sender=s)
            for s in (2, 3)
        ),
    )
    assert view % 4 == 2  # validator 2 leads it: 0, 2 and 3 changed, 1 missed the change
    new_view = new_view_re_proposing(setup, view, first, {s: (proof,) for s in CHANGERS})
    node.feed(MessageReceived(message=new_view, now_ms=now_ms))
    for sender in (0, 3):
        prepare = sign_prepare(
            keys[sender], chain_id, view=view, seq=1, block_hash=first.hash, sender=sender
        )
        node.feed(MessageReceived(message=prepare, now_ms=now_ms))
    assert node.replica is not None
    assert node.replica.view == view and node.replica.view_active
    assert node.replica.prepared == {1: (view, first.hash)}
    node.storage.close()

    node = restarted(setup, path)
    try:
        replica = node.replica
        assert replica is not None and replica.view == view
        assert replica.prepared == {1: (view, first.hash)}
        # Its next view change carries the block it prepared and committed to.
        mine = view_change_on_timeout(node, now_ms, view + 1)
        assert [(p.seq, p.view) for p in mine.prepared] == [(1, view)]
    finally:
        node.storage.close()
