"""Outbound links to the other validators.

Each peer has two queues, each with its own sender task: consensus messages, and forwarded client
transactions. Messages to a peer leave in the order they were queued, and everything queued while
a request is in flight leaves together in the next request: batching falls out of back-pressure
instead of a timer. The two channels keep a bulk of forwarded transactions (which the peer takes
a while to admit) from holding back the protocol's messages.

Each channel carries its batches over one WebSocket to the peer's GET /peer/stream, opened on
the first batch and kept open: a batch is one binary frame, answered by one ack frame
(msgpack {"status", "error"}, the status POST /peer/batch would have answered, and with a 429
"retry_after_s", its Retry-After) before the next batch leaves. An HTTP request per batch cost
both ends about six times the CPU of a frame and its ack (aiohttp's request and response
objects, headers, middleware, routing), and a block takes a dozen batches a node. A stream that
fails in any way (the batch not sent and acked within ACK_TIMEOUT_S, a close, a frame that is
not an ack) is dropped and the batch put back; the next try opens a new one.

A batch a peer did not take is put back at the front and retried with back-off, so a peer that
restarts gets what it missed while it was briefly away; a peer down for longer than
STALE_AFTER_MS has its backlog dropped and catches up by state transfer instead. A peer that
answers 503 (paused, node/pause.py) asks for the batch again later: it is kept and retried the
same way, however long the pause. That ack carries no retry_after_s, nor POST /peer/batch's
503 a Retry-After: a pause ends when its operator resumes the node, which the node cannot
foresee, so the back-off, short at first, is the best guess there is. A batch answered 429
(the peer's client rate limit, node/limits.py, which counts what an observer's links carry:
they are no validator's) is kept too, first in its channel, and sent again no sooner than the
ack's retry_after_s, capped at RETRY_AFTER_S_MAX; an ack without a usable one waits the
channel's back-off instead. Only that channel waits: the link's other channel and the other
links go on.

A batch larger than the peer takes is split and its halves sent again; only a single message
too large for the peer is dropped, as resending it cannot help. Two limits are told apart: a
frame past the peer's body_bytes_max (which may be below BATCH_BYTES_MAX) closes the stream
with 1009, and halves the channel's cap on a batch's bytes; a batch that needs more tokens than
the peer's rate limit has in its burst (one a batch and one an item) is acked 413, and halves
the cap on a batch's items instead, since its bytes are not what the peer refused. Either cap
grows back to BATCH_BYTES_MAX (BATCH_TX_BYTES_MAX) by probes spaced further apart each time
one is refused (node/batch_limit.py), so a peer whose limit was small for a while is sent
full batches again, and one whose limit stays small refuses a batch ever more rarely. The
queue is also bounded in bytes, dropping the oldest items first, so a dead peer cannot grow
memory (the protocol's retransmission and state transfer cover what was dropped).

Every request to a peer states this node's protocol version (node/protocol.py), and a stream
asks for the version's WebSocket subprotocol. A peer of another version refuses the stream (409,
naming its version), or, from before versions were stated, takes it without choosing the
subprotocol, and the stream is closed unused. Either way the link is down and marked
incompatible in its status with the peer's version; an ERROR is logged once, not on every retry,
and the channels go on retrying with their back-off, since the peer may be upgraded.

Every batch passes the node's fault injector (node/faults.py) on its way out: it may wait, be
lost, go twice, or fail as if the peer were unreachable when the link is blocked.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from ledger.encoding import decode, encode
from ledger.errors import EncodingError
from node.batch_limit import BatchLimit
from node.errors import ProtocolMismatch, StreamBroken
from node.faults import FaultInjector
from node.protocol import (
    PROTOCOL_HEADER,
    PROTOCOL_VERSION,
    REFUSED_STATUS,
    describe,
    stated_version,
    subprotocol,
    subprotocol_version,
)

log = logging.getLogger(__name__)

# A peer's answer to a question is a few nonces; read at most this much of it.
ANSWER_BYTES_MAX = 1024 * 1024
_READ_CHUNK = 64 * 1024


async def read_capped(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """A peer's answer body, refused (aiohttp.ClientPayloadError) as soon as it passes `limit`
    bytes: a byzantine peer must not be able to make this node hold an answer of any size."""
    if response.content_length is not None and response.content_length > limit:
        raise aiohttp.ClientPayloadError(
            f"the answer is {response.content_length} bytes, more than the {limit} expected"
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(_READ_CHUNK):
        size += len(chunk)
        if size > limit:
            raise aiohttp.ClientPayloadError(f"the answer passed the {limit} bytes expected")
        chunks.append(chunk)
    return b"".join(chunks)


QUEUE_BYTES_MAX = 64 * 1024 * 1024
BATCH_BYTES_MAX = 4 * 1024 * 1024
# Forwarded transactions per batch (a peer queues them and admits them in slices).
BATCH_TX_BYTES_MAX = 256 * 1024
ACK_TIMEOUT_S = 10.0
ACK_BYTES_MAX = 64 * 1024
# Two channels' streams a peer, held open, and room beside them for questions (`ask`).
CONNECTIONS_PER_PEER = 4
STREAM_PATH = "/peer/stream"
BACKOFF_MS_MIN = 50
BACKOFF_MS_MAX = 2000
STALE_AFTER_MS = 5000  # a peer down longer than this gets no backlog, only what follows
# The longest a rate-limited channel honours a peer's Retry-After before it asks again: a peer
# (byzantine, or with a rate near zero) must not be able to park a channel for an hour.
RETRY_AFTER_S_MAX = 5.0


class _Outcome(enum.Enum):
    """What became of a batch sent to a peer."""

    DELIVERED = "delivered"  # the peer took it, or refused it for good (malformed)
    FAILED = "failed"  # no answer: the peer is down, or the link blocked
    RETRY_LATER = "retry-later"  # the peer answered 503: it takes no batches now
    RATE_LIMITED = "rate-limited"  # the peer answered 429: not before its Retry-After
    TOO_LARGE = "too-large"  # more bytes than the peer takes in one frame (closed with 1009)
    OVER_BURST = "over-burst"  # more items than its rate limit's burst has tokens for (413)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Answer:
    """What became of a batch, and for RATE_LIMITED how long to wait before sending it again
    (None: the channel's back-off)."""

    outcome: _Outcome
    wait_s: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Ack:
    """A peer's ack of one batch on its stream (see the module docstring)."""

    status: int
    error: str | None
    retry_after_s: int | None = None  # with a 429: when the peer takes batches again
    # No ack frame at all: the peer closed the stream (1009) because the frame passed its
    # body_bytes_max. Read as 413, told apart from a 413 ack (over the burst: too many items).
    frame_too_big: bool = False


@dataclass(slots=True)
class _Queue:
    items: deque[bytes] = field(default_factory=deque)
    size: int = 0
    dropped: int = 0

    def push(self, item: bytes) -> None:
        self.items.append(item)
        self.size += len(item)
        while self.size > QUEUE_BYTES_MAX and len(self.items) > 1:
            self.size -= len(self.items.popleft())
            self.dropped += 1

    def take(self, bytes_max: int, items_max: int) -> list[bytes]:
        """The oldest items, at least one, within `bytes_max` bytes and `items_max` items."""
        taken: list[bytes] = []
        budget = bytes_max
        while self.items and (
            not taken or (len(self.items[0]) <= budget and len(taken) < items_max)
        ):
            item = self.items.popleft()
            self.size -= len(item)
            budget -= len(item)
            taken.append(item)
        return taken

    def drop_all(self) -> None:
        self.dropped += len(self.items)
        self.items.clear()
        self.size = 0

    def put_back(self, items: list[bytes]) -> None:
        for item in reversed(items):
            self.items.appendleft(item)
            self.size += len(item)


@dataclass(slots=True)
class PeerLink:
    index: int
    name: str
    url: str
    messages: _Queue = field(default_factory=_Queue)
    txs: _Queue = field(default_factory=_Queue)
    up: bool = False
    last_ok_ms: int | None = None
    sent_batches: int = 0
    failures: int = 0
    down_since_ms: int | None = None
    # The protocol version the peer last showed (in its refusal, or by the stream it took),
    # None before it showed one; and whether that was another than this node's.
    peer_protocol: int | None = None
    incompatible: bool = False
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    wake_txs: asyncio.Event = field(default_factory=asyncio.Event)

    def down_for_ms(self) -> int:
        if self.down_since_ms is None:
            return 0
        return int(time.time() * 1000) - self.down_since_ms

    def status(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "name": self.name,
            "url": self.url,
            "up": self.up,
            "last_ok_ms": self.last_ok_ms,
            "queued": len(self.messages.items) + len(self.txs.items),
            "dropped": self.messages.dropped + self.txs.dropped,
            "peer_protocol": self.peer_protocol,
            "protocol_incompatible": self.incompatible,
        }


class Peers:
    def __init__(
        self,
        *,
        self_index: int,
        links: list[PeerLink],
        faults: FaultInjector | None = None,
        proof: Callable[[int], dict[str, str]] | None = None,
    ) -> None:
        """`proof`: the headers that prove to peer i which validator opens the link (see
        node/peer_auth.py); None for a node that is no validator (an observer)."""
        self.self_index = self_index
        self.links = {link.index: link for link in links}
        self.faults = FaultInjector() if faults is None else faults
        self._proof = proof
        self._session: aiohttp.ClientSession | None = None
        self._tasks: list[asyncio.Task[None]] = []
        # (peer index, is the transactions channel) -> its open stream
        self._streams: dict[tuple[int, bool], aiohttp.ClientWebSocketResponse] = {}

    async def start(self) -> None:
        # Each link holds its two channels' streams for good: a total below what all links
        # together may hold (aiohttp's default is 100) leaves the links past it unconnected.
        connector = aiohttp.TCPConnector(
            limit=CONNECTIONS_PER_PEER * max(1, len(self.links)),
            limit_per_host=CONNECTIONS_PER_PEER,
            keepalive_timeout=60,
        )
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=10, connect=2)
        )
        self._tasks = [
            *(
                asyncio.create_task(self._run(link, txs=False), name=f"peer-{link.name}")
                for link in self.links.values()
            ),
            *(
                asyncio.create_task(self._run(link, txs=True), name=f"peer-{link.name}-txs")
                for link in self.links.values()
            ),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        # Together: each close waits up to a second for an unreachable peer's close frame.
        await asyncio.gather(*(stream.close() for stream in self._streams.values()))
        self._streams.clear()
        if self._session is not None:
            await self._session.close()

    def send(self, index: int, message: bytes) -> None:
        link = self.links[index]
        link.messages.push(message)
        link.wake.set()

    def broadcast(self, message: bytes) -> None:
        for index in self.links:
            self.send(index, message)

    def forward_txs(self, txs: list[bytes]) -> None:
        for index in self.links:
            self.forward_txs_to(index, txs)

    def forward_txs_to(self, index: int, txs: list[bytes]) -> None:
        """Forward transactions to one peer (to all: `forward_txs`)."""
        link = self.links[index]
        for tx in txs:
            link.txs.push(tx)
        link.wake_txs.set()

    async def ask(self, index: int, path: str, body: bytes, timeout_s: float) -> bytes | None:
        """POST a question to a peer and return the answer's body, or None if it got none (the
        link is blocked, the fault injector lost it, the peer is unreachable or refused it).
        Questions pass the fault injector like batches, but a failure does not mark the peer
        down: the batches decide that."""
        link = self.links[index]
        verdict = self.faults.decide(link.name)
        if verdict.blocked or verdict.copies == 0:
            return None
        if verdict.delay_ms:
            await asyncio.sleep(verdict.delay_ms / 1000)
        try:
            status, answer = await self._exchange(link, path, body, timeout_s)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            log.debug("asking %s %s failed: %s", link.name, path, exc)
            return None
        if status != 200:
            log.warning("peer %s answered %s with status %d", link.name, path, status)
            return None
        return answer

    def status(self) -> list[dict[str, Any]]:
        return [link.status() for link in self.links.values()]

    async def _run(self, link: PeerLink, *, txs: bool) -> None:
        """One channel of a link: its consensus messages, or (`txs`) its forwarded transactions."""
        queue, wake = (link.txs, link.wake_txs) if txs else (link.messages, link.wake)
        full = BATCH_TX_BYTES_MAX if txs else BATCH_BYTES_MAX
        # The frame's bytes, and the items a rate limit's burst has tokens for: refused for
        # either, a batch is split by that one (see node/batch_limit.py). No batch holds more
        # items than bytes, so at `full` the items' cap holds none back.
        bytes_limit, items_limit = BatchLimit(full=full), BatchLimit(full=full)
        backoff_ms = BACKOFF_MS_MIN
        while True:
            await wake.wait()
            wake.clear()
            while queue.items:
                items = queue.take(bytes_limit.now, items_limit.now)
                body = encode(
                    {
                        "sender": self.self_index,
                        "messages": [] if txs else items,
                        "txs": items if txs else [],
                    }
                )
                answer = await self._deliver(link, body, txs=txs)
                outcome = answer.outcome
                if outcome is _Outcome.DELIVERED:
                    bytes_limit.take(sum(map(len, items)))
                    items_limit.take(len(items))
                    backoff_ms = BACKOFF_MS_MIN
                    continue
                if outcome is _Outcome.RATE_LIMITED and answer.wait_s is not None:
                    # Kept at the front, as a 503's batch is, for when the peer said to ask
                    # again; the back-off is left as it was, since the peer is up.
                    queue.put_back(items)
                    await asyncio.sleep(answer.wait_s)
                    continue
                if outcome in (_Outcome.TOO_LARGE, _Outcome.OVER_BURST):
                    if len(items) > 1:
                        # The peer takes less than this channel's batches: send smaller ones
                        # for a while, these items first.
                        queue.put_back(items)
                        if outcome is _Outcome.TOO_LARGE:
                            bytes_limit.refuse(sum(map(len, items)))
                        else:
                            items_limit.refuse(len(items))
                    else:
                        log.error(
                            "peer %s refused a message of %d bytes as larger than it takes; "
                            "dropped",
                            link.name,
                            len(items[0]),
                        )
                    continue
                if outcome is _Outcome.FAILED and link.down_for_ms() > STALE_AFTER_MS:
                    # Down this long, it catches up by state transfer; a backlog of stale
                    # messages would only flood it when it returns.
                    queue.drop_all()
                else:
                    # RETRY_LATER, RATE_LIMITED without a usable Retry-After, or a FAILED
                    # link not yet stale: kept, first in line, for after the back-off.
                    queue.put_back(items)
                await asyncio.sleep(backoff_ms / 1000)
                backoff_ms = min(backoff_ms * 2, BACKOFF_MS_MAX)

    async def _deliver(self, link: PeerLink, body: bytes, *, txs: bool) -> _Answer:
        """Send one batch through the fault injector: what became of it."""
        verdict = self.faults.decide(link.name)
        if verdict.blocked:
            self._mark_down(link, "link blocked by fault injection")
            return _Answer(outcome=_Outcome.FAILED)
        if verdict.delay_ms:
            await asyncio.sleep(verdict.delay_ms / 1000)
        if verdict.copies == 0:
            # lost on the way: the sender cannot tell
            return _Answer(outcome=_Outcome.DELIVERED)
        answer = await self._push(link, body, txs=txs)
        for _ in range(verdict.copies - 1):
            again = await self._push(link, body, txs=txs)
            if answer.outcome is _Outcome.DELIVERED:
                answer = again
        return answer

    def _mark_down(self, link: PeerLink, reason: object) -> None:
        link.failures += 1
        if link.down_since_ms is None:
            link.down_since_ms = int(time.time() * 1000)
        if link.up:
            log.warning("peer %s is down: %s", link.name, reason)
        link.up = False

    async def _exchange(
        self, link: PeerLink, path: str, body: bytes, timeout_s: float | None = None
    ) -> tuple[int, bytes]:
        """POST a msgpack body to the peer's `path` (within `timeout_s`, else the session's
        timeout): the answer's status and body. Raises what aiohttp raises without one."""
        assert self._session is not None
        timeout = (
            self._session.timeout if timeout_s is None else aiohttp.ClientTimeout(total=timeout_s)
        )
        async with self._session.post(
            f"{link.url}{path}",
            data=body,
            headers={"Content-Type": "application/msgpack", **self._headers(link)},
            timeout=timeout,
        ) as response:
            return response.status, await read_capped(response, ANSWER_BYTES_MAX)

    def _headers(self, link: PeerLink) -> dict[str, str]:
        """What every request to the peer carries: this node's protocol version, and the
        proof of which validator sends it (none from an observer)."""
        return {
            PROTOCOL_HEADER: str(PROTOCOL_VERSION),
            **({} if self._proof is None else self._proof(link.index)),
        }

    def _mark_incompatible(self, link: PeerLink, exc: ProtocolMismatch) -> None:
        """The peer speaks another protocol version: down, and said so once (its channels
        retry for as long as it stays so, every BACKOFF_MS_MAX at most)."""
        if not link.incompatible:
            log.error("peer %s cannot be linked: %s", link.name, exc)
        link.incompatible = True
        link.peer_protocol = exc.theirs
        self._mark_down(link, exc)

    async def _push(self, link: PeerLink, body: bytes, *, txs: bool) -> _Answer:
        """Send one batch on the channel's stream and wait for its ack: DELIVERED if the peer
        took it (or refused it for good: resending the same bytes cannot help)."""
        try:
            ack = await self._exchange_on_stream(link, body, txs=txs)
        except ProtocolMismatch as exc:
            self._mark_incompatible(link, exc)
            return _Answer(outcome=_Outcome.FAILED)
        except (aiohttp.ClientError, TimeoutError, OSError, StreamBroken) as exc:
            await self._drop_stream(link, txs=txs)
            self._mark_down(link, exc or type(exc).__name__)
            return _Answer(outcome=_Outcome.FAILED)
        if not link.up:
            log.info("peer %s is up", link.name)
        link.up = True
        link.down_since_ms = None
        link.last_ok_ms = int(time.time() * 1000)
        link.sent_batches += 1
        return _answer_to(link, ack)

    async def _exchange_on_stream(self, link: PeerLink, body: bytes, *, txs: bool) -> Ack:
        """Send `body` as one frame and read its ack. Raises StreamBroken (or
        what aiohttp raises) when the stream cannot carry it."""
        stream = self._streams.get((link.index, txs))
        if stream is None or stream.closed:
            return await self._send_for_ack(await self._new_stream(link, txs=txs), body)
        try:
            return await self._send_for_ack(stream, body)
        except TimeoutError:
            raise
        except (aiohttp.ClientError, OSError, StreamBroken) as exc:
            # The peer may have closed a stream left idle (its heartbeat pings are read only
            # while a batch waits for its ack): one more try on a new stream before the peer
            # counts as down. Not after a timeout: a silent peer would cost twice the wait.
            log.debug("stream to %s failed (%s); opening another", link.name, exc)
            await self._drop_stream(link, txs=txs)
            return await self._send_for_ack(await self._new_stream(link, txs=txs), body)

    async def _send_for_ack(self, stream: aiohttp.ClientWebSocketResponse, body: bytes) -> Ack:
        # The send counts against the ack's time too: to a peer that takes the connection and
        # never reads (stopped, or byzantine), send_bytes waits for the socket to drain for ever,
        # and the link would never count as down nor drop its backlog.
        async with asyncio.timeout(ACK_TIMEOUT_S):
            await stream.send_bytes(body)
            message = await stream.receive()
        if message.type is aiohttp.WSMsgType.BINARY:
            return decode_ack(message.data)
        if message.type is aiohttp.WSMsgType.CLOSE and message.data == (
            aiohttp.WSCloseCode.MESSAGE_TOO_BIG
        ):
            return Ack(
                status=413, error="the batch is larger than the peer takes", frame_too_big=True
            )
        raise StreamBroken(f"peer stream ended without an ack ({message.type.name})")

    async def _new_stream(self, link: PeerLink, *, txs: bool) -> aiohttp.ClientWebSocketResponse:
        """A stream to the peer; ProtocolMismatch if the peer speaks another protocol version."""
        assert self._session is not None
        try:
            stream = await self._session.ws_connect(
                f"{link.url}{STREAM_PATH}",
                headers=self._headers(link),
                protocols=(subprotocol(PROTOCOL_VERSION),),
                compress=0,
                max_msg_size=ACK_BYTES_MAX,
                # A broken stream is dropped without waiting long for the peer's close frame.
                timeout=aiohttp.ClientWSTimeout(ws_close=1.0),
            )
        except aiohttp.WSServerHandshakeError as exc:
            stated = None if exc.headers is None else exc.headers.get(PROTOCOL_HEADER)
            if exc.status == REFUSED_STATUS and stated is not None:
                raise _mismatch(stated_version(stated), "refused the stream") from exc
            raise
        theirs = subprotocol_version(stream.protocol)
        if theirs != PROTOCOL_VERSION:
            await stream.close()
            chosen = stream.protocol
            raise _mismatch(
                theirs,
                "took the stream without choosing its subprotocol"
                if chosen is None
                else f"took the stream as {chosen[:32]!r}",
            )
        link.peer_protocol = theirs
        if link.incompatible:
            log.info("peer %s speaks protocol %d now", link.name, theirs)
            link.incompatible = False
        self._streams[(link.index, txs)] = stream
        return stream

    async def _drop_stream(self, link: PeerLink, *, txs: bool) -> None:
        stream = self._streams.pop((link.index, txs), None)
        if stream is not None:
            await stream.close()


def _mismatch(theirs: int | None, what: str) -> ProtocolMismatch:
    return ProtocolMismatch(
        f"it speaks {describe(theirs)} and {what}; this node speaks protocol {PROTOCOL_VERSION}. "
        "Run the same millchain version on every node",
        theirs=theirs,
    )


def _answer_to(link: PeerLink, ack: Ack) -> _Answer:
    """What the sender does with a batch the peer acked."""
    if ack.status == 503:
        log.debug("peer %s takes no batches now (%s); sending again later", link.name, ack.error)
        return _Answer(outcome=_Outcome.RETRY_LATER)
    if ack.status == 429:
        wait_s = retry_wait_s(ack.retry_after_s)
        log.debug(
            "peer %s rate-limits this node (%s); sending again in %s",
            link.name,
            ack.error,
            "the back-off" if wait_s is None else f"{wait_s:g} s",
        )
        return _Answer(outcome=_Outcome.RATE_LIMITED, wait_s=wait_s)
    if ack.status == 413:
        return _Answer(outcome=_Outcome.TOO_LARGE if ack.frame_too_big else _Outcome.OVER_BURST)
    if ack.status != 200:
        log.warning("peer %s refused a batch with status %d: %s", link.name, ack.status, ack.error)
    return _Answer(outcome=_Outcome.DELIVERED)


def retry_wait_s(retry_after_s: int | None) -> float | None:
    """Seconds to wait before resending a batch refused with 429 and `retry_after_s` (None if
    the ack carried none): at least BACKOFF_MS_MIN, at most RETRY_AFTER_S_MAX. None when there
    is nothing to honour, and the channel's back-off decides."""
    if retry_after_s is None:
        return None
    return min(max(float(retry_after_s), BACKOFF_MS_MIN / 1000), RETRY_AFTER_S_MAX)


def encode_ack(status: int, problem: str | None, *, retry_after_s: int | None = None) -> bytes:
    """The ack frame a peer answers a batch with on its stream (see the module docstring)."""
    ack: dict[str, Any] = {"status": status, "error": problem}
    if retry_after_s is not None:
        ack["retry_after_s"] = retry_after_s
    return encode(ack)


def decode_ack(data: bytes) -> Ack:
    """A peer's ack frame; StreamBroken if it is not one. A retry_after_s that is not a whole
    number of seconds from 0 (a float, a string, negative) is ignored rather than breaking the
    stream: the ack's status is still good, and the sender falls back to its back-off (logged)."""
    try:
        ack = decode(data)
    except EncodingError as exc:
        raise StreamBroken(f"peer sent an ack that is not msgpack: {exc}") from exc
    if (
        not isinstance(ack, dict)
        or not {"status", "error"} <= set(ack) <= {"status", "error", "retry_after_s"}
        or not isinstance(ack["status"], int)
        or not isinstance(ack["error"], (str, type(None)))
    ):
        raise StreamBroken(
            "peer sent an ack that is not a map of 'status', 'error' and an optional "
            "'retry_after_s'"
        )
    retry_after_s = ack.get("retry_after_s")
    if retry_after_s is not None and (
        isinstance(retry_after_s, bool) or not isinstance(retry_after_s, int) or retry_after_s < 0
    ):
        log.warning(
            "peer sent an ack whose retry_after_s is %r, not whole seconds from 0; ignored",
            retry_after_s,
        )
        retry_after_s = None
    return Ack(status=ack["status"], error=ack["error"], retry_after_s=retry_after_s)


def parse_ack(data: bytes) -> tuple[int, str | None]:
    """A peer's ack frame as (status, error); StreamBroken if it is not one."""
    ack = decode_ack(data)
    return ack.status, ack.error
