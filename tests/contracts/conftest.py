"""Shared fixtures for the contracts tests: a genesis with one member per role, and `Chain`.

`Chain` drives a Runtime the way a node would (execute a block, apply its writes, chain the
digest), without a node: tests build signed transactions and read receipts and state.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
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
    "bob": (Role.CUSTOMER,),
    "max": (Role.MAINTAINER,),
    "ora": (Role.ORACLE,),
    "aud": (Role.AUDITOR,),
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


CATALOG_FILE = Path(__file__).resolve().parents[2] / "configs" / "catalog.json"
# Enough of every part in the sample catalog for a few orders, at location "main".
FACTORY_STOCK = {
    "steel-sheet": 20,
    "bolt-m8": 80,
    "powder-black": 10,
    "zinc-bath": 5,
    "housing-g50": 4,
    "housing-g100": 4,
    "shaft": 16,
    "bearing-6204": 16,
    "bearing-6206": 16,
    "gear-set-r5": 4,
    "gear-set-r10": 4,
    "seal-nbr": 8,
    "seal-viton": 8,
}
# id -> capabilities: two bracket lines and one gearbox cell.
FACTORY_MACHINES = {
    "m1": ["laser-cut", "bend", "coat"],
    "m2": ["laser-cut", "bend", "coat", "galvanize"],
    "m3": ["cnc-mill", "assembly"],
}


def sample_products() -> list[dict[str, Any]]:
    products: list[dict[str, Any]] = json.loads(CATALOG_FILE.read_text())["products"]
    return products


def build_factory(chain: Chain) -> Chain:
    """Publish the sample catalog, stock every part and register the machines, in one block."""
    txs = [chain.tx("root", "catalog", "publish", **product) for product in sample_products()]
    txs += [
        chain.tx("sam", "inventory", "receive", item=item, location="main", qty=qty)
        for item, qty in FACTORY_STOCK.items()
    ]
    txs += [
        chain.tx("root", "machines", "register", machine=name, type="cell", capabilities=caps)
        for name, caps in FACTORY_MACHINES.items()
    ]
    result = chain.run(*txs)
    assert all(receipt.ok for receipt in result.receipts), [r.error for r in result.receipts]
    return chain


@pytest.fixture
def factory(chain: Chain) -> Chain:
    """A chain with the sample catalog, stock of every part and machines m1, m2, m3."""
    return build_factory(chain)


def place(chain: Chain, who: str = "alice", **spec: Any) -> Receipt:
    """Place an order; defaults to 2 small raw brackets."""
    args: dict[str, Any] = {"product": "bracket", "variant": "small", "quantity": 2, **spec}
    return chain.call(who, "orders", "place", **args)


class NoWholeScans:
    """The committed state, refusing whole-prefix scans: a newest query must read only its own."""

    def __init__(self, state: MemoryState) -> None:
        self._state = state

    def get(self, key: bytes) -> bytes | None:
        return self._state.get(key)

    def scan(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        raise AssertionError(f"scanned all of {prefix!a}")

    def scan_last(self, prefix: bytes, limit: int) -> list[tuple[bytes, bytes]]:
        return self._state.scan_last(prefix, limit)

    def scan_after(self, prefix: bytes, after: bytes, limit: int) -> list[tuple[bytes, bytes]]:
        return self._state.scan_after(prefix, after, limit)


def state_except_nonces(chain: Chain) -> dict[bytes, bytes]:
    """Committed state without account nonces: what a failing transaction must leave as it was."""
    return {k: v for k, v in chain.state.items().items() if not k.startswith(b"account/")}
