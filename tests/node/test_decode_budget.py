"""Bytes from outside cost memory in proportion to their size once decoded, not 80 times it.

One byte 0x90 is an empty list (some 64 bytes decoded) and three bytes a one-entry map (some
200): a body capped at body_bytes_max (8 MiB) used to be decoded whole, some 600 MiB, before its
shape was looked at. Each decoder of bytes a client or a peer sends now builds no more lists and
maps than the shape it expects holds (ledger.encoding.container_budget), and refuses the rest
with an error that says so. The peaks are measured with tracemalloc, against a few times the
input: an unbudgeted decoding of the same bytes is shown to pass that bound first.
"""

from __future__ import annotations

import msgpack
import pytest

from consensus import messages as m
from consensus.codec import decode_message, encode_message
from consensus.errors import InvalidMessage
from ledger.certificate import CommitCertificate
from ledger.encoding import decode, encode
from ledger.errors import EncodingError, LedgerError
from node.api import take_peer_batch
from node.history import decode_write_set, verify_proof
from node.service import Node
from node.sync import SyncError, decode_certified_block
from tests.consensus.pbft_bench import Bench
from tests.node.conftest import Client, Setup
from tests.node.decoded import LISTS, bounded, empty_lists, peak_under

TX_BYTES_MAX = 16 * 1024


def test_the_bound_is_one_an_unbudgeted_decoding_breaks() -> None:
    raw = encode(empty_lists())
    with pytest.raises(AssertionError, match="peak"), peak_under(bounded(raw)):
        msgpack.unpackb(raw)


def test_the_budget_stops_the_decoding_and_says_why() -> None:
    raw = encode({"a": [1, [2]]})
    assert decode(raw, containers_max=3) == {"a": [1, [2]]}
    with pytest.raises(EncodingError, match="more than 2 lists and maps"):
        decode(raw, containers_max=2)


async def test_a_txs_body_of_nested_lists_is_refused_with_what_was_wrong(
    client: Client, node: Node
) -> None:
    raw = encode(empty_lists(min(LISTS, node.params.body_bytes_max - 16)))
    with peak_under(2 * bounded(raw)):  # the body is held twice: sent, and read by the server
        response = await client.post(
            "/txs", data=raw, headers={"Content-Type": "application/msgpack"}
        )
        body = await response.json()
    assert response.status == 400
    assert "holds lists or maps inside the list" in body["error"]
    assert len(node.mempool) == 0


async def test_a_peer_batch_of_nested_lists_is_refused(node: Node) -> None:
    raw = encode({"messages": empty_lists(), "txs": []})
    charged: list[int] = []
    before = node.counters.rejected.get("peer_malformed", 0)
    with peak_under(bounded(raw)):
        error = take_peer_batch(node, raw, validator=None, charge=charged.append)
    assert error is not None and "more than 3 lists and maps" in error
    assert charged == [1]  # the batch's own token; none for messages never decoded
    assert node.counters.rejected["peer_malformed"] == before + 1


def test_a_message_of_nested_lists_is_refused() -> None:
    raw = encode({"kind": "view-change", "prepared": empty_lists()})
    with peak_under(bounded(raw)), pytest.raises(InvalidMessage, match="lists and maps"):
        decode_message(raw, tx_bytes_max=TX_BYTES_MAX)


def test_the_densest_honest_messages_decode_within_their_budget() -> None:
    """Prepared proofs of empty blocks, in view changes with a certified base, in a new view:
    lists and maps beside little more than a hash or a signature each."""
    bench = Bench()
    blocks = bench.chain(9)
    base, prepared = blocks[0], tuple(bench.proof(block) for block in blocks[1:])
    changes = tuple(
        bench.view_change(sender, new_view=1, prepared=prepared, base=base) for sender in (1, 2, 3)
    )
    new_view = bench.new_view(changes, tuple(blocks[1:]), view=1)
    messages: list[m.Message] = [
        *prepared[0].prepares,
        prepared[0].pre_prepare,
        changes[0],
        new_view,
    ]
    for message in messages:
        raw = encode_message(message)
        assert decode_message(raw, tx_bytes_max=TX_BYTES_MAX) == message


def test_a_certificate_of_nested_lists_is_refused() -> None:
    raw = encode({"block_hash": bytes(32), "commits": empty_lists(), "height": 1, "view": 0})
    with peak_under(bounded(raw)), pytest.raises(LedgerError, match="lists and maps"):
        CommitCertificate.from_wire(raw)


def test_a_fetched_block_of_nested_lists_is_refused() -> None:
    bench = Bench()
    [block] = bench.chain(1)
    raw = encode({"header": block.header.to_map(), "txs": empty_lists()})
    with peak_under(bounded(raw)), pytest.raises(SyncError, match="lists and maps"):
        decode_certified_block(raw, bench.certificate(block))


def test_a_fetched_write_set_of_nested_lists_is_refused() -> None:
    # A change, [key, value or nil], can be 4 bytes ([b"", nil]): the budget lets a write set
    # build a list per 4 bytes, which is what the changes it holds cost once kept anyway.
    raw = encode([empty_lists(), []])
    with peak_under(20 * len(raw)), pytest.raises(SyncError, match="lists and maps"):
        decode_write_set(raw, height=1)


def test_a_fetched_checkpoint_proof_of_nested_lists_is_refused(setup: Setup) -> None:
    raw = encode(empty_lists())
    with peak_under(bounded(raw)), pytest.raises(SyncError, match="lists and maps"):
        verify_proof(setup.genesis, [1, raw])
