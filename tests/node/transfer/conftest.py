"""The fixtures of the state-transfer tests: the source history (built once a module), an empty
target storage and a client session; the helpers behind them are in chain.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from contracts.runtime import Runtime
from node.catchup import TransferStats
from node.storage import Storage
from tests.node.transfer.chain import SETUP, Target, source_chain


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Storage:
    return source_chain(SETUP, tmp_path_factory.mktemp("source") / "chain.sqlite")


@pytest.fixture
def target(tmp_path: Path) -> Target:
    runtime = Runtime.default()
    storage = Storage(tmp_path / "target.sqlite")
    storage.initialise(
        genesis_hash=SETUP.genesis.hash,
        writes=runtime.genesis_writes(SETUP.genesis),
        digest=runtime.genesis_digest(SETUP.genesis),
        time_ms=SETUP.genesis.genesis_time_ms,
    )
    return Target(storage=storage, runtime=runtime, stats=TransferStats())


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session
