"""The load's feeds and submitter: nonces in order across signing chunks, a bounded signing
buffer, and a node's refusals offered again in order, without a node (a fake client)."""

from __future__ import annotations

import time
from typing import Any, cast

from cli.bench_load import Counts, Pacer, PresignedFeed, SigningFeed, submit_in_order
from ledger.crypto import KeyPair
from node.client import NodeClient


def _keys() -> KeyPair:
    return KeyPair.generate()


def test_signing_feed_signs_consecutive_nonces_across_chunks() -> None:
    feed = SigningFeed(_keys(), chain_id="c", first_nonce=5, chunk=3)
    nonces: list[int] = []
    for _ in range(4):
        batch = feed.peek(2)
        nonces.extend(tx.nonce for tx in batch)
        feed.advance(len(batch))
    assert nonces == list(range(5, 13))


def test_signing_feed_peeks_the_same_transactions_until_they_are_taken() -> None:
    feed = SigningFeed(_keys(), chain_id="c", chunk=4)
    first = feed.peek(3)
    assert feed.peek(3) == first
    feed.advance(1)
    assert feed.peek(2) == first[1:]


def test_signing_feed_holds_at_most_a_chunk_and_a_batch() -> None:
    feed = SigningFeed(_keys(), chain_id="c", chunk=8)
    for _ in range(50):
        feed.advance(len(feed.peek(5)))
        assert len(feed._ready) <= 8 + 5


def test_presigned_feed_runs_out() -> None:
    keys = _keys()
    feed = SigningFeed(keys, chain_id="c", chunk=3)
    txs = feed.peek(3)
    presigned = PresignedFeed(txs)
    presigned.advance(2)
    assert presigned.peek(5) == txs[2:]
    presigned.advance(1)
    assert presigned.peek(5) == []


class _FakeNode:
    """Accepts the first `room` transactions of each request, refuses the rest with 429, and
    rejects nonce 3 for good."""

    def __init__(self, room: int) -> None:
        self.room = room
        self.received: list[bytes] = []

    async def submit_many(self, raws: list[bytes]) -> list[dict[str, Any]]:
        outcomes: list[dict[str, Any]] = []
        for i, raw in enumerate(raws):
            if i >= self.room:
                outcomes.append({"status": 429, "error": "mempool full"})
                continue
            self.received.append(raw)
            outcomes.append({"error": "bad"} if len(self.received) == 4 else {"hash": "x"})
        return outcomes


async def test_refused_transactions_are_offered_again_in_nonce_order() -> None:
    keys = _keys()
    txs = SigningFeed(keys, chain_id="c", chunk=10).peek(10)
    node = _FakeNode(room=3)
    counts = Counts()
    await submit_in_order(
        cast(NodeClient, node),
        PresignedFeed(txs),
        counts,
        stop_at=time.monotonic() + 10,
        pacer=Pacer(0),
        batch=4,
    )
    assert node.received == [tx.wire for tx in txs]
    assert (counts.admitted, counts.rejected) == (9, 1)


class _ClockedNode:
    def __init__(self) -> None:
        self.sent_at: list[float] = []

    async def submit_many(self, raws: list[bytes]) -> list[dict[str, Any]]:
        self.sent_at.append(time.monotonic())
        return [{"hash": "x"} for _ in raws]


async def test_a_paced_sender_sends_nothing_after_the_end_of_the_run() -> None:
    node = _ClockedNode()
    stop_at = time.monotonic() + 0.1
    await submit_in_order(
        cast(NodeClient, node),
        SigningFeed(_keys(), chain_id="c", chunk=16),
        Counts(),
        stop_at=stop_at,
        pacer=Pacer(100),  # a batch of 4 every 40 ms: the turn at 120 ms is past the end
        batch=4,
    )
    assert node.sent_at
    assert max(node.sent_at) < stop_at


async def test_a_paced_sender_whose_turn_is_past_the_end_returns_at_once() -> None:
    pacer = Pacer(10)  # 100 transactions take 10 s
    stop_at = time.monotonic() + 1
    assert await pacer.wait(100, stop_at=stop_at)  # the first turn is now
    started = time.monotonic()
    assert not await pacer.wait(100, stop_at=stop_at)  # due in 10 s, after the end
    assert time.monotonic() - started < 0.5
