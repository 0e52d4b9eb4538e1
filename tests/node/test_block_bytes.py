"""A proposed block's bytes are bounded so that every message that carries it reaches the peers.

A peer takes one frame of at most the genesis's body_bytes_max. The cutter bounded blocks by
count only: a full block of large transactions (1,000 of 16 KiB is 16 MiB) made a pre-prepare
no peer takes, and a NEW-VIEW carries each block in flight (quorum + 1) times, in the view
changes' prepared proofs and its own pre-prepares: at n = 4 with 8 blocks of 1,000 2-KiB
transactions in flight it came to some 70 MiB. Neither reached anybody, and the chain stopped.
The primary now cuts blocks within `block_bytes_budget` (node/service.py, node/mempool.py).
"""

from __future__ import annotations

import pytest

from consensus import messages as m
from ledger.block import Block
from ledger.crypto import KeyPair
from ledger.encoding import encode
from ledger.tx import Transaction
from node.mempool import Mempool
from node.service import block_bytes_budget
from tests.consensus.pbft_bench import CHAIN_ID, Bench

PIPELINE_DEPTH = 8
BODY_BYTES_MAX = 1024 * 1024
SENDERS = 4
TXS_A_SENDER = 300
ITEM = "x" * 200  # some 400-byte transactions


def _pool() -> Mempool:
    pool = Mempool(capacity=SENDERS * TXS_A_SENDER, committed_nonce=lambda sender: 0)
    for s in range(SENDERS):
        keys = KeyPair.from_seed(bytes([s + 1]) * 32)
        for nonce in range(TXS_A_SENDER):
            args = {"item": ITEM, "location": "main", "qty": 1}
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


def test_a_cut_stays_within_its_bytes_but_takes_one_transaction_whatever_its_size() -> None:
    pool = _pool()
    size = len(pool.cut(1)[0].wire)
    block = pool.cut(1000, bytes_max=10 * size)
    assert 1 < len(block) <= 10
    assert sum(len(tx.wire) + 5 for tx in block) <= 10 * size
    assert len(pool.cut(1000, bytes_max=1)) == 1
    # Fairness holds: the sender the cut stopped in is served last next time.
    first_sender = pool.cut(1, bytes_max=1)[0].sender
    assert first_sender != block[-1].sender


@pytest.mark.parametrize("n", [4, 7])
def test_a_new_view_re_proposing_a_pipeline_of_full_blocks_fits_in_a_peers_frame(n: int) -> None:
    bench = Bench(n=n)
    quorum = bench.config.quorum
    budget = block_bytes_budget(BODY_BYTES_MAX, quorum, PIPELINE_DEPTH)
    pool = _pool()
    blocks: list[Block] = []
    for seq in range(1, PIPELINE_DEPTH + 1):
        parent = blocks[-1].hash if blocks else bench.block(1).header.prev_hash
        txs = tuple(pool.cut(1000, bytes_max=budget))
        blocks.append(bench.block(seq, txs=txs, prev_hash=parent))
    assert min(len(block.txs) for block in blocks) > 10  # the budget leaves blocks worth cutting
    proofs = tuple(bench.proof(block) for block in blocks)
    primary = 1
    changes = tuple(bench.view_change(s, 1, proofs) for s in range(n) if s != primary)[:quorum]
    new_view = bench.new_view(changes, tuple(blocks), view=1)
    frame = encode({"sender": primary, "messages": [m.encode_message(new_view)], "txs": []})
    assert len(frame) <= BODY_BYTES_MAX, f"{len(frame)} bytes, the frame takes {BODY_BYTES_MAX}"
    # Cut by count alone, the same transactions made a NEW-VIEW far past the frame.
    by_count = sum(len(tx.wire) for tx in _pool().cut(1000))
    assert by_count * (quorum + 1) * PIPELINE_DEPTH > 10 * BODY_BYTES_MAX
