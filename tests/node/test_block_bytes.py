"""A block's bytes are bounded so that every message carrying it reaches the peers, however many
blocks are in flight.

A peer takes one frame of at most the genesis's body_bytes_max. The cutter first bounded blocks
by count only, then within what an honest primary's pipeline needed; backups took any size. A
byzantine primary could propose blocks up to a frame each, in every slot of the watermark
window; backups prepared them, and each later VIEW-CHANGE (it carries every block its sender
prepared) and NEW-VIEW (a quorum of view changes, and the blocks again) was larger than any peer
takes: the chain stopped in view changes. View changes are now signed by header, a NEW-VIEW
carries them so and each re-proposed block once, and the genesis bounds a block's bytes
(`ledger.genesis.block_bytes_limit`) so that a whole window of the largest blocks fits: the
primary cuts within it and backups refuse a larger block.
"""

from __future__ import annotations

import pytest

from consensus import messages as m
from consensus.codec import to_map
from consensus.errors import InvalidMessage
from consensus.sim.harness import AcceptAll
from consensus.viewchange import check_new_view
from ledger import genesis as limits
from ledger.block import Block, BlockHeader, block_bytes
from ledger.certificate import CommitCertificate
from ledger.crypto import Domain, KeyPair
from ledger.encoding import encode
from ledger.tx import Transaction
from node.mempool import Mempool
from tests.consensus.pbft_bench import CHAIN_ID, GENESIS, Bench, rejections

BODY_BYTES_MAX = 1024 * 1024
WINDOW = 16
INT_MAX = 2**63 - 1


def _pool(senders: int, txs_a_sender: int, item: str) -> Mempool:
    pool = Mempool(capacity=senders * txs_a_sender, committed_nonce=lambda sender: 0)
    for s in range(senders):
        keys = KeyPair.from_seed(bytes([s + 1]) * 32)
        for nonce in range(txs_a_sender):
            args = {"item": item, "location": "main", "qty": 1}
            pool.add(
                Transaction.create(
                    keys,
                    chain_id=CHAIN_ID,
                    nonce=nonce,
                    contract="inventory",
                    method="receive",
                    args=args,
                )
            )
    return pool


def _frame(sender: int, message: m.Message) -> bytes:
    """A peer batch holding `message` alone, as the transport sends it."""
    return encode({"sender": sender, "messages": [m.encode_message(message)], "txs": []})


def test_a_cut_stays_within_its_bytes_but_takes_one_transaction_whatever_its_size() -> None:
    pool = _pool(4, 300, "x" * 200)
    size = len(pool.cut(1)[0].wire)
    block = pool.cut(1000, bytes_max=10 * size)
    assert 1 < len(block) <= 10
    assert sum(len(tx.wire) + 5 for tx in block) <= 10 * size
    assert len(pool.cut(1000, bytes_max=1)) == 1
    # Fairness holds: the sender the cut stopped in is served last next time.
    first_sender = pool.cut(1, bytes_max=1)[0].sender
    assert first_sender != block[-1].sender


@pytest.mark.parametrize("n", [4, 10])
def test_a_whole_window_of_the_largest_blocks_fits_every_view_change_and_new_view(n: int) -> None:
    bench = Bench(n=n, checkpoint_interval=WINDOW, watermark_window=WINDOW)
    quorum = bench.config.quorum
    limit = limits.block_bytes_limit(body_bytes_max=BODY_BYTES_MAX, n=n, watermark_window=WINDOW)
    pool = _pool(WINDOW, 24, "x" * 4000)  # transactions of some 4 KiB
    blocks: list[Block] = []
    for seq in range(1, WINDOW + 1):
        parent = blocks[-1].hash if blocks else bench.block(1).header.prev_hash
        txs = tuple(pool.cut(1000, bytes_max=limit))
        blocks.append(bench.block(seq, txs=txs, prev_hash=parent))
    assert all(limit - 5_000 < block_bytes(block) <= limit for block in blocks)  # full ones
    proofs = tuple(bench.proof(block) for block in blocks)
    primary = 1
    changes = tuple(bench.view_change(s, 1, proofs) for s in range(n) if s != primary)[:quorum]
    for change in changes:
        assert len(_frame(change.sender, change)) <= BODY_BYTES_MAX
    new_view = bench.new_view(changes, tuple(blocks), view=1)
    size = len(_frame(primary, new_view))
    assert size <= BODY_BYTES_MAX, f"{size} bytes, the frame takes {BODY_BYTES_MAX}"
    # It carries each block once: with the view changes whole it came to (quorum + 1) copies.
    whole = sum(len(m.encode_message(change)) for change in changes)
    assert size < 2 * WINDOW * limit < whole
    # And it is the NEW-VIEW backups take.
    check_new_view(new_view, bench.config, m.plain_verifier, GENESIS, AcceptAll())


