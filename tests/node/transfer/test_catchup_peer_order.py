"""Which peer a catch-up asks first (node/catchup.py, PeerOrder): a peer that failed a catch-up
(timed out, refused the connection, served a run a checkpoint proof contradicts, or fell short
of what a later peer served) is asked after the others in the catch-ups that follow, and not at
all by one with no target, until its demotion ends or it serves a catch-up to its end.

The fake peers serve the history of chain.py (beside this file); requests are counted at the
client, so a refused connection counts too.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from types import SimpleNamespace

import aiohttp
import pytest
from aiohttp import web

from node import catchup
from node.storage import Storage
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

    def __call__(self) -> float:
        return self.now_s


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
