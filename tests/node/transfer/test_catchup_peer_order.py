"""Which peer a catch-up asks first (node/catchup.py, PeerOrder): a peer that failed a catch-up
(timed out, refused the connection, served a run a checkpoint proof contradicts, or fell short
of what a later peer served) is asked after the others in the catch-ups that follow, and not at
all by one with no target, until its demotion ends or it serves a catch-up to its end. A peer
that said it was busy (429 or 503) keeps its place but is not asked before its Retry-After; a
peer that goes silent while answering times out after the silence limit, not the whole timeout.

The fake peers serve the history of chain.py (beside this file); requests are counted at the
client, so a refused connection counts too.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from types import SimpleNamespace

import aiohttp
import pytest
from aiohttp import web

from node import catchup
from node.history import encode_history
from node.peers import BACKOFF_MS_MIN, RETRY_AFTER_S_MAX
from node.storage import Storage
from node.sync import blocks_query
from tests.node.transfer.chain import (
    BLOCKS,
    SETUP,
    Target,
    peer_app,
    served,
    tamper_write_at,
)

FAULTS = ["serves-a-bad-run", "refuses-connections", "times-out", "trickles-a-block"]
ANSWER_TIMEOUT_S = 1.0  # the session's, for the peer that never answers
SILENCE_S = 0.3  # the silence limit the silent-peer tests give a catch-up
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
WAIT_S = 30.0  # the bound on any wait for the code under test


class Asked:
    """The /peer/history requests a client session started, by peer base URL."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._changed = asyncio.Event()

    def trace(self) -> aiohttp.TraceConfig:
        config = aiohttp.TraceConfig()
        config.on_request_start.append(self._on_request_start)
        return config

    async def _on_request_start(
        self,
        session: aiohttp.ClientSession,
        context: SimpleNamespace,
        params: aiohttp.TraceRequestStartParams,
    ) -> None:
        self.counts[str(params.url.origin())] += 1
        self._changed.set()

    async def until(self, url: str, count: int) -> None:
        """Wait (at most WAIT_S) until `url` was asked `count` times."""
        async with asyncio.timeout(WAIT_S):
            while self.counts[url] < count:
                self._changed.clear()
                await self._changed.wait()


class FakeClock:
    def __init__(self) -> None:
        self.now_s = 1000.0
        self.slept_s: list[float] = []

    def __call__(self) -> float:
        return self.now_s

    async def sleep(self, seconds: float) -> None:
        """Passes `seconds` at once (and lets the loop run once), noting the wait."""
        self.slept_s.append(seconds)
        self.now_s += seconds
        await asyncio.sleep(0)


@pytest.fixture
def asked() -> Asked:
    return Asked()


@pytest.fixture
async def session(asked: Asked) -> AsyncIterator[aiohttp.ClientSession]:
    timeout = aiohttp.ClientTimeout(total=ANSWER_TIMEOUT_S)
    async with aiohttp.ClientSession(timeout=timeout, trace_configs=[asked.trace()]) as session:
        yield session


@contextlib.asynccontextmanager
async def faulty_peer(fault: str, source: Storage) -> AsyncIterator[str]:
    """Serve a peer that fails a catch-up as `fault` says; yields its base URL."""
    if fault == "refuses-connections":
        async with served(web.Application()) as (url,):
            pass  # closed again: its port refuses connections
        yield url
        return
    release = asyncio.Event()
    if fault == "serves-a-bad-run":
        app = peer_app(source, tamper_write_at(2))
    elif fault == "trickles-a-block":
        app = peer_app(source, page=1)
    else:
        assert fault == "times-out", fault

        async def never_answer(request: web.Request) -> web.Response:
            await release.wait()
            return web.Response(status=503)

        app = web.Application()
        app.router.add_get("/peer/history", never_answer)
    async with served(app) as (url,):
        try:
            yield url
        finally:
            release.set()  # lets its handler end, so the server closes at once


