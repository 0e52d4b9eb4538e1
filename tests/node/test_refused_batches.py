"""A batch a peer refuses without saying it can never take it is not dropped by the sender.

Peers._push counted every ack that was not a failure to connect as delivered, whatever its
status: "the peer refused it for good: resending the same bytes cannot help". Two refusals are
not for good, and the messages in them were lost:

- 503 from a paused node (node/pause.py): "peers' batches are refused with 503, so they keep
  them and retry". They did not keep them: every consensus message sent to a paused node was
  dropped, and a resumed node had to wait for retransmission or state transfer.
- A batch larger than the peer's frame limit (its genesis body_bytes_max; the stream is closed
  with 1009, read as 413). Batching joins whatever is queued up to BATCH_BYTES_MAX (4 MiB) or
  BATCH_TX_BYTES_MAX (256 KiB), whatever the limit: on a chain whose body_bytes_max is below
  those (64 KiB here), a burst of small messages that each fit was refused together and dropped
  together.

A paused node cannot say when it takes batches again (its operator resumes it), so its 503
carries no Retry-After on POST /peer/batch, as its ack on the stream carries no retry_after_s:
the error helper gave every 503 "Retry-After: 1", a figure nothing stood behind.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import pytest

from ledger.encoding import encode
from ledger.genesis import Params
from node.api import create_app
from node.openapi import document
from node.peers import STREAM_PATH, Peers, decode_ack
from node.service import Node
from tests.node.conftest import Client, Setup, make_setup
from tests.node.fake_peer import linked

DELIVERED_WITHIN_S = 10.0
FRAME_BYTES_MAX = 64 * 1024


async def _until(check: Callable[[], object], timeout_s: float = DELIVERED_WITHIN_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


@pytest.fixture
def setup() -> Setup:
    """A chain with a 64-KiB frame: small transactions and a short watermark window let its
    NEW-VIEWs fit in one (see ledger.genesis.block_bytes_limit)."""
    return make_setup(
        Params(
            body_bytes_max=FRAME_BYTES_MAX,
            tx_bytes_max=2048,
            checkpoint_interval=8,
            watermark_window=8,
        )
    )


@pytest.fixture
async def peers(node: Node) -> AsyncIterator[Peers]:
    """Validator 0's link to `node` (validator 1), served on 127.0.0.1 at a port the OS picks."""
    async with linked(create_app(node)) as peers:
        yield peers


async def test_messages_refused_by_a_paused_node_reach_it_once_it_resumes(
    node: Node, peers: Peers
) -> None:
    node.paused_at = {"phase": "after-prepare", "seq": 1}  # as Node._hits_pause leaves it
    peers.send(1, b"a message sent while the peer is paused")
    await _until(lambda: peers.links[1].last_ok_ms is not None)  # its 503 ack came back
    assert node.counters.messages_received == 0
    node.resume()
    await _until(lambda: node.counters.messages_received == 1)


async def test_a_paused_node_names_no_time_to_ask_again_on_either_path(
    node: Node, client: Client
) -> None:
    node.paused_at = {"phase": "after-prepare", "seq": 1}
    batch = encode({"sender": 0, "messages": [], "txs": []})
    answer = await client.post("/peer/batch", data=batch)
    assert answer.status == 503
    assert "Retry-After" not in answer.headers
    assert "headers" not in document()["paths"]["/peer/batch"]["post"]["responses"]["503"]
    stream = await client.ws_connect(STREAM_PATH)
    try:
        await stream.send_bytes(batch)
        ack = decode_ack((await stream.receive(timeout=5)).data)
    finally:
        await stream.close()
    assert (ack.status, ack.retry_after_s) == (503, None)


async def test_a_halted_node_still_gives_its_503_a_retry_after(node: Node, client: Client) -> None:
    # Only the pause says nothing: what else answers 503 keeps its header.
    node.halted = "stopped for a test"
    answer = await client.post("/txs", data=encode([b"a transaction"]))
    assert answer.status == 503
    assert answer.headers["Retry-After"] == "1"


async def test_a_burst_larger_than_the_peers_frame_limit_is_delivered_in_smaller_batches(
    node: Node, peers: Peers
) -> None:
    frame_bytes_max = node.params.body_bytes_max
    assert frame_bytes_max == FRAME_BYTES_MAX
    count = 8
    message = b"m" * (frame_bytes_max // 4)  # each fits in a frame alone; together they do not
    for _ in range(count):
        peers.send(1, message)  # all queued before the sender task runs: one batch
    await _until(lambda: node.counters.messages_received == count)
    assert peers.links[1].status()["queued"] == 0


async def test_forwarded_transactions_past_the_peers_frame_limit_are_not_dropped(
    node: Node, peers: Peers
) -> None:
    frame_bytes_max = node.params.body_bytes_max
    count = 8
    tx = b"t" * (frame_bytes_max // 4)  # BATCH_TX_BYTES_MAX (256 KiB) would take all eight
    peers.forward_txs([tx] * count)
    # Not transactions (the node refuses them when it admits them), but each one is counted
    # as it is: the batch reached the node's admission instead of the floor.
    await _until(lambda: node.counters.rejected.get("malformed", 0) >= count)
    assert peers.links[1].status()["queued"] == 0
