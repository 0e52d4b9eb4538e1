"""Offered load for the bench and the memory run: senders' transactions in nonce order, submitted
in batches at a paced or unpaced rate, with what happened to them handed to a recorder.

A sender's transactions come from a feed: pre-signed (the bench, so signing is not part of what
is measured) or signed a chunk at a time as they are needed (a run of many minutes would
otherwise hold millions of them). One request per sender is in flight at a time, so a sender's
nonces reach a node in order; a node's refusals for a full mempool are offered again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ledger.crypto import KeyPair
from ledger.genesis import Role
from ledger.tx import Transaction
from node.client import ClientError, NodeClient

BENCH_SENDERS = 32
# Signed at a time by a SigningFeed: about 10 ms of the event loop, so the senders' first
# chunks, all signed at the start, do not hold the loop (and the first samples) for seconds.
SIGN_CHUNK = 64
REFUSED_STATUSES = (429, 503)  # the node is busy or its mempool is full: offer again
REFUSED_BACKOFF_S = 0.01


def bench_identities(count: int = BENCH_SENDERS) -> tuple[tuple[str, tuple[Role, ...]], ...]:
    """The senders of a cluster launched for load: suppliers, who may call inventory.receive."""
    return tuple((f"bench{i}", (Role.SUPPLIER,)) for i in range(count))


def receipt(keys: KeyPair, *, chain_id: str, nonce: int, serial: int) -> Transaction:
    """The load's transaction: one part received into the bench location. Its state stays
    small (fifty items), so a long run grows the chain, not the contract state."""
    return Transaction.create(
        keys,
        chain_id=chain_id,
        nonce=nonce,
        contract="inventory",
        method="receive",
        args={"item": f"part-{serial % 50}", "location": "bench", "qty": 1},
    )


class Feed(Protocol):
    """One sender's transactions in nonce order, from the first no node has accepted yet."""

    def peek(self, count: int) -> list[Transaction]:
        """Up to `count` next transactions (fewer, or none, when the feed runs out)."""
        ...

    def advance(self, count: int) -> None:
        """The first `count` of them were accepted (or rejected for good): drop them."""
        ...


class PresignedFeed:
    def __init__(self, txs: list[Transaction]) -> None:
        self._txs = txs
        self._position = 0

    def peek(self, count: int) -> list[Transaction]:
        return self._txs[self._position : self._position + count]

    def advance(self, count: int) -> None:
        self._position += count


class SigningFeed:
    """Endless: signs `chunk` more transactions whenever fewer than asked for are ready, so it
    holds at most a chunk plus a batch at a time."""

    def __init__(
        self, keys: KeyPair, *, chain_id: str, first_nonce: int = 0, chunk: int = SIGN_CHUNK
    ) -> None:
        if chunk < 1:
            raise ValueError(f"chunk must be at least 1, got {chunk}")
        self._keys = keys
        self._chain_id = chain_id
        self._next_nonce = first_nonce
        self._chunk = chunk
        self._ready: list[Transaction] = []

    def peek(self, count: int) -> list[Transaction]:
        while len(self._ready) < count:
            self._ready.extend(self._sign(max(self._chunk, count - len(self._ready))))
        return self._ready[:count]

    def advance(self, count: int) -> None:
        del self._ready[:count]

    def _sign(self, count: int) -> list[Transaction]:
        first = self._next_nonce
        self._next_nonce += count
        return [
            receipt(self._keys, chain_id=self._chain_id, nonce=nonce, serial=nonce)
            for nonce in range(first, first + count)
        ]


class Recorder(Protocol):
    """What a submitter tells about its requests."""

    def sending(self, txs: Sequence[Transaction], at: float) -> None:
        """These are about to be posted (again, if a node refused them before)."""
        ...

    def accepted(self, admitted: int, rejected: int) -> None:
        """Of the last request: `admitted` entered a mempool, `rejected` were refused for good."""
        ...


@dataclass(slots=True)
class Samples:
    """Per transaction: when it was first sent and when it was seen committed (latency)."""

    submitted_at: dict[str, float] = field(default_factory=dict)
    committed_at: dict[str, float] = field(default_factory=dict)
    rejected: int = 0

    def sending(self, txs: Sequence[Transaction], at: float) -> None:
        for tx in txs:
            self.submitted_at.setdefault(tx.hash.hex(), at)

    def accepted(self, admitted: int, rejected: int) -> None:
        self.rejected += rejected


@dataclass(slots=True)
class Counts:
    """Only totals: a long run keeps nothing per transaction."""

    admitted: int = 0
    rejected: int = 0

    def sending(self, txs: Sequence[Transaction], at: float) -> None:
        pass

    def accepted(self, admitted: int, rejected: int) -> None:
        self.admitted += admitted
        self.rejected += rejected


class Pacer:
    """Offered load: hands out permission to send `count` transactions at `rate_per_s` in all
    (open loop: the schedule does not wait for commits); rate 0 sends as fast as requests
    return, bounded by one request in flight per sender."""

    def __init__(self, rate_per_s: float) -> None:
        self.rate_per_s = rate_per_s
        self._started = time.monotonic()
        self._granted = 0

    async def wait(self, count: int, *, stop_at: float) -> bool:
        """Wait for the turn to send `count`; False at once if the turn comes at or after
        `stop_at` (monotonic), when the run is over."""
        if self.rate_per_s <= 0:
            return time.monotonic() < stop_at
        due = self._started + self._granted / self.rate_per_s
        self._granted += count
        if due >= stop_at:
            return False
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        return True


async def submit_in_order(
    client: NodeClient,
    feed: Feed,
    recorder: Recorder,
    *,
    stop_at: float,
    pacer: Pacer,
    batch: int,
) -> None:
    """One sender's transactions in nonce order, `batch` per request, one request at a time,
    until `stop_at` (monotonic) or the feed runs out. Only transactions not sent before take
    turns of the pacer's schedule: one a node refused and that goes again was offered already,
    and charging it again would offer fewer new ones than the rate says."""
    granted = 0  # of the feed's next transactions, how many the pacer has let go already
    while time.monotonic() < stop_at:
        chunk = feed.peek(batch)
        if not chunk:
            return
        if len(chunk) > granted:
            if not await pacer.wait(len(chunk) - granted, stop_at=stop_at):
                return  # a slow rate's turn can come after the end: it would stretch the run
            granted = len(chunk)
        recorder.sending(chunk, time.monotonic())
        try:
            outcomes = await client.submit_many([tx.wire for tx in chunk])
        except ClientError as exc:
            if exc.status in REFUSED_STATUSES:
                await asyncio.sleep(REFUSED_BACKOFF_S)
                continue
            raise
        taken = rejected = 0
        for outcome in outcomes:
            if outcome.get("status") in REFUSED_STATUSES:
                break  # this one and the rest go again, in order
            if "error" in outcome:
                rejected += 1
            taken += 1
        feed.advance(taken)
        granted -= taken
        recorder.accepted(taken - rejected, rejected)
        if taken < len(chunk):
            await asyncio.sleep(REFUSED_BACKOFF_S)
