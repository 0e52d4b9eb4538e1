"""A replica that caught up in several BlocksTransferred events keeps the state digests of every
part, so it still takes an honest pre-prepare whose header vouches for an earlier part's state.

A node feeds the replica one BlocksTransferred per part it applied (node/catchup.py `_commit`:
the checked blocks up to a proof, then the executed blocks above it, in slices). A pipelining
primary proposes block h with the state after its executed height, which may lie below h - 1:
in an earlier part. `_on_transferred` used to replace the digests it kept with the last part's,
and `check_state_claim` then refused such a proposal as "older than the history kept here"; with
f validators down that stalled the chain until a view change, after every catch-up.
"""

from __future__ import annotations

from pathlib import Path

from consensus import messages as m
from consensus.events import BlockState, BlocksTransferred, MessageReceived
from ledger.block import Block
from node.service import Node
from node.storage import Storage
from tests.consensus.pbft_bench import Bench, broadcasts, rejections
from tests.node.transfer.chain import BLOCKS, PARAMS, SETUP, node_catch_up, peer_app, source_chain


def _transfer(bench: Bench, blocks: list[Block], heights: range) -> None:
    states = tuple(
        BlockState(height=h, block_hash=blocks[h - 1].hash, state_digest=bytes([h]) * 32)
        for h in heights
    )
    last = blocks[heights[-1] - 1]
    bench.replica.handle(
        BlocksTransferred(
            header=last.header,
            certificate=bench.certificate(last),
            state_digest=states[-1].state_digest,
            states=states,
        )
    )


def test_a_state_from_an_earlier_transfer_still_checks_a_proposal() -> None:
    bench = Bench(checkpoint_interval=2, watermark_window=4)
    blocks = bench.chain(6)
    _transfer(bench, blocks, range(1, 5))  # the checked part, up to the proof at 4
    _transfer(bench, blocks, range(5, 7))  # the executed part above it
    assert bench.replica.committed_height == 6
    # The primary proposed block 7 when it had executed block 4 (two blocks in flight).
    seventh = bench.block(7, state_height=4, state_digest=bytes([4]) * 32)

    actions = bench.deliver(bench.pre_prepare(seventh), now_ms=1_200)

    assert [r.reason for r in rejections(actions)] == []
    [prepare] = broadcasts(actions, m.Prepare)
    assert prepare.seq == 7


async def test_after_a_node_catch_up_the_replica_still_knows_the_checked_states(
    tmp_path: Path,
) -> None:
    # Through the node: blocks 1..8 are checked (proofs at 4 and 8), 9..10 executed; two events.
    source = source_chain(SETUP, tmp_path / "source.sqlite")
    node = Node(
        name="node1",
        genesis=SETUP.genesis,
        keys=SETUP.validator_keys[1],
        storage=Storage(tmp_path / "chain.sqlite"),
    )
    try:
        assert await node_catch_up(node, peer_app(source)) == BLOCKS
        eighth = source.block(8)
        tenth = source.block(BLOCKS)
        assert eighth is not None and tenth is not None
        # Block 11 from the primary (validator 0), proposed when it had executed block 8.
        block = Block.build(
            chain_id=SETUP.genesis.chain_id,
            height=BLOCKS + 1,
            prev_hash=tenth.block.hash,
            state_height=8,
            state_digest=eighth.state_digest,
            proposer=0,
            view=0,
            timestamp_ms=tenth.block.header.timestamp_ms + 1,
            txs=[],
        )
        pre_prepare = m.sign_pre_prepare(
            SETUP.validator_keys[0],
            SETUP.genesis.chain_id,
            view=0,
            seq=BLOCKS + 1,
            block=block,
            sender=0,
        )
        assert node.replica is not None
        actions = node.replica.handle(
            MessageReceived(message=pre_prepare, now_ms=block.header.timestamp_ms)
        )
        assert [r.reason for r in rejections(actions)] == []
        assert [p.seq for p in broadcasts(actions, m.Prepare)] == [BLOCKS + 1]
        assert PARAMS.checkpoint_interval == 4
    finally:
        node.storage.close()
        source.close()
