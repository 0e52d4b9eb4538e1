"""Catching up from peers: fetch certified blocks, check them offline, hand them on in order.

A block fetched from a peer is trusted only through its commit certificate: 2f+1 validators'
commit signatures over its hash, checked against the genesis validator set, plus the hash chain
to the block before it. The certificate vouches for the whole block, so its transactions'
signatures are not checked one by one again.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import aiohttp

from ledger.block import Block
from ledger.certificate import CommitCertificate
from ledger.encoding import decode, encode
from ledger.errors import LedgerError
from ledger.genesis import Genesis

log = logging.getLogger(__name__)

FETCH_BLOCKS_MAX = 200
FETCH_BYTES_MAX = 8 * 1024 * 1024


class SyncError(Exception):
    """A peer served blocks that do not check out."""


def encode_blocks(rows: Sequence[tuple[int, bytes, bytes]]) -> bytes:
    """The /peer/blocks answer: [[block wire, certificate wire], ...] up to FETCH_BYTES_MAX."""
    out: list[list[bytes]] = []
    size = 0
    for _, block, certificate in rows:
        size += len(block) + len(certificate)
        if out and size > FETCH_BYTES_MAX:
            break
        out.append([block, certificate])
    return encode(out)


def verify_blocks(
    genesis: Genesis, raw: bytes, *, expect_height: int, prev_hash: bytes
) -> list[tuple[Block, CommitCertificate]]:
    """Decode and check a peer's answer: consecutive heights from `expect_height`, each block
    certified by a quorum and chained to the previous one."""
    try:
        items = decode(raw)
    except LedgerError as exc:
        raise SyncError(f"blocks answer is not canonical msgpack: {exc}") from exc
    if not isinstance(items, list):
        raise SyncError("blocks answer must be a list")
    verified: list[tuple[Block, CommitCertificate]] = []
    for item in items:
        if not (isinstance(item, list) and len(item) == 2):
            raise SyncError("each block entry must be [block, certificate]")
        try:
            block = Block.from_wire(item[0], tx_bytes_max=genesis.params.tx_bytes_max)
            certificate = CommitCertificate.from_wire(item[1])
            certificate.verify(chain_id=genesis.chain_id, validators=genesis.validator_keys)
        except (LedgerError, TypeError) as exc:
            raise SyncError(f"block entry does not check out: {exc}") from exc
        if block.height != expect_height or certificate.height != expect_height:
            raise SyncError(f"expected height {expect_height}, got {block.height}")
        if certificate.block_hash != block.hash:
            raise SyncError(f"certificate at height {block.height} is for another block")
        if block.header.prev_hash != prev_hash:
            raise SyncError(f"block {block.height} does not chain to the block before it")
        if block.header.chain_id != genesis.chain_id:
            raise SyncError(f"block {block.height} is for chain {block.header.chain_id!r}")
        verified.append((block, certificate))
        expect_height += 1
        prev_hash = block.hash
    return verified


async def fetch_blocks(
    session: aiohttp.ClientSession,
    genesis: Genesis,
    urls: Sequence[str],
    *,
    from_height: int,
    to_height: int,
    prev_hash: bytes,
) -> list[tuple[Block, CommitCertificate]]:
    """Ask peers in turn for certified blocks from `from_height` (up to `to_height`); return
    the first answer that checks out (possibly fewer blocks than asked), or [] if none do."""
    for url in urls:
        try:
            async with session.get(
                f"{url}/peer/blocks", params={"from": from_height, "to": to_height}
            ) as response:
                if response.status != 200:
                    continue
                raw = await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.debug("fetching blocks from %s failed: %s", url, exc)
            continue
        try:
            blocks = verify_blocks(genesis, raw, expect_height=from_height, prev_hash=prev_hash)
        except SyncError as exc:
            log.warning("peer %s served bad blocks: %s", url, exc)
            continue
        if blocks:
            return blocks
    return []


def blocks_query(query: Any, head_height: int) -> tuple[int, int]:
    """Parse and bound ?from=&to= of a /peer/blocks request."""
    try:
        start = int(query.get("from", "1"))
        end = int(query.get("to", str(start + FETCH_BLOCKS_MAX - 1)))
    except ValueError as exc:
        raise ValueError("from and to must be integers") from exc
    if start < 1 or end < start:
        raise ValueError("need 1 <= from <= to")
    return start, min(end, start + FETCH_BLOCKS_MAX - 1, head_height)
