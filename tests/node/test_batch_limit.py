"""A peer channel's cap on its batches (node/batch_limit.py, node/peers.py) halves when the peer
refuses a batch as too large, and grows back: to full batches within a few probes once the peer
takes them, and with probes ever further apart while it does not.

Peers._run halved its channel's bytes_max on a 413 and never raised it again: one 413 (a peer
restarted for a while with a smaller body_bytes_max) left the channel sending small batches,
a frame and an ack each, for the life of the process. And a 413 for a batch needing more tokens
than the peer's rate-limit burst (a count of items) halved the cap on bytes, which held back
batches of a few large items that the burst would have taken.

The rule itself is checked on BatchLimit alone, over many batches; the channel through a fake
peer whose frame limit the test sets (tests/node/fake_peer.py), and through a node's rate limit.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from node import peers as links
from node.api import LIMITER_KEY, create_app
from node.batch_limit import PROBE_AFTER_BATCHES_MAX, PROBE_AFTER_BATCHES_MIN, BatchLimit
from node.limits import ApiLimits, RateLimiter
from node.peers import PeerLink, Peers
from node.service import Node
from tests.node.fake_peer import FakePeer, serving

WITHIN_S = 10.0
# The channel's normal batch, small enough for a test to send hundreds of them quickly.
FULL_BYTES = 8 * 1024
MESSAGE = b"m" * 100
# Takes a batch of up to 19 of MESSAGE (a frame of about 2 KiB): the channel's first batches,
# 81 of them, are refused.
SMALL_FRAME_BYTES = 2 * 1024


async def _until(check: Callable[[], object], timeout_s: float = WITHIN_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.005)


# -- the rule ---------------------------------------------------------------------------------


def _run(limit: BatchLimit, takes_max: int, batches: int) -> list[int]:
    """Send `batches` batches as large as the cap allows (a queue that never runs short) to a
    peer that takes at most `takes_max`: the indexes of the batches it refused."""
    refusals = []
    for index in range(batches):
        if limit.now > takes_max:
            limit.refuse(limit.now)
            refusals.append(index)
        else:
            limit.take(limit.now)
    return refusals


def test_a_cap_halved_once_is_full_again_within_a_few_probes() -> None:
    limit = BatchLimit(full=FULL_BYTES)
    limit.refuse(FULL_BYTES)
    assert limit.now == FULL_BYTES // 2
    batches = 0
    while limit.now < FULL_BYTES:
        limit.take(limit.now)
        batches += 1
        assert batches <= 2 * PROBE_AFTER_BATCHES_MIN
    limit.take(limit.now)  # as large as the batch refused: the peer's limit rose
    assert limit.refused is None and limit.probe_after == PROBE_AFTER_BATCHES_MIN


def test_a_peer_whose_limit_stays_small_is_probed_ever_more_rarely() -> None:
    full, takes_max, batches = 4 * 1024 * 1024, 3000, 100_000
    refusals = _run(BatchLimit(full=full), takes_max, batches)
    descent = math.ceil(math.log2(full / takes_max))  # halvings before a batch fits
    assert refusals[:descent] == list(range(descent))
    gaps = [later - earlier for earlier, later in itertools.pairwise(refusals[descent:])]
    assert gaps == sorted(gaps), "a failed probe was followed by a sooner one"
    assert gaps[-1] >= PROBE_AFTER_BATCHES_MAX
    doublings = int(math.log2(PROBE_AFTER_BATCHES_MAX // PROBE_AFTER_BATCHES_MIN))
    assert len(refusals) <= descent + doublings + 2 + batches // PROBE_AFTER_BATCHES_MAX


def test_between_probes_batches_stay_near_the_peers_limit() -> None:
    limit, takes_max = BatchLimit(full=4 * 1024 * 1024), 3000
    _run(limit, takes_max, 10_000)
    sizes = []
    for _ in range(10_000):
        if limit.now > takes_max:
            limit.refuse(limit.now)
        else:
            sizes.append(limit.now)
            limit.take(limit.now)
    assert min(sizes) > takes_max // 4


def test_small_batches_do_not_grow_the_cap() -> None:
    limit = BatchLimit(full=FULL_BYTES)
    limit.refuse(FULL_BYTES)
    for _ in range(10 * PROBE_AFTER_BATCHES_MAX):
        limit.take(len(MESSAGE))  # says nothing about whether the peer takes more
    assert limit.now == FULL_BYTES // 2


def test_a_peer_that_takes_what_it_refused_resets_the_probes() -> None:
    limit = BatchLimit(full=FULL_BYTES)
    assert _run(limit, 1000, 1000)  # probed a few times and refused
    assert limit.probe_after > PROBE_AFTER_BATCHES_MIN
    assert limit.refused is not None
    limit.take(limit.refused)
    assert limit.refused is None and limit.probe_after == PROBE_AFTER_BATCHES_MIN


def test_a_cap_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        BatchLimit(full=0)


# -- a channel to a peer whose frame limit changes --------------------------------------------


@pytest.fixture
async def small_peer(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[FakePeer, Peers]]:
    """A fake peer taking frames of SMALL_FRAME_BYTES, and a link to it whose messages' channel
    sends batches of FULL_BYTES of messages at most."""
    monkeypatch.setattr(links, "BATCH_BYTES_MAX", FULL_BYTES)
    peer = FakePeer(max_msg_size=SMALL_FRAME_BYTES)
    async with serving(peer) as url:
        peers = Peers(self_index=0, links=[PeerLink(index=1, name="b", url=url)])
        await peers.start()
        try:
            yield peer, peers
        finally:
            await peers.stop()


def _payload_bytes(batch: dict[str, Any]) -> int:
    return sum(map(len, batch["messages"]))


def _queue(peers: Peers, count: int) -> None:
    for _ in range(count):
        peers.send(1, MESSAGE)  # all queued before the sender task runs


class _RestartedPeer(FakePeer):
    """A fake peer whose frame limit is SMALL_FRAME_BYTES for its first `small_streams`
    streams (each refused frame closes one), and the usual one after: as if it restarted."""

    def __init__(self, small_streams: int) -> None:
        super().__init__(max_msg_size=SMALL_FRAME_BYTES)
        self.small_streams = small_streams

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        if self.streams_opened >= self.small_streams:
            self.max_msg_size = 4 * 1024 * 1024
        return await super().handle(request)


async def test_a_channel_halved_by_a_peer_whose_frame_grew_is_back_to_full_batches(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(links, "BATCH_BYTES_MAX", FULL_BYTES)
    # Refused at FULL_BYTES, and halved until a batch fits SMALL_FRAME_BYTES.
    halvings = math.ceil(math.log2(FULL_BYTES / SMALL_FRAME_BYTES)) + 1
    peer = _RestartedPeer(small_streams=halvings)
    count = 3000
    async with serving(peer) as url:
        peers = Peers(self_index=0, links=[PeerLink(index=1, name="b", url=url)])
        await peers.start()
        try:
            _queue(peers, count)
            await _until(lambda: sum(len(b["messages"]) for b in peer.batches) == count)
        finally:
            await peers.stop()
    assert peer.streams_opened == halvings + 1  # refused while small, never after
    sizes = [_payload_bytes(b) for b in peer.batches]
    assert sizes[0] < SMALL_FRAME_BYTES
    # Doublings from under SMALL_FRAME_BYTES to FULL_BYTES, one probe's batches each, and one
    # more before the first: back to the size refused, then past it.
    bound = PROBE_AFTER_BATCHES_MIN * (math.ceil(math.log2(FULL_BYTES / SMALL_FRAME_BYTES)) + 3)
    full = [index for index, size in enumerate(sizes) if size > FULL_BYTES - len(MESSAGE)]
    assert full and full[0] < bound, f"no full batch among the first {bound}: {sizes[:bound]}"
    assert all(size > FULL_BYTES - len(MESSAGE) for size in sizes[full[0] : -1])


async def test_a_peer_whose_frame_stays_small_is_probed_above_it_only_rarely(
    small_peer: tuple[FakePeer, Peers],
) -> None:
    peer, peers = small_peer
    count = 4000  # about 300 batches near the peer's frame
    _queue(peers, count)
    await _until(lambda: sum(len(b["messages"]) for b in peer.batches) == count)
    assert peers.links[1].status()["queued"] == 0
    batches = len(peer.batches)
    # Each refusal closes the stream (1009); the channel opens another for its next batch.
    refusals = peer.streams_opened - 1
    descent = math.ceil(math.log2(FULL_BYTES / SMALL_FRAME_BYTES)) + 1
    probes = refusals - descent
    assert probes >= 1, "the channel never tried a larger batch again"
    assert probes <= math.ceil(math.log2(batches / PROBE_AFTER_BATCHES_MIN)), (
        f"{probes} probes refused over {batches} batches"
    )


# -- a channel over a peer's rate-limit burst -------------------------------------------------

BURST = 8


@pytest.fixture
async def observer(node: Node) -> AsyncIterator[tuple[Peers, list[list[bytes]]]]:
    """An observer's link (no link proof) to `node`, whose rate limit's burst is BURST tokens
    and refills at once; and the transactions of each batch the node took, in order."""
    batches: list[list[bytes]] = []
    original = node.receive_peer_batch

    def recording(messages: Sequence[Any], txs: Sequence[Any], *, from_validator: bool) -> None:
        original(messages, txs, from_validator=from_validator)
        batches.append(list(txs))

    node.receive_peer_batch = recording  # type: ignore[method-assign]
    app = create_app(node, ApiLimits(rate_limit_per_s=1_000_000, rate_limit_burst=BURST))
    app[LIMITER_KEY] = RateLimiter(rate_per_s=1_000_000, burst=BURST)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    url = str(server.make_url("")).rstrip("/")
    peers = Peers(self_index=-1, links=[PeerLink(index=1, name="node1", url=url)])
    await peers.start()
    try:
        yield peers, batches
    finally:
        await peers.stop()
        await server.close()


async def test_a_batch_over_the_burst_caps_the_items_not_the_bytes(
    observer: tuple[Peers, list[list[bytes]]],
) -> None:
    peers, batches = observer
    small = [f"tx {n}".encode() for n in range(3 * BURST)]
    peers.forward_txs(small)  # one batch of 24 items: 25 tokens, over the burst
    await _until(lambda: sum(map(len, batches)) == len(small))
    assert max(map(len, batches)) < BURST  # split until a batch's tokens fit the burst
    large = [bytes([n]) * 2000 for n in range(BURST // 2)]  # 5 tokens: within the burst
    peers.forward_txs(large)
    await _until(lambda: sum(map(len, batches)) == len(small) + len(large))
    assert batches[-1] == large, "a batch of a few large items was split by bytes"
