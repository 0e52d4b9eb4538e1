"""A batch a peer refuses for its client rate limit (429) is kept, and sent again no sooner than
the Retry-After the peer gave.

An observer's links are no validator's (no link proof), so what it sends a validator, the client
transactions it forwards and anything on its messages channel, takes tokens of the validator's
client rate limit (node/limits.py). Peers._push counted a 429 ack as delivered, and the batch
was lost: every transaction a busy observer forwarded past the limit vanished without a trace.
A batch of more transactions than the limit's burst could never pass, however long it waited;
it is answered 413, as a batch too large for the peer, and split.

The ack's Retry-After helpers are reached through the module (`links.retry_wait_s`), so that
the link tests also run, and fail, against a node.peers that has none.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from ledger.encoding import encode
from node import peers as links
from node.api import LIMITER_KEY, create_app
from node.limits import ApiLimits, RateLimited, RateLimiter
from node.peers import Peers
from node.service import Node
from tests.node.fake_peer import linked

DELIVERED_WITHIN_S = 30.0
# Four tokens, four a second back: a batch of three transactions (one token for the batch,
# one a transaction) empties the bucket, and the next one is refused with Retry-After 1.
BURST = 4
RATE_PER_S = 4.0
SENT = 12  # one batch of 13 tokens, over the burst: split, then three rate-limited batches
OBSERVER_INDEX = -1  # as Node gives an observer
CLOCK_RESOLUTION_S = time.get_clock_info("monotonic").resolution


async def _until(check: Callable[[], object], timeout_s: float = DELIVERED_WITHIN_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Take:
    at_s: float  # time.monotonic() when the node charged the tokens
    tokens: int
    refused: RateLimited | None


class _RecordingLimiter(RateLimiter):
    """The node's rate limiter, recording every charge and what it answered."""

    def __init__(self) -> None:
        super().__init__(rate_per_s=RATE_PER_S, burst=BURST)
        self.takes: list[_Take] = []

    def take(self, client: str, tokens: int = 1) -> None:
        at_s = time.monotonic()
        try:
            super().take(client, tokens)
        except RateLimited as exc:
            self.takes.append(_Take(at_s=at_s, tokens=tokens, refused=exc))
            raise
        self.takes.append(_Take(at_s=at_s, tokens=tokens, refused=None))

    def refused_for_rate(self) -> list[_Take]:
        return [t for t in self.takes if t.refused is not None and not t.refused.exceeds_burst]


@dataclass(slots=True)
class _Received:
    """What reached the node's peer-batch entry, in order."""

    messages: list[bytes]
    txs: list[bytes]


@pytest.fixture
def received(node: Node, monkeypatch: pytest.MonkeyPatch) -> _Received:
    seen = _Received(messages=[], txs=[])
    original = node.receive_peer_batch

    def recording(messages: Sequence[Any], txs: Sequence[Any], *, from_validator: bool) -> None:
        assert not from_validator  # the observer's link proves no validator
        original(messages, txs, from_validator=from_validator)
        seen.messages.extend(messages)
        seen.txs.extend(txs)

    monkeypatch.setattr(node, "receive_peer_batch", recording)
    return seen


@pytest.fixture
def limiter() -> _RecordingLimiter:
    return _RecordingLimiter()


@pytest.fixture
async def observer(node: Node, limiter: _RecordingLimiter) -> AsyncIterator[Peers]:
    """An observer's link (no link proof) to `node` (validator 1), whose rate limit is tiny;
    served on 127.0.0.1 at a port the OS picks."""
    app = create_app(node, ApiLimits(rate_limit_per_s=RATE_PER_S, rate_limit_burst=BURST))
    app[LIMITER_KEY] = limiter
    async with linked(app, self_index=OBSERVER_INDEX) as peers:
        yield peers


def _payloads(kind: str) -> list[bytes]:
    return [f"{kind} {n} from the observer".encode() for n in range(SENT)]


async def test_transactions_an_observer_forwards_past_the_rate_limit_all_arrive_in_order(
    observer: Peers, received: _Received, limiter: _RecordingLimiter
) -> None:
    txs = _payloads("tx")
    observer.forward_txs(txs)  # all queued before the sender task runs: one batch
    await _until(lambda: len(received.txs) >= SENT)
    assert received.txs == txs  # each once, in the order forwarded
    assert limiter.refused_for_rate(), "the node never refused a batch for its rate"
    assert observer.links[1].status() == {**observer.links[1].status(), "queued": 0, "dropped": 0}


async def test_messages_an_observer_sends_past_the_rate_limit_all_arrive_in_order(
    observer: Peers, received: _Received, limiter: _RecordingLimiter
) -> None:
    messages = _payloads("message")
    for message in messages:
        observer.send(1, message)
    await _until(lambda: len(received.messages) >= SENT)
    assert received.messages == messages
    assert limiter.refused_for_rate(), "the node never refused a batch for its rate"


async def test_a_rate_limited_batch_is_sent_again_no_sooner_than_its_retry_after(
    observer: Peers, received: _Received, limiter: _RecordingLimiter
) -> None:
    observer.forward_txs(_payloads("tx"))
    await _until(lambda: len(received.txs) >= SENT)
    refusals = limiter.refused_for_rate()
    assert refusals
    for refusal in refusals:
        assert refusal.refused is not None
        asked_again = next(t for t in limiter.takes if t.at_s > refusal.at_s)
        waited_s = asked_again.at_s - refusal.at_s
        assert waited_s >= refusal.refused.retry_after_s - CLOCK_RESOLUTION_S, (
            f"sent again {waited_s:.3f} s after a refusal with Retry-After "
            f"{refusal.refused.retry_after_s} s"
        )


async def test_a_batch_over_the_rate_limits_burst_is_split_rather_than_retried_for_ever(
    observer: Peers, received: _Received, limiter: _RecordingLimiter
) -> None:
    observer.forward_txs(_payloads("tx"))
    await _until(lambda: len(received.txs) >= SENT)
    over_burst = [t.tokens for t in limiter.takes if t.refused and t.refused.exceeds_burst]
    # Halved each time (12, then 6), each size refused once: never the same batch again.
    assert over_burst[0] == SENT
    assert over_burst == sorted(set(over_burst), reverse=True)


# -- reading the ack's Retry-After -----------------------------------------------------------


def test_an_ack_carries_the_retry_after_of_a_429() -> None:
    ack = links.decode_ack(links.encode_ack(429, "over the rate", retry_after_s=2))
    assert (ack.status, ack.retry_after_s) == (429, 2)
    assert links.retry_wait_s(ack.retry_after_s) == 2.0


def test_a_retry_after_past_the_cap_waits_only_the_cap() -> None:
    assert links.retry_wait_s(3600) == links.RETRY_AFTER_S_MAX


def test_a_retry_after_of_zero_still_waits_the_shortest_back_off() -> None:
    assert links.retry_wait_s(0) == links.BACKOFF_MS_MIN / 1000


@pytest.mark.parametrize(
    "retry_after_s", ["2", b"2", -1, True, None], ids=["text", "bytes", "negative", "bool", "nil"]
)
def test_a_missing_or_malformed_retry_after_falls_back_to_the_back_off(
    retry_after_s: object,
) -> None:
    raw = encode({"status": 429, "error": "over the rate", "retry_after_s": retry_after_s})
    ack = links.decode_ack(raw)
    assert ack.status == 429 and ack.retry_after_s is None
    assert links.retry_wait_s(ack.retry_after_s) is None
    assert links.decode_ack(links.encode_ack(429, "over the rate")).retry_after_s is None
