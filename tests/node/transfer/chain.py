"""A certified history to catch up from, shared by the state-transfer tests (node/catchup.py).

The history is built in-process: blocks executed on a source node's storage, certified and
checkpointed by signing with the validators' keys, served by a small aiohttp app that can lie
(`peer_app` with a `Tamper`). `Target` is the catching-up side. The fixtures that use these are in
this package's conftest.py.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from consensus.messages import sign_checkpoint
from contracts.runtime import Runtime
from ledger.block import Block
from ledger.encoding import decode, encode
from ledger.genesis import Params
from ledger.tx import Transaction
from node.catchup import PeerOrder, Transferred, TransferStats, catch_up
from node.executor import execute_and_store, store_record
from node.history import encode_history, encode_proof
from node.service import Node
from node.storage import Storage
from node.sync import blocks_query
from tests.node.conftest import Setup, certify, make_setup

PARAMS = Params(checkpoint_interval=4, watermark_window=8)
BLOCKS = 10  # proofs at 4 and 8; blocks 9 and 10 lie above the last one
TXS_PER_BLOCK = 5
REPEATED_AT = 3  # this block includes a transaction of the block before again (as after a
# view change): its receipt fails on the nonce, and the txs table keeps only the first one


def source_chain(setup: Setup, path: Path) -> Storage:
    """A node's storage holding BLOCKS executed blocks and the checkpoint proofs among them."""
    genesis = setup.genesis
    runtime = Runtime.default()
    storage = Storage(path)
    storage.initialise(
        genesis_hash=genesis.hash,
        writes=runtime.genesis_writes(genesis),
        digest=runtime.genesis_digest(genesis),
        time_ms=genesis.genesis_time_ms,
    )
    supplier = setup.identities["supplier"]
    nonce = 0
    previous: list[Transaction] = []
    for height in range(1, BLOCKS + 1):
        txs = [
            Transaction.create(
                supplier,
                chain_id=genesis.chain_id,
                nonce=nonce + i,
                contract="inventory",
                method="receive",
                args={"item": f"part-{(nonce + i) % 3}", "location": "main", "qty": 1 + i},
            )
            for i in range(TXS_PER_BLOCK)
        ]
        nonce += TXS_PER_BLOCK
        if height == REPEATED_AT:
            txs.append(previous[0])
        head = storage.head()
        block = Block.build(
            chain_id=genesis.chain_id,
            height=height,
            prev_hash=head.hash,
            state_height=head.height,
            state_digest=head.state_digest,
            proposer=0,
            view=0,
            timestamp_ms=genesis.genesis_time_ms + height,
            txs=txs,
        )
        result = execute_and_store(runtime, storage, genesis, block, certify(setup, block))
        if height % PARAMS.checkpoint_interval == 0:
            proof = [
                sign_checkpoint(
                    setup.validator_keys[i],
                    genesis.chain_id,
                    seq=height,
                    block_hash=block.hash,
                    state_digest=result.state_digest,
                    sender=i,
                )
                for i in range(3)
            ]
            storage.put_checkpoint_proof(height, encode_proof(proof))
        previous = txs
    return storage


Tamper = Callable[[list[list[object]]], None]


def peer_app(
    source: Storage, tamper: Tamper | None = None, *, page: int | None = None
) -> web.Application:
    """Serves /peer/history from `source`, `page` blocks an answer at most, passing each
    answer's entries through `tamper`."""

    async def history(request: web.Request) -> web.Response:
        start, end = blocks_query(request.query, source.head().height)
        if page is not None:
            end = min(end, start + page - 1)
        raw = encode_history(source.history_range(start, end), source.checkpoint_proofs(start, end))
        if tamper is not None:
            answer = decode(raw)
            tamper(answer["blocks"])
            raw = encode(answer)
        return web.Response(body=raw, content_type="application/msgpack")

    app = web.Application()
    app.router.add_get("/peer/history", history)
    return app


def drop_write_sets(blocks: list[list[object]]) -> None:
    for entry in blocks:
        entry[3] = None


def tamper_write_at(height: int) -> Tamper:
    """Change the last write of the block at `height`, so its run no longer matches the proof."""

    def tamper(blocks: list[list[object]]) -> None:
        for entry in blocks:
            if Block.from_wire(entry[0]).height == height:  # type: ignore[arg-type]
                changes, extra = decode(entry[3])  # type: ignore[arg-type]
                key, value = changes[-1]
                changes[-1] = [key, (value or b"") + b"\x00"]
                entry[3] = encode([changes, extra])

    return tamper


@dataclass
class Target:
    """The catching-up side: an empty node storage and the apply function a node would use."""

    storage: Storage
    runtime: Runtime
    stats: TransferStats

    def apply(self, items: Sequence[Transferred]) -> int:
        with self.storage.batch():
            for item in items:
                certified = item.certified
                if item.record is None:
                    execute_and_store(
                        self.runtime,
                        self.storage,
                        SETUP.genesis,
                        certified.block(),
                        certified.certificate,
                    )
                else:
                    store_record(self.storage, certified.header, item.record)
        return len(items)


SETUP = make_setup(PARAMS)


def empty_target(path: Path) -> Target:
    """A target whose storage at `path` holds the genesis state alone."""
    runtime = Runtime.default()
    storage = Storage(path)
    storage.initialise(
        genesis_hash=SETUP.genesis.hash,
        writes=runtime.genesis_writes(SETUP.genesis),
        digest=runtime.genesis_digest(SETUP.genesis),
        time_ms=SETUP.genesis.genesis_time_ms,
    )
    return Target(storage=storage, runtime=runtime, stats=TransferStats())


@contextlib.asynccontextmanager
async def served(*apps: web.Application) -> AsyncIterator[list[str]]:
    """Serve each app on a free port of 127.0.0.1; yields their base URLs, in order."""
    servers = [TestServer(app, host="127.0.0.1", port=0) for app in apps]
    try:
        for server in servers:
            await server.start_server()
        yield [str(server.make_url("")).rstrip("/") for server in servers]
    finally:
        for server in servers:
            await server.close()


async def catch_up_from(
    session: aiohttp.ClientSession,
    target: Target,
    *apps: web.Application,
    to_height: int | None = None,
) -> int:
    async with served(*apps) as urls:
        return await catch_up(
            session,
            SETUP.genesis,
            target.storage,
            urls,
            to_height=to_height,
            apply=target.apply,
            stats=target.stats,
            order=PeerOrder(),
        )


async def node_catch_up(
    node: Node, app: web.Application, *, stats: TransferStats | None = None
) -> int:
    """Catches `node` up from one peer serving `app`, applying what arrives as the node does."""
    async with served(app) as urls, aiohttp.ClientSession() as session:
        return await catch_up(
            session,
            SETUP.genesis,
            node.storage,
            urls,
            to_height=None,
            apply=node._apply_transferred,
            stats=TransferStats() if stats is None else stats,
            order=PeerOrder(),
        )


def state_of(storage: Storage) -> dict[bytes, bytes]:
    return dict(storage.scan(b""))