def test_backups_refuse_a_block_over_the_limit_in_a_pre_prepare_and_a_new_view() -> None:
    pool = _pool(1, 20, "x" * 400)
    txs = tuple(pool.cut(20))
    limit = sum(len(tx.wire) + 5 for tx in txs) - 1
    bench = Bench(block_bytes_max=limit)
    big = bench.block(1, txs=txs)
    actions = bench.deliver(bench.pre_prepare(big))
    assert any("bytes of transactions" in r.reason for r in rejections(actions)), actions
    assert bench.replica.prepared_proofs == ()

    fits = Bench(block_bytes_max=limit + 1)
    assert not rejections(fits.deliver(fits.pre_prepare(fits.block(1, txs=txs))))

    # A new view's primary re-proposing it is refused too (its view changes are by header).
    bench = Bench(block_bytes_max=limit)
    big = bench.block(1, txs=txs)
    changes = tuple(bench.view_change(s, 1, (bench.proof(big),)) for s in (0, 2, 3))
    new_view = bench.new_view(changes, (big,), view=1)
    with pytest.raises(InvalidMessage, match="bytes of transactions"):
        check_new_view(new_view, bench.config, m.plain_verifier, GENESIS, AcceptAll())


def test_a_new_view_logged_in_the_old_form_decodes_and_its_view_changes_are_refused() -> None:
    """NEW-VIEWs logged before view changes were signed by header carry them whole, with
    signatures over the whole: a node replaying its log reads them, and refuses them."""
    bench = Bench()
    block = bench.block(1)
    proof = bench.proof(block)
    changes = []
    for sender in (0, 2, 3):
        body = {
            "new_view": 1,
            "base_header": None,
            "base_certificate": None,
            "prepared": [m.proof_to_map(proof)],
        }
        signature = bench.keys[sender].sign(Domain.VIEW_CHANGE, CHAIN_ID, encode(body))
        changes.append(
            m.ViewChange(
                new_view=1,
                base_header=None,
                base_certificate=None,
                prepared=(proof,),
                sender=sender,
                signature=signature,
            )
        )
    new_view = bench.new_view(tuple(changes), (block,), view=1)
    old_form = {**to_map(new_view), "view_changes": [to_map(change) for change in changes]}
    decoded = m.decode_message(encode(old_form), tx_bytes_max=1 << 20)
    assert isinstance(decoded, m.NewView)
    assert decoded.view_changes == tuple(change.summary() for change in changes)
    with pytest.raises(InvalidMessage, match="bad signature"):
        check_new_view(decoded, bench.config, m.plain_verifier, GENESIS, AcceptAll())


def test_the_genesis_bounds_hold_for_the_largest_fields() -> None:
    """The sizes `block_bytes_limit` counts with, against the codec, every integer at its
    largest and the longest chain id."""
    header = BlockHeader(
        chain_id="c" * 64,
        height=INT_MAX,
        prev_hash=bytes(32),
        tx_root=bytes(32),
        state_height=INT_MAX - 1,
        state_digest=bytes(32),
        proposer=1023,
        view=INT_MAX,
        timestamp_ms=INT_MAX,
    )
    signature = bytes(64)
    prepare = m.Prepare(
        view=INT_MAX, seq=INT_MAX, block_hash=bytes(32), sender=1023, signature=signature
    )
    assert len(m.encode_message(prepare)) <= limits.VOTE_BYTES
    assert len(encode([1023, signature])) <= limits.VOTE_BYTES  # a certificate's commit
    empty = Block(header=header, txs=())
    pre_prepare = m.PrePrepare(
        view=INT_MAX, seq=INT_MAX, block=empty, sender=1023, signature=signature
    )
    proof = m.PreparedProof(pre_prepare=pre_prepare, prepares=())
    # The list header of a block's transactions grows to 5 bytes with their count.
    assert len(encode(m.proof_to_map(proof))) + 4 <= limits.PROOF_BYTES
    assert len(encode(m.proof_header_to_map(m.summarise_proof(proof)))) <= limits.PROOF_BYTES
    certificate = CommitCertificate(height=INT_MAX, view=INT_MAX, block_hash=bytes(32), commits=())
    change = m.ViewChange(
        new_view=INT_MAX,
        base_header=header,
        base_certificate=certificate,
        prepared=(),
        sender=1023,
        signature=signature,
    )
    assert len(m.encode_message(change)) + 8 <= limits.VIEW_CHANGE_BYTES  # list headers
    new_view = m.NewView(
        view=INT_MAX, view_changes=(), pre_prepares=(), sender=1023, signature=signature
    )
    assert len(_frame(1023, new_view)) + 8 <= limits.NEW_VIEW_BYTES