def busy_first(app: web.Application, answers: list[tuple[int, str | None]]) -> web.Application:
    """`app`, answering its next requests with `answers` (status, Retry-After) first."""

    @web.middleware
    async def busy(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not answers:
            return await handler(request)
        status, retry_after = answers.pop(0)
        headers = {} if retry_after is None else {"Retry-After": retry_after}
        return web.json_response({"error": "busy"}, status=status, headers=headers)

    app.middlewares.append(busy)
    return app


async def catch_up_to(
    session: aiohttp.ClientSession,
    target: Target,
    urls: Sequence[str],
    to_height: int,
    order: catchup.PeerOrder,
) -> int:
    return await catchup.catch_up(
        session,
        SETUP.genesis,
        target.storage,
        urls,
        to_height=to_height,
        apply=target.apply,
        stats=target.stats,
        order=order,
    )


@pytest.mark.parametrize("fault", FAULTS)
async def test_a_follower_stops_asking_a_peer_that_failed_it(
    session: aiohttp.ClientSession, asked: Asked, source: Storage, target: Target, fault: str
) -> None:
    # Each poll is a catch-up of its own; asked first every time, the faulty peer would delay
    # every one of them (by a whole timeout, if it never answers).
    async with faulty_peer(fault, source) as bad, served(peer_app(source)) as (good,):
        following = asyncio.create_task(
            catchup.follow(
                session,
                SETUP.genesis,
                target.storage,
                [bad, good],
                apply=target.apply,
                stats=target.stats,
                interval_s=0,
            )
        )
        try:
            await asked.until(good, 4)  # the poll that caught up, and three more
        finally:
            following.cancel()
            with pytest.raises(asyncio.CancelledError):
                await following

    assert target.storage.head() == source.head()
    assert asked.counts[bad] == 1


async def test_a_peer_that_served_a_bad_run_is_asked_after_the_others(
    session: aiohttp.ClientSession, asked: Asked, source: Storage, target: Target
) -> None:
    order = catchup.PeerOrder(clock=FakeClock())
    async with served(peer_app(source, tamper_write_at(2)), peer_app(source)) as (bad, good):
        assert await catch_up_to(session, target, [bad, good], 4, order) == 4
        assert (asked.counts[bad], asked.counts[good]) == (1, 1)

        assert await catch_up_to(session, target, [bad, good], BLOCKS, order) == BLOCKS - 4

    assert (asked.counts[bad], asked.counts[good]) == (1, 2)
    assert target.storage.head() == source.head()


async def test_a_demoted_peer_is_still_asked_when_the_others_fall_short(
    session: aiohttp.ClientSession, asked: Asked, source: Storage, target: Target
) -> None:
    order = catchup.PeerOrder(clock=FakeClock())
    async with (
        served(peer_app(source)) as (demoted,),
        faulty_peer("refuses-connections", source) as down,
    ):
        order.demote(demoted)
        assert await catch_up_to(session, target, [demoted, down], BLOCKS, order) == BLOCKS

    assert (asked.counts[down], asked.counts[demoted]) == (1, 1)
    # It served the catch-up to its end: asked first again, the other one now last.
    assert order.arrange([demoted, down]) == ([demoted], [down])


async def test_a_demotion_ends_after_its_time(
    session: aiohttp.ClientSession, asked: Asked, source: Storage, target: Target
) -> None:
    clock = FakeClock()
    order = catchup.PeerOrder(clock=clock)
    async with served(peer_app(source, tamper_write_at(2)), peer_app(source)) as (bad, good):
        await catch_up_to(session, target, [bad, good], 4, order)
        clock.now_s += catchup.DEMOTION_S
        await catch_up_to(session, target, [bad, good], BLOCKS, order)

    # Asked first again; its lie was at block 2, so it now serves the rest, and is restored.
    assert (asked.counts[bad], asked.counts[good]) == (2, 1)
    assert target.storage.head() == source.head()
    assert order.arrange([bad, good]) == ([bad, good], [])


async def test_a_catch_up_without_a_target_asks_demoted_peers_when_no_other_is_left(
    session: aiohttp.ClientSession, asked: Asked, source: Storage, target: Target
) -> None:
    order = catchup.PeerOrder(clock=FakeClock())
    async with served(peer_app(source)) as (only,):
        order.demote(only)
        applied = await catchup.catch_up(
            session,
            SETUP.genesis,
            target.storage,
            [only],
            to_height=None,
            apply=target.apply,
            stats=target.stats,
            order=order,
        )

    assert applied == BLOCKS and asked.counts[only] == 1


def test_peers_keep_their_order_and_the_latest_demoted_comes_last() -> None:
    clock = FakeClock()
    order = catchup.PeerOrder(clock=clock)
    peers = ["a", "b", "c", "d"]
    assert order.arrange(peers) == (peers, [])

    order.demote("c")
    clock.now_s += 1
    order.demote("a")
    assert order.arrange(peers) == (["b", "d"], ["c", "a"])

    clock.now_s += 1
    order.demote("c")
    assert order.arrange(peers) == (["b", "d"], ["a", "c"])

    order.restore("a")
    assert order.arrange(peers) == (["a", "b", "d"], ["c"])


def test_it_holds_one_entry_a_peer_and_forgets_ended_demotions() -> None:
    clock = FakeClock()
    order = catchup.PeerOrder(clock=clock)
    for _ in range(3):
        order.demote("a")
        order.demote("b")
    assert len(order) == 2

    clock.now_s += catchup.DEMOTION_S - 1
    assert order.arrange(["a", "b"]) == ([], ["a", "b"])
    clock.now_s += 1
    assert order.arrange(["a", "b"]) == (["a", "b"], [])
    assert len(order) == 0


@pytest.mark.parametrize("status", [429, 503])
async def test_a_busy_peer_is_skipped_until_its_retry_after_and_keeps_its_place(
    session: aiohttp.ClientSession, asked: Asked, source: Storage, target: Target, status: int
) -> None:
    clock = FakeClock()
    order = catchup.PeerOrder(clock=clock, sleep=clock.sleep)
    busy_app = busy_first(peer_app(source), [(status, "2")])
    async with served(busy_app, peer_app(source)) as (busy, good):
        assert await catch_up_to(session, target, [busy, good], 4, order) == 4
        assert (asked.counts[busy], asked.counts[good]) == (1, 1)
        assert order.arrange([busy, good]) == ([busy, good], [])  # not demoted

        # Within its Retry-After it is not asked, though first in order.
        assert await catch_up_to(session, target, [busy, good], 8, order) == 4
        assert (asked.counts[busy], asked.counts[good]) == (1, 2)

        clock.now_s += 2
        assert await catch_up_to(session, target, [busy, good], BLOCKS, order) == BLOCKS - 8

    assert (asked.counts[busy], asked.counts[good]) == (2, 2)
    assert target.storage.head() == source.head()
    assert clock.slept_s == [] and len(order) == 0


async def test_when_every_peer_is_busy_the_catch_up_waits_for_the_first_free_one(
    session: aiohttp.ClientSession, asked: Asked, source: Storage, target: Target
) -> None:
    clock = FakeClock()
    order = catchup.PeerOrder(clock=clock, sleep=clock.sleep)
    # An hour is more than a catch-up honours: it asks that one after RETRY_AFTER_S_MAX.
    hour = busy_first(peer_app(source), [(503, "3600")])
    three = busy_first(peer_app(source), [(429, "3"), (429, "3")])
    async with served(hour, three) as (hour_url, three_url):
        applied = await catch_up_to(session, target, [hour_url, three_url], BLOCKS, order)

    assert applied == BLOCKS and target.storage.head() == source.head()
    # Both busy: it waited for the three seconds, found it busy again, then waited for the
    # capped hour (two seconds on), which served it all.
    assert clock.slept_s == [3.0, RETRY_AFTER_S_MAX - 3.0]
    assert (asked.counts[hour_url], asked.counts[three_url]) == (2, 2)
    assert order.arrange([hour_url, three_url]) == ([hour_url, three_url], [])


async def test_peers_that_stay_busy_end_the_catch_up_in_a_bounded_wait_undemoted(
    session: aiohttp.ClientSession, asked: Asked, source: Storage, target: Target
) -> None:
    clock = FakeClock()
    order = catchup.PeerOrder(clock=clock, sleep=clock.sleep)
    always: list[tuple[int, str | None]] = [(429, None)] * 100  # no Retry-After: the default
    async with served(busy_first(peer_app(source), always)) as (busy,):
        assert await catch_up_to(session, target, [busy], BLOCKS, order) == 0

    assert asked.counts[busy] == catchup.BUSY_ANSWERS_MAX
    assert clock.slept_s == [catchup.BUSY_WAIT_S_DEFAULT] * (catchup.BUSY_ANSWERS_MAX - 1)
    assert order.arrange([busy]) == ([busy], [])


async def test_a_catch_up_without_a_target_waits_for_no_busy_peer_once_another_answered(
    session: aiohttp.ClientSession, asked: Asked, source: Storage, target: Target
) -> None:
    clock = FakeClock()
    order = catchup.PeerOrder(clock=clock, sleep=clock.sleep)
    async with served(busy_first(peer_app(source), [(429, "2")]), peer_app(source)) as urls:
        busy, good = urls
        assert await catch_up_to(session, target, [good], BLOCKS, order) == BLOCKS
        # An idle poll: the busy peer is asked first, the other says there is nothing more.
        applied = await catchup.catch_up(
            session,
            SETUP.genesis,
            target.storage,
            [busy, good],
            to_height=None,
            apply=target.apply,
            stats=target.stats,
            order=order,
        )

    assert applied == 0 and clock.slept_s == []
    assert (asked.counts[busy], asked.counts[good]) == (1, 2)
    assert order.busy_s(busy) == 2.0


@pytest.mark.parametrize(
    ("retry_after", "wait_s"),
    [
        ("2", 2.0),
        (" 2 ", 2.0),
        ("0", BACKOFF_MS_MIN / 1000),
        ("3600", RETRY_AFTER_S_MAX),
        (None, None),  # None: BUSY_WAIT_S_DEFAULT
        ("Wed, 21 Oct 2015 07:28:00 GMT", None),
        ("-1", None),
        ("1.5", None),
        ("9" * 5000, None),
    ],
)
def test_a_retry_after_is_honoured_within_bounds(
    retry_after: str | None, wait_s: float | None
) -> None:
    expected_s = catchup.BUSY_WAIT_S_DEFAULT if wait_s is None else wait_s
    assert catchup.busy_wait_s(retry_after) == expected_s


def test_a_busy_deadline_is_one_a_peer_and_forgotten_once_it_passes() -> None:
    clock = FakeClock()
    order = catchup.PeerOrder(clock=clock)
    for wait_s in (1.0, 3.0, 2.0):
        order.hold("a", wait_s)
    assert len(order) == 1 and order.busy_s("a") == 2.0

    clock.now_s += 2
    assert order.busy_s("a") == 0.0 and len(order) == 0
    order.hold("b", 1.0)
    clock.now_s += 1
    order.arrange(["a"])
    assert len(order) == 0


@contextlib.asynccontextmanager
async def silent_peer(after_bytes: int) -> AsyncIterator[str]:
    """A peer that accepts /peer/history and sends `after_bytes` of a body (0: not even its
    headers), then nothing; yields its base URL."""
    release = asyncio.Event()

    async def go_silent(request: web.Request) -> web.StreamResponse:
        if after_bytes:
            response = web.StreamResponse()
            response.content_length = 10 * after_bytes
            await response.prepare(request)
            await response.write(b"\x00" * after_bytes)
        await release.wait()
        return web.Response(status=500)

    app = web.Application()
    app.router.add_get("/peer/history", go_silent)
    async with served(app) as (url,):
        try:
            yield url
        finally:
            release.set()  # lets its handler end, so the server closes at once


def paced_app(source: Storage, *, chunks: int, gap_s: float) -> web.Application:
    """Serves /peer/history from `source` in `chunks` pieces `gap_s` apart."""

    async def history(request: web.Request) -> web.StreamResponse:
        start, end = blocks_query(request.query, source.head().height)
        raw = encode_history(source.history_range(start, end), source.checkpoint_proofs(start, end))
        response = web.StreamResponse()
        response.content_length = len(raw)
        await response.prepare(request)
        step = -(-len(raw) // chunks)
        for offset in range(0, len(raw), step):
            await asyncio.sleep(gap_s)  # the pace of a slow link, not a wait for readiness
            await response.write(raw[offset : offset + step])
        return response

    app = web.Application()
    app.router.add_get("/peer/history", history)
    return app


@pytest.fixture
async def patient_session(asked: Asked) -> AsyncIterator[aiohttp.ClientSession]:
    """A session with the node's total timeout, far above any wait these tests allow."""
    timeout = aiohttp.ClientTimeout(total=WAIT_S)
    async with aiohttp.ClientSession(timeout=timeout, trace_configs=[asked.trace()]) as session:
        yield session


@pytest.mark.parametrize("after_bytes", [0, 1000], ids=["sends-nothing", "stops-mid-answer"])
async def test_a_silent_peer_is_given_up_on_after_the_silence_limit(
    patient_session: aiohttp.ClientSession,
    asked: Asked,
    source: Storage,
    target: Target,
    after_bytes: int,
) -> None:
    order = catchup.PeerOrder(clock=FakeClock())
    loop = asyncio.get_running_loop()
    async with silent_peer(after_bytes) as silent, served(peer_app(source)) as (good,):
        started_s = loop.time()
        async with asyncio.timeout(10 * SILENCE_S):  # the session's total is WAIT_S
            applied = await catchup.catch_up(
                patient_session,
                SETUP.genesis,
                target.storage,
                [silent, good],
                to_height=BLOCKS,
                apply=target.apply,
                stats=target.stats,
                order=order,
                silence_s_max=SILENCE_S,
            )
        elapsed_s = loop.time() - started_s

    assert applied == BLOCKS and target.storage.head() == source.head()
    assert SILENCE_S <= elapsed_s < 5 * SILENCE_S
    assert (asked.counts[silent], asked.counts[good]) == (1, 1)
    assert order.arrange([silent, good]) == ([good], [silent])  # demoted, as a timeout is


async def test_a_slow_answer_that_keeps_sending_is_not_given_up_on(
    patient_session: aiohttp.ClientSession, asked: Asked, source: Storage, target: Target
) -> None:
    # Longer in all than the silence limit, but never silent that long.
    slow_app = paced_app(source, chunks=6, gap_s=SILENCE_S / 3)
    order = catchup.PeerOrder(clock=FakeClock())
    async with served(slow_app) as (slow,):
        applied = await catchup.catch_up(
            patient_session,
            SETUP.genesis,
            target.storage,
            [slow],
            to_height=BLOCKS,
            apply=target.apply,
            stats=target.stats,
            order=order,
            silence_s_max=SILENCE_S,
        )

    assert applied == BLOCKS and asked.counts[slow] == 1
    assert order.arrange([slow]) == ([slow], [])


@pytest.mark.parametrize("silence_s_max", [0.0, -1.0])
async def test_a_silence_limit_that_is_not_positive_is_refused(
    session: aiohttp.ClientSession, target: Target, silence_s_max: float
) -> None:
    with pytest.raises(ValueError, match="silence_s_max must be a positive number"):
        await catchup.catch_up(
            session,
            SETUP.genesis,
            target.storage,
            ["http://127.0.0.1:9"],
            to_height=1,
            apply=target.apply,
            stats=target.stats,
            order=catchup.PeerOrder(),
            silence_s_max=silence_s_max,
        )
    assert target.stats.blocks_fetched == 0
