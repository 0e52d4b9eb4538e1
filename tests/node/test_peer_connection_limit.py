"""A validator's links reach every peer, however many validators the genesis names.

Each link holds two WebSockets open for good (its consensus messages' and its transactions'
channels: node/peers.py), and a WebSocket keeps its connection from the session's pool for as
long as it is open. The pool was aiohttp's TCPConnector with limit_per_host set and the total
left at aiohttp's default of 100 connections: from 51 peers on (n = 52, f = 17; the codec takes
up to VALIDATORS_MAX = 1024 validators) the streams of the first links held every connection,
and the links to the rest waited for one until the connect timeout, were counted down, had
their backlog dropped after STALE_AFTER_MS, and never carried a message while the others' streams
stayed open.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from node.peers import PeerLink, Peers
from tests.node.fake_peer import FakePeer, serving

PEERS = 60  # n = 61 validators, f = 20: 120 streams, past aiohttp's default pool of 100
DELIVERED_WITHIN_S = 20.0


async def test_every_link_of_a_large_validator_set_carries_its_messages() -> None:
    fakes = [FakePeer() for _ in range(PEERS)]
    async with contextlib.AsyncExitStack() as stack:
        urls = [await stack.enter_async_context(serving(fake)) for fake in fakes]
        peers = Peers(
            self_index=0,
            links=[
                PeerLink(index=index + 1, name=f"node{index + 1}", url=url)
                for index, url in enumerate(urls)
            ],
        )
        await peers.start()
        try:
            peers.broadcast(b"a consensus message")
            peers.forward_txs([b"a transaction"])

            def reached() -> int:
                """Peers that got a batch on each channel, and whose acks came back."""
                links = peers.links.values()
                acked = sum(1 for link in links if link.up and link.sent_batches == 2)
                return min(acked, sum(1 for fake in fakes if len(fake.batches) == 2))

            deadline = time.monotonic() + DELIVERED_WITHIN_S
            while reached() < PEERS:
                assert time.monotonic() < deadline, (
                    f"{PEERS - reached()} of {PEERS} peers got nothing on one channel or both "
                    f"within {DELIVERED_WITHIN_S:g} s"
                )
                await asyncio.sleep(0.05)
        finally:
            await peers.stop()
