"""The plant's side of the chain: sign the calls of one phase, submit them together, wait until
every one is committed, and hand back their results.

A phase only holds calls that commute across senders (each sender's calls keep their order by
nonce), so however the primary interleaves them the state after the phase is the same, and so
are the business figures of a run.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from cli.layout import ClusterDir
from ledger.crypto import KeyPair
from ledger.tx import Transaction
from node.client import NodeClient

COMMIT_TIMEOUT_S = 60.0


class ScenarioError(Exception):
    """The chain refused or lost what the plant asked for: the run cannot go on."""


@dataclass(frozen=True, slots=True)
class Call:
    identity: str
    contract: str
    method: str
    args: dict[str, Any]
    # The start of an error that is a business outcome here, not a failed run (the call's
    # result is then None); "" takes none.
    may_fail_with: str = ""


class PlantChain:
    def __init__(self, layout: ClusterDir, client: NodeClient) -> None:
        self.layout = layout
        self.client = client
        self.chain_id = layout.genesis().chain_id
        self._keys: dict[str, KeyPair] = {}
        self._nonces: dict[str, int] = {}
        self.transactions = 0

    async def _signer(self, identity: str) -> tuple[KeyPair, int]:
        if identity not in self._keys:
            keys = self.layout.identity_keys(identity)
            self._keys[identity] = keys
            self._nonces[identity] = await self.client.next_nonce(keys.public_key)
        return self._keys[identity], self._nonces[identity]

    async def phase(self, calls: list[Call]) -> list[Any]:
        """Commit `calls`; returns each one's result, in order (None for a call that failed with
        its `may_fail_with`). Raises ScenarioError naming the first call the chain refused or
        that failed otherwise."""
        if not calls:
            return []
        raws: list[bytes] = []
        for call in calls:
            keys, nonce = await self._signer(call.identity)
            tx = Transaction.create(
                keys,
                chain_id=self.chain_id,
                nonce=nonce,
                contract=call.contract,
                method=call.method,
                args=call.args,
            )
            self._nonces[call.identity] = nonce + 1
            raws.append(tx.to_wire())
        answers = await self.client.submit_many(raws)
        for call, answer in zip(calls, answers, strict=True):
            if "error" in answer:
                raise ScenarioError(
                    f"{call.contract}.{call.method} by {call.identity} was refused: "
                    f"{answer['error']}"
                )
        results = await asyncio.gather(
            *(self.client.wait_committed(str(a["hash"]), COMMIT_TIMEOUT_S) for a in answers)
        )
        self.transactions += len(calls)
        values: list[Any] = []
        for call, result in zip(calls, results, strict=True):
            receipt = result["receipt"]
            if not receipt["ok"]:
                error = str(receipt["error"])
                if call.may_fail_with and error.startswith(call.may_fail_with):
                    values.append(None)
                    continue
                raise ScenarioError(
                    f"{call.contract}.{call.method} by {call.identity} failed: {receipt['error']}"
                )
            values.append(receipt["result"])
        return values

    async def query(self, contract: str, *path: str) -> Any:
        return await self.client.query(contract, list(path))
