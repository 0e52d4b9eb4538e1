"""A fake cluster for the bench's measuring code (cli/bench.py): no processes. It admits every
transaction at once and commits each `commit_delay_s` later, in blocks that may also carry
other clients' transactions; used by the tests of what the bench counts and reports."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from cli import bench
from ledger.crypto import KeyPair
from ledger.genesis import Params
from ledger.tx import Transaction
from node.client import ClientError

SENDERS = [f"bench{i}" for i in range(4)]
BLOCK_INTERVAL_S = 0.02


@dataclass(slots=True)
class _Config:
    url: str


@dataclass(slots=True)
class _Genesis:
    chain_id: str
    params: Params = field(default_factory=Params)


class FakeLayout:
    """What the bench reads of a cluster directory."""

    def __init__(self, nodes: int = 4) -> None:
        self._names = [f"node{i}" for i in range(nodes)]
        self._keys: dict[str, KeyPair] = {}

    def node_names(self) -> list[str]:
        return list(self._names)

    def config(self, name: str) -> _Config:
        return _Config(url=f"http://{name}.invalid")

    def genesis(self) -> _Genesis:
        return _Genesis(chain_id="fake")

    def identity_keys(self, name: str) -> KeyPair:
        return self._keys.setdefault(name, KeyPair.generate())


@dataclass(slots=True)
class FakeCluster:
    """Admits what it is sent and commits it `commit_delay_s` later, with `foreign_per_block`
    transactions of other clients in every block; `submit_delay_s` is how long a request takes,
    and `refuse` decides, per request number, whether the node answers 503."""

    commit_delay_s: float = 0.0
    foreign_per_block: int = 0
    submit_delay_s: float = 0.0
    refuse: Callable[[int], bool] = lambda _: False
    admitted: list[tuple[float, bytes]] = field(default_factory=list)
    first_sent: dict[bytes, float] = field(default_factory=dict)
    requests: int = 0
    height: int = 0
    txs_committed: int = 0
    _committed_upto: int = 0

    def client(self, url: str, timeout_s: float = 30.0) -> FakeClient:
        return FakeClient(self)

    def _cut(self) -> list[Any] | None:
        now = time.monotonic()
        ready = self._committed_upto
        while ready < len(self.admitted) and self.admitted[ready][0] + self.commit_delay_s <= now:
            ready += 1
        if ready == self._committed_upto and not self.foreign_per_block:
            return None
        hashes = [h for _, h in self.admitted[self._committed_upto : ready]]
        hashes += [os.urandom(32) for _ in range(self.foreign_per_block)]
        self._committed_upto = ready
        self.height += 1
        self.txs_committed += len(hashes)
        return [self.height, int(time.time() * 1000), b"".join(hashes)]


class FakeClient:
    def __init__(self, cluster: FakeCluster) -> None:
        self.cluster = cluster

    async def __aenter__(self) -> FakeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def next_nonce(self, public_key: bytes) -> int:
        return 0

    async def status(self) -> dict[str, Any]:
        return {
            "height": self.cluster.height,
            "counters": {"blocks_committed": self.cluster.height, "txs_committed": 0},
            "stages": {},
        }

    async def commits(self, from_height: int, *, wait_ms: int = 0) -> dict[str, Any]:
        deadline = time.monotonic() + wait_ms / 1000
        while True:
            await asyncio.sleep(BLOCK_INTERVAL_S)  # the fake's block interval and long poll
            block = self.cluster._cut()
            if block is not None or time.monotonic() >= deadline:
                return {"head": self.cluster.height, "blocks": [] if block is None else [block]}

    async def submit_many(self, raws: list[bytes]) -> list[dict[str, Any]]:
        self.cluster.requests += 1
        number = self.cluster.requests
        now = time.monotonic()
        for raw in raws:
            self.cluster.first_sent.setdefault(Transaction.from_wire(raw).hash, now)
        if self.cluster.submit_delay_s:
            await asyncio.sleep(self.cluster.submit_delay_s)
        if self.cluster.refuse(number):
            raise ClientError("503: busy", status=503)
        now = time.monotonic()
        outcomes = []
        for raw in raws:
            tx_hash = Transaction.from_wire(raw).hash
            self.cluster.admitted.append((now, tx_hash))
            outcomes.append({"hash": tx_hash.hex()})
        return outcomes


def use_fake_cluster(monkeypatch: pytest.MonkeyPatch, cluster: FakeCluster) -> None:
    monkeypatch.setattr(bench, "NodeClient", cluster.client)
    monkeypatch.setattr(bench, "node_cpu_seconds", lambda layout: "not measured in a fake")
