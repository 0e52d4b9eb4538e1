"""Steady client load on a live cluster, for tests, scripts and the demo.

Each sender submits one signed transaction at a time, waits to see it committed, and resubmits
the same bytes to another node if the first does not commit it in time (a node may be down), so
what the client saw committed is known exactly. Bounded in count; stopped by `stop()`.
"""

from __future__ import annotations

import asyncio

from cli.layout import ClusterDir
from ledger.tx import Transaction
from node.client import ClientError, NodeClient


class Load:
    """Senders (identities allowed to call inventory.receive) submitting in a loop."""

    def __init__(self, layout: ClusterDir, senders: list[str], *, count_max: int = 5000) -> None:
        self.layout = layout
        self.senders = senders
        self.count_max = count_max
        self.acked: dict[str, int] = {}  # tx hash -> height the client saw it committed at
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._submitted = 0

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._sender(name, i)) for i, name in enumerate(self.senders)
        ]

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)

    async def _sender(self, identity: str, offset: int) -> None:
        keys = self.layout.identity_keys(identity)
        chain_id = self.layout.genesis().chain_id
        names = self.layout.node_names()
        nonce = await self._committed_nonce(names, keys.public_key)
        turn = offset
        while not self._stop.is_set() and self._submitted < self.count_max:
            tx = Transaction.create(
                keys,
                chain_id=chain_id,
                nonce=nonce,
                contract="inventory",
                method="receive",
                args={"item": f"load-{nonce % 5}", "location": identity, "qty": 1},
            )
            self._submitted += 1
            while not self._stop.is_set():
                name = names[turn % len(names)]
                turn += 1
                height = await _submit_and_wait(
                    self.layout.config(name).url, tx.to_wire(), tx.hash.hex()
                )
                if height is not None:
                    self.acked[tx.hash.hex()] = height
                    nonce += 1
                    break

    async def _committed_nonce(self, names: list[str], public_key: bytes) -> int:
        for name in names:
            try:
                async with NodeClient(self.layout.config(name).url, timeout_s=5) as client:
                    result = await client.request("GET", f"/accounts/{public_key.hex()}")
                    return int(result["committed_nonce"])
            except ClientError:
                continue
        raise ClientError("no node answered for the sender's nonce")


async def _submit_and_wait(node_url: str, raw: bytes, tx_hash: str) -> int | None:
    try:
        async with NodeClient(node_url, timeout_s=5) as client:
            try:
                await client.submit(raw)
            except ClientError as exc:
                if exc.status != 409:  # 409: it already knows this transaction
                    return None
            result = await client.tx(tx_hash, wait_ms=3000)
            return int(result["height"]) if result["status"] == "committed" else None
    except ClientError:
        return None
