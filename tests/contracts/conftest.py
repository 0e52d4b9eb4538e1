"""Shared fixtures for the contracts tests: a genesis with one member per role, and `Chain`.

`Chain` drives a Runtime the way a node would (execute a block, apply its writes, chain the
digest), without a node: tests build signed transactions and read receipts and state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from contracts.receipt import Receipt
from contracts.runtime import BlockContext, BlockResult, Runtime
from contracts.state import MemoryState
from ledger.crypto import KeyPair
from ledger.genesis import Genesis, Identity, Role, Validator
from ledger.hashing import sha256
from ledger.tx import Transaction

CHAIN_ID = "mill-test"

# One member per role that matters to the built-in contracts; "root" is the only admin.
MEMBER_ROLES: dict[str, tuple[Role, ...]] = {
    "root": (Role.ADMIN,),
    "sam": (Role.SUPPLIER,),
    "pat": (Role.PLANNER,),
    "mia": (Role.MACHINE,),
    "alice": (Role.CUSTOMER,),
}


def keys_for(name: str) -> KeyPair:
    """Deterministic keys per name, so failures reproduce byte for byte."""
    return KeyPair.from_seed(sha256(b"millchain-test/" + name.encode()))


def make_genesis(members: dict[str, tuple[Role, ...]] | None = None) -> Genesis:
    members = MEMBER_ROLES if members is None else members
    return Genesis(
        chain_id=CHAIN_ID,
        genesis_time_ms=0,
        validators=tuple(
            Validator(
                name=f"v{index}",
                public_key=keys_for(f"validator-{index}").public_key,
                host="127.0.0.1",
                port=7000 + index,
            )
            for index in range(4)
        ),
        identities=tuple(
            Identity(name=name, public_key=keys_for(name).public_key, roles=roles)
            for name, roles in members.items()
        ),
    )


class Chain:
    """A runtime plus committed state, advanced one block per `run`."""

    def __init__(self, genesis: Genesis, runtime: Runtime | None = None) -> None:
        self.genesis = genesis
        self.runtime = runtime or Runtime.default()
        self.state = MemoryState()
        self.state.apply(self.runtime.genesis_writes(genesis))
        self.height = 0
        self.digest = self.runtime.genesis_digest(genesis)
        self._pending: dict[str, int] = {}

    def keys(self, who: str) -> KeyPair:
        return keys_for(who)

    def nonce(self, who: str) -> int:
        return self.runtime.account_nonce(self.state, keys_for(who).public_key)

    def tx(
        self,
        who: str,
        contract: str,
        method: str,
        *,
        nonce: int | None = None,
        chain_id: str = CHAIN_ID,
        **args: Any,
    ) -> Transaction:
        """A signed transaction; without `nonce`, the next one after those built since `run`."""
        if nonce is None:
            nonce = self.nonce(who) + self._pending.get(who, 0)
            self._pending[who] = self._pending.get(who, 0) + 1
        return Transaction.create(
            keys_for(who),
            chain_id=chain_id,
            nonce=nonce,
            contract=contract,
            method=method,
            args=args,
        )

    def context(self) -> BlockContext:
        height = self.height + 1
        return BlockContext(
            chain_id=CHAIN_ID, height=height, timestamp_ms=1_000 * height, proposer=height % 4
        )

    def execute(self, *txs: Transaction) -> BlockResult:
        """Execute the next block without committing it."""
        return self.runtime.execute_block(self.state, self.context(), txs, self.digest)

    def run(self, *txs: Transaction) -> BlockResult:
        """Execute and commit the next block."""
        result = self.execute(*txs)
        self.state.apply(result.writes)
        self.height += 1
        self.digest = result.state_digest
        self._pending.clear()
        return result

    def call(self, who: str, contract: str, method: str, **args: Any) -> Receipt:
        """Run one transaction in its own block and return its receipt."""
        return self.run(self.tx(who, contract, method, **args)).receipts[0]

    def query(self, contract: str, *path: str) -> Any:
        return self.runtime.query(self.state, contract, list(path))


@pytest.fixture
def genesis() -> Genesis:
    return make_genesis()


@pytest.fixture
def make_chain(genesis: Genesis) -> Callable[..., Chain]:
    def make(runtime: Runtime | None = None) -> Chain:
        return Chain(genesis, runtime)

    return make


@pytest.fixture
def chain(make_chain: Callable[..., Chain]) -> Chain:
    return make_chain()


@pytest.fixture
def stocked(chain: Chain) -> Chain:
    """A chain with 100 steel at main, 30 of them reserved."""
    assert chain.call("sam", "inventory", "receive", item="steel", location="main", qty=100).ok
    assert chain.call("pat", "inventory", "reserve", item="steel", location="main", qty=30).ok
    return chain
