"""An asyncio client for a node's HTTP API, used by the CLI, the bench and the tests."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

import aiohttp
import msgpack

from ledger.crypto import KeyPair
from ledger.tx import Transaction
from node.errors import NodeError


class ClientError(NodeError):
    """A node answered with an error status, or could not be reached."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class PathSegmentError(NodeError):
    """Text that cannot be one segment of a request's URL path."""


def path_segment(text: str) -> str:
    """`text` as one URL path segment, every reserved character percent-encoded ("#", "?" and
    "/" would otherwise end or split it). An empty segment, "." and ".." are refused: URLs
    normalise them away, so the request would name another resource than the caller meant."""
    if text in ("", ".", ".."):
        raise PathSegmentError(
            f"{text!r} cannot be sent as a key in a URL path, which drops empty, '.' and '..' "
            "segments: expected a name"
        )
    return quote(text, safe="")


class NodeClient:
    def __init__(self, url: str, *, timeout_s: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> NodeClient:
        self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("NodeClient must be used as an async context manager")
        return self._session

    async def request(
        self, method: str, path: str, *, body: bytes | None = None, timeout_s: float | None = None
    ) -> Any:
        headers = {"Content-Type": "application/msgpack"} if body is not None else None
        timeout = aiohttp.ClientTimeout(total=timeout_s) if timeout_s else None
        try:
            async with self.session.request(
                method, self.url + path, data=body, headers=headers, timeout=timeout
            ) as response:
                raw = await response.read()
                try:
                    payload = json.loads(raw)
                except ValueError:  # also UnicodeDecodeError: a proxy's page, a plain-text 500
                    raise ClientError(
                        f"{response.status}: {self.url} answered what is not JSON: {raw[:200]!r}",
                        status=response.status,
                    ) from None
                if response.status >= 400:
                    message = payload.get("error") if isinstance(payload, dict) else payload
                    raise ClientError(f"{response.status}: {message}", status=response.status)
                return payload
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ClientError(f"cannot reach {self.url}: {exc or type(exc).__name__}") from exc

    async def status(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("GET", "/status", timeout_s=3)
        return result

    async def submit(self, raw: bytes) -> str:
        result = await self.request("POST", "/tx", body=raw)
        return str(result["hash"])

    async def submit_many(self, raws: list[bytes]) -> list[dict[str, Any]]:
        """Submit signed transactions in one request; each one's {"hash"} or {"error", "status"}."""
        body = msgpack.packb(raws, use_bin_type=True)
        result = await self.request("POST", "/txs", body=body)
        return list(result["results"])

    async def commits(self, from_height: int, *, wait_ms: int = 0) -> dict[str, Any]:
        """Committed blocks from `from_height` still held by the node: {"head", "blocks":
        [[height, commit_ms, concatenated 32-byte tx hashes], ...]}."""
        timeout = aiohttp.ClientTimeout(total=wait_ms / 1000 + 5)
        url = f"{self.url}/commits?from={from_height}&wait_ms={wait_ms}"
        try:
            async with self.session.get(url, timeout=timeout) as response:
                raw = await response.read()
                if response.status != 200:
                    raise ClientError(f"{response.status}: {raw[:200]!r}", status=response.status)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ClientError(f"cannot reach {self.url}: {exc or type(exc).__name__}") from exc
        result: dict[str, Any] = msgpack.unpackb(raw, raw=False)
        return result

    async def tx(self, tx_hash: str, *, wait_ms: int = 0) -> dict[str, Any]:
        suffix = f"?wait_ms={wait_ms}" if wait_ms else ""
        timeout_s = wait_ms / 1000 + 5 if wait_ms else None
        result: dict[str, Any] = await self.request(
            "GET", f"/tx/{path_segment(tx_hash)}{suffix}", timeout_s=timeout_s
        )
        return result

    async def next_nonce(self, public_key: bytes) -> int:
        result = await self.request("GET", f"/accounts/{public_key.hex()}")
        return int(result["next_nonce"])

    async def query(self, contract: str, path: list[str]) -> Any:
        """The value at `path` (keys, one segment each) of `contract`'s state at the head."""
        suffix = "".join(f"/{path_segment(part)}" for part in path)
        result = await self.request("GET", f"/state/{path_segment(contract)}{suffix}")
        return result["value"]

    async def events(self, subject: str) -> list[dict[str, Any]]:
        """The newest 1,000 events about `subject` (order:ord-1, item:steel@main, machine:m1,
        ...), oldest first."""
        result = await self.request("GET", f"/events/{path_segment(subject)}")
        return list(result["events"])

    async def block(self, height: int) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("GET", f"/blocks/{height}")
        return result

    async def sign_and_submit(
        self, keys: KeyPair, *, chain_id: str, contract: str, method: str, args: dict[str, Any]
    ) -> Transaction:
        nonce = await self.next_nonce(keys.public_key)
        tx = Transaction.create(
            keys, chain_id=chain_id, nonce=nonce, contract=contract, method=method, args=args
        )
        await self.submit(tx.to_wire())
        return tx

    async def wait_committed(self, tx_hash: str, timeout_s: float) -> dict[str, Any]:
        """GET /tx's answer once a block included the transaction and its receipt is settled
        (see node/api.py get_tx). An unsettled one (a failure that did not use the nonce: a
        later block may still run the transaction) is waited past until the deadline, then
        returned as it stands; ClientError if no block included the transaction by then."""
        deadline = time.monotonic() + timeout_s
        unsettled: dict[str, Any] | None = None
        while True:
            remaining_ms = int((deadline - time.monotonic()) * 1000)
            if remaining_ms <= 0:
                if unsettled is not None:
                    return unsettled
                raise ClientError(f"transaction {tx_hash} not committed within {timeout_s:.0f} s")
            result = await self.tx(tx_hash, wait_ms=min(remaining_ms, 10_000))
            if result["status"] == "committed":
                # A node from before the flag settled every answer.
                if result.get("settled", True):
                    return result
                unsettled = result


async def wait_committed_anywhere(
    urls: Sequence[str], tx_hash: str, timeout_s: float
) -> dict[str, Any]:
    """Wait until any of the nodes at `urls` reports the transaction committed (and settled:
    see NodeClient.wait_committed), and return its answer. Asking only the node it was
    submitted to said "not committed" when that node was paused, cut off or behind while the
    others committed it, and a client trying again would sign it anew: the same goods received
    twice. A node that does not answer is left out; ClientError when none reports the commit
    within `timeout_s`."""

    async def ask(url: str) -> dict[str, Any]:
        async with NodeClient(url) as client:
            return await client.wait_committed(tx_hash, timeout_s)

    pending = {asyncio.ensure_future(ask(url)) for url in urls}
    errors: list[str] = []
    try:
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                try:
                    return task.result()
                except ClientError as exc:
                    errors.append(str(exc))
    finally:
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    if any("not committed within" in error for error in errors):
        raise ClientError(f"transaction {tx_hash} not committed within {timeout_s:.0f} s")
    raise ClientError(f"no node reports transaction {tx_hash} committed: " + "; ".join(errors))


async def wait_until_up(
    urls: list[str],
    timeout_s: float,
    *,
    names: Mapping[str, str] | None = None,
    check: Callable[[], None] | None = None,
) -> dict[str, dict[str, Any]]:
    """Poll every node's /status until all answer or the deadline passes (ClientError).
    `names`: the name the node at each url must answer as; another name means another process
    holds its port (ClientError). `check`: called every round before polling, to give up
    early by raising (a node process that exited, say)."""
    deadline = time.monotonic() + timeout_s
    answered: dict[str, dict[str, Any]] = {}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        while True:
            if check is not None:
                check()
            for url in urls:
                if url in answered:
                    continue
                try:
                    async with session.get(url + "/status") as response:
                        if response.status != 200:
                            continue
                        status = await response.json()
                except (aiohttp.ClientError, TimeoutError, ValueError):
                    continue
                expected = None if names is None else names.get(url)
                found = status.get("name") if isinstance(status, dict) else None
                if expected is not None and found != expected:
                    raise ClientError(
                        f"{url} answers as {str(found)[:60]!a}, not as {expected}: another "
                        f"process holds {expected}'s port"
                    )
                answered[url] = status
            if len(answered) == len(urls):
                return answered
            if time.monotonic() > deadline:
                missing = ", ".join(u for u in urls if u not in answered)
                raise ClientError(f"nodes not answering after {timeout_s:.0f} s: {missing}")
            await asyncio.sleep(0.1)
