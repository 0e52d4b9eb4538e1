"""Catching up: fetch certified blocks from peers, execute them, tell the replica.

Runs as one background task at a time, started by the replica's `FetchBlocks` action (a
validator that fell behind) or kept running forever (an observer following the chain). Each
answer is verified offline (node/sync.py) before anything is executed; execution and the
`BlocksTransferred` input happen without awaiting in between, so the replica's single writer
sees one consistent step.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

import aiohttp

from ledger.block import Block
from ledger.certificate import CommitCertificate
from ledger.genesis import Genesis
from node.storage import Storage
from node.sync import fetch_blocks

log = logging.getLogger(__name__)

Apply = Callable[[list[tuple[Block, CommitCertificate]]], None]


async def catch_up(
    session: aiohttp.ClientSession,
    genesis: Genesis,
    storage: Storage,
    urls: Sequence[str],
    *,
    to_height: int | None,
    apply: Apply,
) -> int:
    """Fetch and apply blocks above the stored head up to `to_height` (None: as far as peers
    have); returns how many blocks were applied. Stops when no peer has more."""
    applied = 0
    while True:
        head = storage.head()
        if to_height is not None and head.height >= to_height:
            return applied
        upper = head.height + 200 if to_height is None else to_height
        blocks = await fetch_blocks(
            session,
            genesis,
            urls,
            from_height=head.height + 1,
            to_height=upper,
            prev_hash=head.hash,
        )
        # The head may have moved while we waited: keep only what still extends it.
        current = storage.head().height
        blocks = [(b, c) for b, c in blocks if b.height > current]
        if not blocks or blocks[0][0].height != current + 1:
            return applied
        apply(blocks)
        applied += len(blocks)


async def follow(
    session: aiohttp.ClientSession,
    genesis: Genesis,
    storage: Storage,
    urls: Sequence[str],
    *,
    apply: Apply,
    interval_s: float = 0.1,
) -> None:
    """Follow the chain forever (an observer): poll peers for blocks above the head."""
    while True:
        applied = await catch_up(session, genesis, storage, urls, to_height=None, apply=apply)
        if not applied:
            await asyncio.sleep(interval_s)
