"""An in-process node (validator 0 of a 4-validator genesis) behind aiohttp's test server."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from ledger.block import Block
from ledger.certificate import CommitCertificate, commit_payload
from ledger.crypto import Domain, KeyPair
from ledger.genesis import Genesis, Identity, Params, Role, Validator
from ledger.tx import Transaction
from node.api import create_app
from node.explorer import setup_explorer
from node.protocol import PROTOCOL_HEADER, PROTOCOL_VERSION
from node.service import Node
from node.storage import Storage

CHAIN_ID = "test-chain"
# The tests' frame: small, yet enough for a 4-validator chain's NEW-VIEW with the whole
# watermark window in flight (see ledger.genesis.block_bytes_limit).
BODY_BYTES_MAX = 2 * 1024 * 1024
# What the client fixtures yield: aiohttp's test client of a node's app.
Client = TestClient[web.Request, web.Application]
# What a node of this version sends with every peer request (node/protocol.py): the client
# fixtures send it with every request, so tests of the peer routes speak to them as a peer does.
PEER_PROTOCOL = {PROTOCOL_HEADER: str(PROTOCOL_VERSION)}


@dataclass
class Setup:
    genesis: Genesis
    validator_keys: list[KeyPair]
    identities: dict[str, KeyPair]


def make_setup(params: Params | None = None) -> Setup:
    validator_keys = [KeyPair.from_seed(bytes([i + 1]) * 32) for i in range(4)]
    identities = {
        name: KeyPair.from_seed(bytes([100 + i]) * 32)
        for i, name in enumerate(["admin", "supplier", "customer", "planner"])
    }
    roles = {
        "admin": Role.ADMIN,
        "supplier": Role.SUPPLIER,
        "customer": Role.CUSTOMER,
        "planner": Role.PLANNER,
    }
    genesis = Genesis(
        chain_id=CHAIN_ID,
        genesis_time_ms=1_700_000_000_000,
        validators=tuple(
            # Port 9 (discard) on loopback: peers are unreachable, which these tests want.
            Validator(name=f"node{i}", public_key=k.public_key, host="127.0.0.1", port=9)
            for i, k in enumerate(validator_keys)
        ),
        identities=tuple(
            Identity(name=name, public_key=k.public_key, roles=(roles[name],))
            for name, k in identities.items()
        ),
        params=params or Params(body_bytes_max=BODY_BYTES_MAX),
    )
    return Setup(genesis=genesis, validator_keys=validator_keys, identities=identities)


@pytest.fixture
def setup() -> Setup:
    return make_setup()


def next_block(setup: Setup, storage: Storage, txs: Sequence[Transaction]) -> Block:
    """A block of `txs` on top of `storage`'s head: proposed by validator 0 in view 0, stamped a
    millisecond after the head."""
    head = storage.head()
    return Block.build(
        chain_id=setup.genesis.chain_id,
        height=head.height + 1,
        prev_hash=head.hash,
        state_height=head.height,
        state_digest=head.state_digest,
        proposer=0,
        view=0,
        timestamp_ms=head.timestamp_ms + 1,
        txs=txs,
    )


def steel_received(setup: Setup, nonce: int = 0) -> Transaction:
    """The supplier's receipt of one unit of steel at main: a transaction any test can admit."""
    return Transaction.create(
        setup.identities["supplier"],
        chain_id=setup.genesis.chain_id,
        nonce=nonce,
        contract="inventory",
        method="receive",
        args={"item": "steel", "location": "main", "qty": 1},
    )


def certify(setup: Setup, block: Block) -> CommitCertificate:
    """`block`'s commit certificate in view 0, signed by validators 0 to 2 (a quorum of 4)."""
    payload = commit_payload(view=0, seq=block.height, block_hash=block.hash)
    chain_id = setup.genesis.chain_id
    commits = tuple(
        (i, setup.validator_keys[i].sign(Domain.COMMIT, chain_id, payload)) for i in range(3)
    )
    return CommitCertificate(height=block.height, view=0, block_hash=block.hash, commits=commits)


def backup_node(setup: Setup, path: Path, **options: Any) -> Node:
    """Validator 1 of `setup` (a backup: it never proposes, so nothing moves) on the database at
    `path`, not started; `options` go to Node (oracle keys, say)."""
    return Node(
        name="node1",
        genesis=setup.genesis,
        keys=setup.validator_keys[1],
        storage=Storage(path),
        **options,
    )


@pytest.fixture
async def node(setup: Setup, tmp_path: Path) -> AsyncIterator[Node]:
    node = backup_node(setup, tmp_path / "chain.sqlite")
    await node.start()
    try:
        yield node
    finally:
        await node.stop()


@pytest.fixture
async def client(node: Node) -> AsyncIterator[Client]:
    async with TestClient(TestServer(create_app(node)), headers=PEER_PROTOCOL) as test_client:
        yield test_client


@pytest.fixture
async def explorer_client(node: Node) -> AsyncIterator[Client]:
    """The node's app with the explorer's routes (node/explorer.py)."""
    app = create_app(node)
    setup_explorer(app)
    async with TestClient(TestServer(app), headers=PEER_PROTOCOL) as test_client:
        yield test_client


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print how many inputs the fuzz tests sent to each endpoint (tests/node/test_fuzz_api.py)."""
    fuzz = sys.modules.get("tests.node.test_fuzz_api")
    tried = getattr(fuzz, "TRIED", None)
    if not tried:
        return
    terminalreporter.section("fuzz inputs tried per endpoint")
    for endpoint, count in sorted(tried.items()):
        terminalreporter.write_line(f"{count:6d}  {endpoint}")
    terminalreporter.write_line(f"{sum(tried.values()):6d}  in all")
