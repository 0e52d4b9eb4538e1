"""A backup that prepared block 1, went through views and restarted: shared by the recovery
tests that check what its next view change carries (test_far_new_view.py,
test_older_view_certificate.py)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from consensus.events import RequestsPending, Tick
from consensus.messages import (
    NewView,
    PreparedProof,
    ViewChange,
    sign_new_view,
    sign_pre_prepare,
    sign_view_change,
)
from ledger.block import Block
from node import wal
from node.service import Node
from tests.node.conftest import Setup, backup_node

TX_BYTES_MAX = 1 << 20
CHANGERS = (0, 2, 3)  # everybody but validator 1, the backup under test


def new_view_re_proposing(
    setup: Setup, view: int, block: Block, proofs: Mapping[int, tuple[PreparedProof, ...]]
) -> NewView:
    """View `view`'s NEW-VIEW, built on the view changes of validators 0, 2 and 3 (each carrying
    the prepared proofs `proofs` gives it), re-proposing `block` at sequence number 1."""
    keys, chain_id = setup.validator_keys, setup.genesis.chain_id
    primary = view % len(keys)
    changes = tuple(
        sign_view_change(
            keys[s],
            chain_id,
            new_view=view,
            base_header=None,
            base_certificate=None,
            prepared=proofs.get(s, ()),
            sender=s,
        )
        for s in CHANGERS
    )
    return sign_new_view(
        keys[primary],
        chain_id,
        view=view,
        view_changes=changes,
        pre_prepares=(
            sign_pre_prepare(
                keys[primary], chain_id, view=view, seq=1, block=block, sender=primary
            ),
        ),
        sender=primary,
    )


def restarted(setup: Setup, path: Path) -> Node:
    """The backup on `path` again, its log replayed as a start would."""
    node = backup_node(setup, path)
    node._replay()
    return node


def view_change_on_timeout(node: Node, now_ms: int, new_view: int) -> ViewChange:
    """The view change `node` signs and logs for `new_view` once its view times out with
    requests pending."""
    node.feed(RequestsPending(now_ms=now_ms, pending=True))
    node.feed(Tick(now_ms=now_ms + 10_000_000))
    [mine] = [
        m
        for m in wal.signed(node.storage, tx_bytes_max=TX_BYTES_MAX)
        if isinstance(m, ViewChange) and m.new_view == new_view
    ]
    return mine
