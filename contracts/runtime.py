"""The contract runtime: the registry of contracts and the deterministic execution of blocks.

Theory of operation. `execute_block` runs a block's transactions in order over one block overlay.
Each transaction passes the admission gates in a fixed order (known and active sender, this chain,
the sender's next nonce); a transaction failing a gate changes nothing, not even the nonce, so a
stale or early transaction cannot burn one. Past the gates the nonce is consumed whatever happens
next: routing to a contract method, the role check, argument validation, and the method itself in
a child overlay that is folded into the block overlay only if the method returns. An
ExecutionError becomes a failing receipt; any other exception is a bug in a contract and
propagates, because a node that papered over it could diverge from its peers silently. The block's
net writes and receipts then chain into the state digest (`contracts.state.next_digest`).

Signatures are not checked here: the node verified each transaction when admitting it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from contracts import accounts
from contracts.catalog import CatalogContract
from contracts.contract import BlockContext, Call, Contract, MethodSpec, method
from contracts.errors import DefinitionError, ExecutionError, QueryError, RejectedError
from contracts.identity import IdentityContract, IdentityRecord, read_identity
from contracts.inventory import InventoryContract
from contracts.machines import MachinesContract
from contracts.maintenance import MaintenanceContract
from contracts.oracle import OracleContract
from contracts.orders import OrdersContract
from contracts.receipt import Event, Receipt
from contracts.schema import validate_args
from contracts.state import (
    GENESIS_PREV_DIGEST,
    MemoryState,
    Overlay,
    StateReader,
    next_digest,
)
from ledger.cache import FifoCache
from ledger.encoding import canonical_copy
from ledger.genesis import Genesis
from ledger.tx import Transaction

__all__ = [
    "BlockContext",
    "BlockResult",
    "Call",
    "Contract",
    "Event",
    "MethodSpec",
    "Receipt",
    "Runtime",
    "method",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class BlockResult:
    receipts: tuple[Receipt, ...]
    writes: dict[bytes, bytes | None]  # the whole block's net writes; None deletes
    state_digest: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class _Outcome:
    """What a transaction that passed the gates produced."""

    result: Any
    events: tuple[Event, ...]


VALIDATED_ARGS_MAX = 16_384  # more than a full mempool


class Runtime:
    """A registry of contracts, and the one way state changes: executing blocks."""

    def __init__(self, contracts: Sequence[Contract]) -> None:
        self._contracts: dict[str, Contract] = {}
        # Arguments checked at admission, by transaction hash, taken (once) by execution:
        # checking depends only on the transaction and the method's schema, so the result is
        # the same whenever it is computed.
        self._validated_args: FifoCache[bytes, dict[str, Any]] = FifoCache(VALIDATED_ARGS_MAX)
        for contract in contracts:
            name = getattr(type(contract), "name", None)
            if not isinstance(name, str):
                raise DefinitionError(f"{type(contract).__qualname__} has no contract name")
            if name in self._contracts:
                raise DefinitionError(f"two contracts are named {name!a}")
            self._contracts[name] = contract

    @classmethod
    def default(cls) -> Runtime:
        """The built-in contracts."""
        return cls(
            [
                IdentityContract(),
                InventoryContract(),
                CatalogContract(),
                OrdersContract(),
                MachinesContract(),
                MaintenanceContract(),
                OracleContract(),
            ]
        )

    @property
    def contract_names(self) -> tuple[str, ...]:
        return tuple(sorted(self._contracts))

    # Genesis

    def genesis_writes(self, genesis: Genesis) -> dict[bytes, bytes | None]:
        overlay = Overlay(MemoryState())
        for name in self.contract_names:
            overlay.apply(self._contracts[name].genesis_writes(genesis))
        return overlay.writes

    def genesis_digest(self, genesis: Genesis) -> bytes:
        return next_digest(GENESIS_PREV_DIGEST, 0, self.genesis_writes(genesis), [])

    # Execution

    def execute_block(
        self,
        state: StateReader,
        ctx: BlockContext,
        txs: Sequence[Transaction],
        prev_digest: bytes,
    ) -> BlockResult:
        block = Overlay(state)
        receipts = tuple(self._execute_tx(block, ctx, tx, index) for index, tx in enumerate(txs))
        writes = block.writes
        return BlockResult(
            receipts=receipts,
            writes=writes,
            state_digest=next_digest(prev_digest, ctx.height, writes, receipts),
        )

    def _execute_tx(
        self, block: Overlay, ctx: BlockContext, tx: Transaction, index: int
    ) -> Receipt:
        identity = _gate(block, ctx.chain_id, tx, nonce_ahead_ok=False)
        if isinstance(identity, str):
            return Receipt.failure(tx_hash=tx.hash, height=ctx.height, index=index, error=identity)
        accounts.consume_nonce(block, tx.sender, tx.nonce)
        try:
            outcome = self._run(block, ctx, tx, identity)
        except ExecutionError as exc:
            return Receipt.failure(tx_hash=tx.hash, height=ctx.height, index=index, error=str(exc))
        return Receipt(
            tx_hash=tx.hash,
            height=ctx.height,
            index=index,
            ok=True,
            error=None,
            result=outcome.result,
            events=outcome.events,
        )

    def _run(
        self, block: Overlay, ctx: BlockContext, tx: Transaction, identity: IdentityRecord
    ) -> _Outcome:
        contract, spec = self._route(tx.contract, tx.method)
        where = f"{contract.name}.{spec.name}"
        _check_roles(where, spec, identity)
        args = self._validated_args.pop(tx.hash, None)
        if args is None:
            args = validate_args(spec.args, tx.args, where=where)
        call = Call(
            contract=contract.name,
            method=spec.name,
            sender=tx.sender,
            sender_name=identity.name,
            sender_roles=identity.roles,
            block=ctx,
            tx_hash=tx.hash,
            state=block.child(),
        )
        result = contract.invoke(spec, call, args)
        # A canonical copy: fails here on data the digest cannot hash, and stops the contract's
        # objects from aliasing the receipt.
        canonical_result = canonical_copy(result)
        block.apply(call.state.writes)
        return _Outcome(result=canonical_result, events=tuple(call.events))

    def _route(self, contract_name: str, method_name: str) -> tuple[Contract, MethodSpec]:
        contract = self._contracts.get(contract_name)
        if contract is None:
            known = ", ".join(self.contract_names)
            raise RejectedError(f"unknown contract {contract_name!a}; known contracts: {known}")
        spec = contract.methods.get(method_name)
        if spec is None:
            known = ", ".join(sorted(contract.methods))
            raise RejectedError(
                f"contract {contract_name} has no method {method_name!a}; its methods: {known}"
            )
        return contract, spec

    # Admission (the node's pre-check before a transaction enters its mempool)

    def admission_error(self, state: StateReader, chain_id: str, tx: Transaction) -> str | None:
        """Why the node should refuse `tx` now, or None. Signatures are the caller's job.

        Runs the checks execution would, against the latest state, except that a nonce ahead of
        the next one is accepted: the transactions before it may still be on their way.
        """
        identity = _gate(state, chain_id, tx, nonce_ahead_ok=True)
        if isinstance(identity, str):
            return identity
        try:
            contract, spec = self._route(tx.contract, tx.method)
            where = f"{contract.name}.{spec.name}"
            _check_roles(where, spec, identity)
            args = validate_args(spec.args, tx.args, where=where)
        except ExecutionError as exc:
            return str(exc)
        self._validated_args.remember(tx.hash, args)
        return None

    # Reads

    def account_nonce(self, state: StateReader, sender: bytes) -> int:
        return accounts.next_nonce(state, sender)

    def identity_of(self, state: StateReader, public_key: bytes) -> IdentityRecord | None:
        return read_identity(state, public_key)

    def query(self, state: StateReader, contract: str, path: Sequence[str]) -> Any:
        return self._queried(contract).query(state, path)

    def query_page(
        self, state: StateReader, contract: str, path: Sequence[str], *, after: str
    ) -> Any:
        """One page of a listing, from the record after the cursor `after` ("" for the first):
        see Contract.query_page."""
        return self._queried(contract).query_page(state, path, after=after)

    def _queried(self, contract: str) -> Contract:
        found = self._contracts.get(contract)
        if found is None:
            known = ", ".join(self.contract_names)
            raise QueryError(f"unknown contract {contract!a}; known contracts: {known}")
        return found

    def describe(self) -> dict[str, Any]:
        """Contracts, their methods, the roles each needs and their argument schemas."""
        return {
            "contracts": {name: self._contracts[name].describe() for name in self.contract_names}
        }


def _gate(
    state: StateReader, chain_id: str, tx: Transaction, *, nonce_ahead_ok: bool
) -> IdentityRecord | str:
    """The sender's identity if the transaction may run at all, else why not (nothing is written).

    Checked in this order on every node, so the same transaction always fails for the same reason.
    """
    identity = read_identity(state, tx.sender)
    if identity is None:
        return f"unknown sender {tx.sender.hex()}: not a registered identity"
    if not identity.active:
        return f"identity {identity.name} is {identity.status}"
    if tx.chain_id != chain_id:
        return f"transaction is for chain {tx.chain_id!a}, this chain is {chain_id!a}"
    expected = accounts.next_nonce(state, tx.sender)
    if tx.nonce < expected:
        return f"nonce {tx.nonce} already used (next is {expected})"
    if tx.nonce > expected and not nonce_ahead_ok:
        return f"nonce {tx.nonce} is ahead of the next nonce {expected}"
    return identity


def _check_roles(where: str, spec: MethodSpec, identity: IdentityRecord) -> None:
    if any(role in identity.roles for role in spec.roles):
        return
    needed = " or ".join(str(role) for role in spec.roles)
    held = ", ".join(str(role) for role in identity.roles) or "no roles"
    raise RejectedError(f"{where} needs role {needed}; sender {identity.name} has {held}")
