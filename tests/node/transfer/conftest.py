"""The fixtures of the state-transfer tests: the source history (built once a module), an empty
target storage and a client session; the helpers behind them are in chain.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from node.storage import Storage
from tests.node.transfer.chain import SETUP, Target, empty_target, source_chain


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Storage:
    return source_chain(SETUP, tmp_path_factory.mktemp("source") / "chain.sqlite")


@pytest.fixture
def target(tmp_path: Path) -> Target:
    return empty_target(tmp_path / "target.sqlite")


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session
