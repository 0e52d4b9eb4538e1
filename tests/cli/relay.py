"""An HTTP relay in front of a node, for CLI tests of a node that misbehaves at its address:
the node itself is the real process, the relay changes what reaches the CLI."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Awaitable, Callable

import aiohttp
from aiohttp import web

# How the relay answers a request: with `session` to reach the node, and `stop`, set when the
# relay closes (for an answer held until then).
Answer = Callable[[web.Request, aiohttp.ClientSession, asyncio.Event], Awaitable[web.Response]]


async def passed_on(
    target: str, request: web.Request, session: aiohttp.ClientSession
) -> tuple[int, bytes, str]:
    """The status, body and content type `target` answers to the request's GET."""
    async with session.get(target + request.path_qs) as answer:
        return answer.status, await answer.read(), answer.content_type


class Relay:
    """An HTTP server on an OS-assigned port of 127.0.0.1, run in a thread of its own, that
    answers every request with `answer`."""

    def __init__(self, answer: Answer) -> None:
        self.port = 0
        self._answer = answer
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._stop: asyncio.Event | None = None

    def __enter__(self) -> Relay:
        self._thread.start()
        assert self._ready.wait(10), "relay did not start"
        return self

    def __exit__(self, *_: object) -> None:
        stop = self._stop
        if stop is not None:
            self._loop.call_soon_threadsafe(stop.set)
        self._thread.join(10)

    def _serve(self) -> None:
        self._loop.run_until_complete(self._main())

    async def _main(self) -> None:
        stop = self._stop = asyncio.Event()
        async with aiohttp.ClientSession() as session:

            async def relay(request: web.Request) -> web.Response:
                return await self._answer(request, session, stop)

            app = web.Application()
            app.router.add_route("*", "/{path:.*}", relay)
            runner = web.AppRunner(app, shutdown_timeout=0.1)
            await runner.setup()
            listener = socket.create_server(("127.0.0.1", 0))  # the OS picks the port
            self.port = listener.getsockname()[1]
            await web.SockSite(runner, listener).start()
            self._ready.set()
            await stop.wait()
            await runner.cleanup()
