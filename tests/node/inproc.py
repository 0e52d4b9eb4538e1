"""Four validators in one process and one event loop, each behind its own aiohttp server on a
127.0.0.1 socket the OS picked, so they reach consensus over real HTTP. For tests that drive
the nodes synchronously (hypothesis) through `Cluster.run`."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
from aiohttp import web

from ledger.crypto import KeyPair
from ledger.genesis import Genesis, Identity, Params, Role, Validator
from ledger.tx import Transaction
from node.api import create_app
from node.limits import ApiLimits
from node.protocol import PROTOCOL_HEADER, PROTOCOL_VERSION
from node.service import Node
from node.storage import Storage

T = TypeVar("T")
CHAIN_ID = "fuzz-chain"


def steel_receipt(identities: dict[str, KeyPair], nonce: int) -> Transaction:
    """The supplier's transaction with `nonce`: one steel received at the main location."""
    return Transaction.create(
        identities["supplier"],
        chain_id=CHAIN_ID,
        nonce=nonce,
        contract="inventory",
        method="receive",
        args={"item": "steel", "location": "main", "qty": 1},
    )


@dataclass
class Cluster:
    loop: asyncio.AbstractEventLoop
    genesis: Genesis
    validator_keys: list[KeyPair]
    identities: dict[str, KeyPair]
    nodes: list[Node] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)
    runners: list[web.AppRunner] = field(default_factory=list)
    session: aiohttp.ClientSession | None = None
    notes: dict[str, Any] = field(default_factory=dict)

    def run(self, work: Coroutine[Any, Any, T], timeout_s: float = 30.0) -> T:
        return self.loop.run_until_complete(asyncio.wait_for(work, timeout_s))

    async def request(
        self, node: int, method: str, path: str, *, body: bytes | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        assert self.session is not None
        async with self.session.request(
            method, self.urls[node] + path, data=body, allow_redirects=False
        ) as response:
            return response.status, dict(response.headers), await response.read()

    def fingerprint(self, node: int) -> tuple[int, bytes, bytes, int]:
        """What invalid input must not change: height, head, state digest, mempool size."""
        head = self.nodes[node].storage.head()
        return head.height, head.hash, head.state_digest, len(self.nodes[node].mempool)

    async def wait_height(self, height: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while min(n.storage.head().height for n in self.nodes) < height:
            assert time.monotonic() < deadline, (
                f"nodes at heights {[n.storage.head().height for n in self.nodes]}, "
                f"wanted {height} within {timeout_s} s"
            )
            await asyncio.sleep(0.02)


def _listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextlib.contextmanager
def in_process_cluster(
    root: Path, *, params: Params, limits: ApiLimits | None = None
) -> Iterator[Cluster]:
    sockets = [_listening_socket() for _ in range(4)]
    validator_keys = [KeyPair.from_seed(bytes([i + 1]) * 32) for i in range(4)]
    roles = {"admin": Role.ADMIN, "supplier": Role.SUPPLIER, "customer": Role.CUSTOMER}
    identities = {name: KeyPair.from_seed(bytes([100 + i]) * 32) for i, name in enumerate(roles)}
    genesis = Genesis(
        chain_id=CHAIN_ID,
        genesis_time_ms=1_700_000_000_000,
        validators=tuple(
            Validator(
                name=f"node{i}",
                public_key=k.public_key,
                host="127.0.0.1",
                port=sockets[i].getsockname()[1],
            )
            for i, k in enumerate(validator_keys)
        ),
        identities=tuple(
            Identity(name=name, public_key=k.public_key, roles=(roles[name],))
            for name, k in identities.items()
        ),
        params=params,
    )
    loop = asyncio.new_event_loop()
    cluster = Cluster(
        loop=loop, genesis=genesis, validator_keys=validator_keys, identities=identities
    )

    async def start() -> None:
        for i, keys in enumerate(validator_keys):
            node = Node(
                name=f"node{i}",
                genesis=genesis,
                keys=keys,
                storage=Storage(root / f"node{i}.sqlite"),
            )
            runner = web.AppRunner(create_app(node, limits), access_log=None)
            await runner.setup()
            await web.SockSite(runner, sockets[i]).start()
            cluster.runners.append(runner)
            await node.start()
            cluster.nodes.append(node)
            cluster.urls.append(genesis.validators[i].url)
        cluster.session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=30),
            headers={PROTOCOL_HEADER: str(PROTOCOL_VERSION)},  # as a peer of this version
        )

    async def stop() -> None:
        if cluster.session is not None:
            await cluster.session.close()
        for runner in cluster.runners:
            await runner.cleanup()
        for node in cluster.nodes:
            await node.stop()

    try:
        loop.run_until_complete(start())
        yield cluster
    finally:
        loop.run_until_complete(stop())
        for sock in sockets:
            sock.close()
        loop.close()
