"""A re-proposed block must carry the transaction signatures its senders made.

A transaction's id (and so a block's tx_root and hash) covers its body, not its signature, so a
block with one signature swapped for garbage has the same hash, and every pre-prepare, prepare
and commit signature still holds for it. In the normal case the replica's BlockValidator checks
a proposed block (the node's checks the signatures; see `Node.is_verified`). The blocks a new
view re-proposes, and those of the prepared certificates a view change carries, were checked
against their tx_root only: a byzantine new-view primary (or a byzantine replica's view change,
which an honest primary re-proposes from) got a block whose transactions carry forged
signatures committed, stored and served by every honest node. They now go through the
validator too (consensus/viewchange.py, `_check_body`).
"""

from __future__ import annotations

import dataclasses

from consensus import messages as m
from consensus.actions import ViewEntered
from consensus.errors import InvalidBlock
from ledger.block import Block
from ledger.encoding import encode
from ledger.errors import SignatureError
from ledger.tx import Transaction
from tests.consensus.pbft_bench import Bench, broadcasts, commits, rejections


class CheckSignatures:
    """Refuses a block holding a transaction its sender did not sign, as the node's does."""

    def validate(self, block: Block) -> None:
        for tx in block.txs:
            try:
                tx.verify()
            except SignatureError as exc:
                raise InvalidBlock(f"transaction {tx.hash.hex()[:16]}: {exc}") from exc


def with_forged_signature(block: Block) -> Block:
    """`block` with its first transaction's signature replaced: the same body, hash and header."""
    tx = block.txs[0]
    forged = Transaction.from_wire(encode({"body": tx.body, "signature": bytes(64)}))
    assert forged.hash == tx.hash and forged.signature != tx.signature
    block = dataclasses.replace(block, txs=(forged, *block.txs[1:]))
    block.check_shape()  # the tx_root still matches
    return block


def view_changes(bench: Bench, proof: m.PreparedProof) -> tuple[m.ViewChange, ...]:
    return (bench.view_change(0, 1), bench.view_change(1, 1, (proof,)), bench.view_change(3, 1))


def test_a_new_view_re_proposing_a_block_with_a_forged_tx_signature_is_refused() -> None:
    bench = Bench(
        index=2, validator=CheckSignatures()
    )  # a backup of view 1, whose primary is validator 1
    block = bench.block(1)
    forged = with_forged_signature(block)
    assert forged.hash == block.hash
    changes = view_changes(bench, bench.proof(block))
    actions = bench.deliver(bench.new_view(changes, (forged,), view=1))
    if ViewEntered(view=1) in actions:
        # What follows when it is taken: the forged block is prepared, committed and handed to
        # the application, with a transaction whose signature its sender never made.
        bench.deliver(*(bench.prepare(block, sender, view=1) for sender in (0, 3)))
        done = commits(bench.deliver(*(bench.commit(block, s, view=1) for s in (0, 1, 3))))
        assert [c.block.txs[0].signature for c in done] == [bytes(64)]
        raise AssertionError("the new view was installed; its block commits with a forged tx")
    [rejected] = rejections(actions)
    assert "signature" in rejected.reason, rejected.reason
    assert bench.replica.view == 0 and not broadcasts(actions)
    # The genuine new view is still taken.
    assert ViewEntered(view=1) in bench.deliver(bench.new_view(changes, (block,), view=1))


def test_a_view_change_whose_prepared_block_has_a_forged_tx_signature_is_refused() -> None:
    # An honest new primary re-proposes the body a view change carries: one with a forged
    # signature must not count towards a new view.
    bench = Bench(index=2, validator=CheckSignatures())
    block = bench.block(1)
    forged = with_forged_signature(block)
    actions = bench.deliver(bench.view_change(1, 1, (bench.proof(forged),)))
    [rejected] = rejections(actions)
    assert "signature" in rejected.reason, rejected.reason
    # The genuine certificate is taken.
    assert not rejections(bench.deliver(bench.view_change(3, 1, (bench.proof(block),))))
