"""Outbound links to the other validators.

Each peer has one queue and one sender task, so messages to a peer leave in the order they were
queued, and everything queued while a request is in flight leaves together in the next request:
batching falls out of back-pressure instead of a timer. Links keep their HTTP connection alive.
A peer that does not answer is marked down and retried with back-off; consensus messages queued
for a down peer are dropped (the protocol recovers them by retransmission and state transfer),
bounded so a dead peer cannot grow memory.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from ledger.encoding import encode

log = logging.getLogger(__name__)

QUEUE_ITEMS_MAX = 100_000
BATCH_BYTES_MAX = 4 * 1024 * 1024
BACKOFF_MS_MAX = 2000


@dataclass(slots=True)
class PeerLink:
    index: int
    name: str
    url: str
    messages: list[bytes] = field(default_factory=list)
    txs: list[bytes] = field(default_factory=list)
    up: bool = False
    last_ok_ms: int | None = None
    sent_batches: int = 0
    dropped_items: int = 0
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    def status(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "name": self.name,
            "url": self.url,
            "up": self.up,
            "last_ok_ms": self.last_ok_ms,
            "queued": len(self.messages) + len(self.txs),
        }


class Peers:
    def __init__(self, *, self_index: int, links: list[PeerLink]) -> None:
        self.self_index = self_index
        self.links = {link.index: link for link in links}
        self._session: aiohttp.ClientSession | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit_per_host=2, keepalive_timeout=60)
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=10, connect=2)
        )
        self._tasks = [
            asyncio.create_task(self._run(link), name=f"peer-{link.name}")
            for link in self.links.values()
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    def send(self, index: int, message: bytes) -> None:
        link = self.links[index]
        if len(link.messages) >= QUEUE_ITEMS_MAX:
            link.dropped_items += 1
            return
        link.messages.append(message)
        link.wake.set()

    def broadcast(self, message: bytes) -> None:
        for index in self.links:
            self.send(index, message)

    def forward_txs(self, txs: list[bytes]) -> None:
        for link in self.links.values():
            room = QUEUE_ITEMS_MAX - len(link.txs)
            if room < len(txs):
                link.dropped_items += len(txs) - max(room, 0)
            link.txs.extend(txs[: max(room, 0)])
            link.wake.set()

    def status(self) -> list[dict[str, Any]]:
        return [link.status() for link in self.links.values()]

    async def _run(self, link: PeerLink) -> None:
        backoff_ms = 50
        while True:
            await link.wake.wait()
            link.wake.clear()
            while link.messages or link.txs:
                messages, txs = _take_batch(link)
                body = encode({"sender": self.self_index, "messages": messages, "txs": txs})
                if await self._post(link, body):
                    backoff_ms = 50
                    continue
                # Down: drop what we could not deliver and wait before trying again.
                link.dropped_items += len(messages) + len(txs)
                await asyncio.sleep(backoff_ms / 1000)
                backoff_ms = min(backoff_ms * 2, BACKOFF_MS_MAX)

    async def _post(self, link: PeerLink, body: bytes) -> bool:
        assert self._session is not None
        try:
            async with self._session.post(
                f"{link.url}/peer/batch",
                data=body,
                headers={"Content-Type": "application/msgpack"},
            ) as response:
                await response.read()
                ok = response.status == 200
                if not ok:
                    log.warning("peer %s answered %s", link.name, response.status)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            if link.up:
                log.warning("peer %s is down: %s", link.name, exc)
            link.up = False
            return False
        if not link.up:
            log.info("peer %s is up", link.name)
        link.up = True
        link.last_ok_ms = int(time.time() * 1000)
        link.sent_batches += 1
        return ok


def _take_batch(link: PeerLink) -> tuple[list[bytes], list[bytes]]:
    """Take queued items up to BATCH_BYTES_MAX, consensus messages first."""
    messages, link.messages = _split(link.messages, BATCH_BYTES_MAX)
    room = BATCH_BYTES_MAX - sum(len(m) for m in messages)
    txs: list[bytes] = []
    if link.txs and room > 0:
        txs, link.txs = _split(link.txs, room)
    return messages, txs


def _split(items: list[bytes], bytes_max: int) -> tuple[list[bytes], list[bytes]]:
    size = 0
    for count, item in enumerate(items):
        size += len(item)
        if size > bytes_max and count > 0:
            return items[:count], items[count:]
    return items, []
