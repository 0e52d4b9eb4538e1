"""The node's HTTP API (aiohttp): the client API, the peer API, and the app factory.

Client API (JSON answers; errors are {"error": message} with a 4xx or 503 status):
  POST /tx                      body: a signed transaction (msgpack) -> 202 {"hash"}
  POST /txs                     body: a msgpack list of signed transactions -> 200
                                {"results": [{"hash"} or {"error", "status"}, ...]} in order
  GET  /commits?from=H[&wait_ms=N]  recent committed blocks from height H (msgpack:
                                {"head", "blocks": [[height, commit_ms, 32-byte tx hashes
                                concatenated], ...]}), waiting up to N ms for the first
  GET  /tx/{hash}[?wait_ms=N]   the transaction, its status and receipt (waits up to N ms
                                for a commit, and for a settled one: see get_tx)
  GET  /blocks?limit=N          the newest blocks
  GET  /blocks/{height}         a block with its transactions, receipts and commit certificate
  GET  /blocks/hash/{hash}      the same, by block hash
  GET  /status                  height, head, state digest, view, primary, peers, counters
  GET  /accounts/{public key}   the next nonce a sender should use
  GET  /state/{contract}[/...]  a contract's state at the head
  GET  /state/inventory?after=K one page of stock records: at most 200, from the one after the
                                cursor K ("" for the first), and whether more follow
  GET  /state/inventory/{item}?after=L  the same for one item's locations, after location L
  GET  /events/{subject}        the history of one subject (an item, an order, a machine):
                                its newest events, oldest first
Peer API:
  POST /peer/batch              {"sender", "messages": [...], "txs": [...]} (msgpack); 503
                                while the node is paused, with no Retry-After (node/errors.py)
  GET  /peer/stream             a WebSocket carrying such batches, one binary frame each, each
                                answered by an ack frame {"status", "error"}, and
                                "retry_after_s" with a 429 (node/peers.py)
  POST /peer/pending            {"senders": [public key, ...]} -> {"next_nonces": [...],
                                "queued_since_ms"}: the first nonce of each sender missing
                                here, and when the oldest batch waiting for admission arrived
  GET  /peer/blocks?from=&to=   certified blocks for catching up (msgpack)
  GET  /peer/history?from=&to=  certified blocks with their receipts and write sets, and the
                                stable checkpoint proofs among them (msgpack, node/history.py)
Every request under /peer/ states the sender's protocol version in the Millchain-Protocol header
(node/protocol.py); one that states none or another is answered 409, naming both versions, before
anything else of it is read.
Admin API (from loopback under an IP address, localhost or a validator's host, or with
`Authorization: Bearer <admin_token>` if the config sets one; never what a browser sends for a
page of another origin):
  GET/POST /admin/pause         show, or arm, a pause point (node/pause.py); POST /admin/resume
  GET/POST /admin/faults        show, or set, per-peer fault injection (node/faults.py): POST
                                {"peer": NAME or "*", "delay_ms", "jitter_ms", "loss",
                                "duplicate", "blocked"} sets a rule (fields left out: no fault),
                                {"clear": true[, "peer": NAME]} removes rules, {"seed": N} reseeds
Also GET /openapi.json (this API described as OpenAPI 3.1, node/openapi.py), GET /metrics and the
explorer (node/explorer.py).

Client API requests are rate-limited per remote address (node/limits.py): over the limit they get
429 with Retry-After. A body must arrive within the configured body timeout (else 408).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote

import msgpack
from aiohttp import WSCloseCode, WSMsgType, web

from contracts.errors import ContractError, QueryParameterError
from contracts.schema import is_decimal
from ledger.encoding import ContainersExceeded, container_budget, decode, encode
from ledger.errors import EncodingError
from ledger.tx import jsonable
from node import pause
from node.errors import ListenError, Paused, Rejection
from node.explorer import setup_explorer
from node.faults import FaultSpecError, LinkFaults
from node.history import encode_history
from node.limits import ApiLimits, RateLimited, RateLimiter, token_matches
from node.mempool import PENDING_QUERY_MAX
from node.metrics import setup_metrics
from node.openapi import (
    BLOCK_LIST_MAX,
    COMMITS_FROM_MAX,
    EVENTS_LIMIT_MAX,
    HEIGHT_MAX,
    TXS_PER_REQUEST_MAX,
    WAIT_MS_MAX,
    setup_openapi,
)
from node.peer_auth import LinkProofError, linked_validator
from node.peers import encode_ack
from node.protocol import PROTOCOL_HEADER, PROTOCOL_VERSION, REFUSED_STATUS, refusal, subprotocol
from node.service import Node, now_ms
from node.sync import blocks_query, encode_blocks

log = logging.getLogger(__name__)

NODE_KEY = web.AppKey("node", Node)
LIMITS_KEY = web.AppKey("limits", ApiLimits)
LIMITER_KEY = web.AppKey("rate_limiter", RateLimiter)
PEER_STREAMS_KEY = web.AppKey("peer_streams", set[web.WebSocketResponse])
# Remote address -> time.monotonic() of the last refusal of its protocol version logged.
PROTOCOL_REFUSALS_KEY = web.AppKey("protocol_refusals_logged", dict[str, float])
# A node of another version retries its links every couple of seconds for as long as it runs:
# its refusals are logged once a minute per address (and all counted), and the addresses
# remembered are bounded.
PROTOCOL_REFUSAL_LOG_INTERVAL_S = 60.0
PROTOCOL_REFUSAL_ADDRESSES_MAX = 1024
PEER_PREFIX = "/peer/"
# Pings on an idle peer stream; a peer that does not answer one in time is closed.
PEER_STREAM_HEARTBEAT_S = 20.0
# Routes outside the client API's rate limit (see node/limits.py for why).
UNLIMITED_PREFIXES = (PEER_PREFIX, "/admin/")
# Seconds a stopping node gives requests in flight before it cuts them: a client's long poll
# (GET /tx?wait_ms, GET /commits?wait_ms) would otherwise hold the stop for up to its wait, past
# `cluster down`'s patience, which then kills the node.
SHUTDOWN_GRACE_S = 1.0
# A peer batch is {"messages": [bytes, ...], "txs": [bytes, ...]}: three lists and maps.
PEER_BATCH_CONTAINERS = 3
# A pending query is {"senders": [bytes, ...]}: two.
PENDING_QUERY_CONTAINERS = 2

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error(status: int, message: str, *, retry_after_s: int | None = 1) -> web.Response:
    """An error answer; a 429 or 503 with a Retry-After of `retry_after_s` unless None (the node
    knows nothing to say about when to ask again)."""
    headers = (
        {"Retry-After": str(retry_after_s)}
        if status in (429, 503) and retry_after_s is not None
        else None
    )
    return web.json_response({"error": message}, status=status, headers=headers)


@web.middleware
async def rejections(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn a Rejection into its status with a message; oversized bodies into 413. What the
    HTTP limits refuse (429, 408, 413) is counted here, as admission counts what it refuses:
    nothing else logs or counts it."""
    counters = request.app[NODE_KEY].counters
    try:
        return await handler(request)
    except RateLimited as exc:
        counters.reject("rate_limited")
        return error(exc.status, str(exc), retry_after_s=exc.retry_after_s)
    except Rejection as exc:
        response = error(exc.status, str(exc), retry_after_s=None if isinstance(exc, Paused) else 1)
        if exc.status == 408:
            counters.reject("body_timeout")
            response.force_close()  # the rest of a body that is too slow is not worth waiting for
        return response
    except web.HTTPRequestEntityTooLarge as exc:
        counters.reject("body_too_large")
        return error(413, f"request body too large: {exc.text}")
    except web.HTTPClientError as exc:  # aiohttp's own: no such route, method not allowed
        response = error(exc.status, f"{exc.reason}: {request.method} {request.path[:200]}")
        if "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        return response


@web.middleware
async def peer_protocol(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse a request under /peer/ that does not state this node's protocol version
    (node/protocol.py), before anything else of it is read: counted, and logged."""
    if request.path.startswith(PEER_PREFIX):
        problem = refusal(request.headers.get(PROTOCOL_HEADER))
        if problem is not None:
            request.app[NODE_KEY].counters.reject("peer_protocol")
            _log_protocol_refusal(request, problem)
            response = error(REFUSED_STATUS, problem)
            response.headers[PROTOCOL_HEADER] = str(PROTOCOL_VERSION)
            return response
    return await handler(request)


def _log_protocol_refusal(request: web.Request, problem: str) -> None:
    logged = request.app[PROTOCOL_REFUSALS_KEY]
    remote = request.remote or "unknown"
    now_s = time.monotonic()
    last_s = logged.get(remote)
    if last_s is not None and now_s - last_s < PROTOCOL_REFUSAL_LOG_INTERVAL_S:
        return
    if last_s is None and len(logged) >= PROTOCOL_REFUSAL_ADDRESSES_MAX:
        logged.clear()
    logged[remote] = now_s
    log.warning(
        "refused %s %s from %s: %s (logged once a minute per address)",
        request.method,
        request.path[:200],
        remote,
        problem,
    )


@web.middleware
async def rate_limit(request: web.Request, handler: Handler) -> web.StreamResponse:
    """One token per client API request from the remote address's bucket."""
    if not request.path.startswith(UNLIMITED_PREFIXES):
        request.app[LIMITER_KEY].take(request.remote or "unknown")
    return await handler(request)


async def read_body(request: web.Request) -> bytes:
    """The request body, or 408 if the client takes longer than the body timeout to send it."""
    timeout_s = request.app[LIMITS_KEY].body_timeout_s
    try:
        async with asyncio.timeout(timeout_s):
            return await request.read()
    except TimeoutError:
        raise Rejection(f"request body not received within {timeout_s:g} s", status=408) from None


def create_app(node: Node, limits: ApiLimits | None = None) -> web.Application:
    limits = limits or ApiLimits()
    app = web.Application(
        client_max_size=node.params.body_bytes_max,
        middlewares=[rejections, peer_protocol, rate_limit],
    )
    app[NODE_KEY] = node
    app[LIMITS_KEY] = limits
    app[PEER_STREAMS_KEY] = set()
    app[PROTOCOL_REFUSALS_KEY] = {}
    app.on_shutdown.append(_close_peer_streams)
    app[LIMITER_KEY] = RateLimiter(
        rate_per_s=limits.rate_limit_per_s, burst=limits.rate_limit_burst
    )
    app.add_routes(
        [
            web.post("/tx", submit_tx),
            web.post("/txs", submit_txs),
            web.get("/commits", get_commits),
            web.get("/tx/{hash}", get_tx),
            web.get("/blocks", list_blocks),
            web.get("/blocks/hash/{hash}", get_block_by_hash),
            web.get("/blocks/{height}", get_block),
            web.get("/status", get_status),
            web.get("/accounts/{key}", get_account),
            web.get("/state/{contract}", get_state),
            web.get("/state/{contract}/{path:.*}", get_state),
            web.get("/events/{subject}", get_events),
            web.post("/peer/batch", peer_batch),
            web.get("/peer/stream", peer_stream),
            web.post("/peer/pending", peer_pending),
            web.get("/peer/blocks", peer_blocks),
            web.get("/peer/history", peer_history),
            web.get("/admin/pause", admin_pause_status),
            web.post("/admin/pause", admin_pause),
            web.post("/admin/resume", admin_resume),
            web.get("/admin/faults", admin_faults_status),
            web.post("/admin/faults", admin_faults),
        ]
    )
    setup_explorer(app)
    setup_metrics(app)
    setup_openapi(app)
    return app


def _hex_param(request: web.Request, name: str, length: int) -> bytes:
    text = request.match_info[name]
    try:
        value = bytes.fromhex(text)
    except ValueError:
        raise Rejection(f"{name} must be hex, got {text[:80]!r}") from None
    if len(value) != length:
        raise Rejection(f"{name} must be {length} bytes ({2 * length} hex digits)")
    return value


def _int_query(request: web.Request, name: str, default: int, maximum: int) -> int:
    text = request.query.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise Rejection(f"query parameter {name} must be an integer, got {text[:40]!r}") from None
    if not 0 <= value <= maximum:
        raise Rejection(f"query parameter {name} must be between 0 and {maximum}")
    return value


async def submit_tx(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    raw = await read_body(request)
    if not raw:
        raise Rejection("empty body: expected a msgpack-encoded signed transaction")
    tx = node.submit(raw)
    return web.json_response({"hash": tx.hash.hex()}, status=202)


async def submit_txs(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    raw = await read_body(request)
    try:
        # The transactions are bytes: only the list itself is built, however many lists or
        # maps the body holds (see container_budget).
        raws = (
            msgpack.unpackb(raw, raw=False, use_list=True, **container_budget(1)) if raw else None
        )
    except ContainersExceeded:
        raise Rejection(
            "expected a msgpack list of signed transactions, each a bytes string; "
            "the body holds lists or maps inside the list"
        ) from None
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        raise Rejection(f"body is not msgpack: {exc}") from None
    if not isinstance(raws, list) or not raws:
        raise Rejection("expected a non-empty msgpack list of signed transactions")
    if len(raws) > TXS_PER_REQUEST_MAX:
        raise Rejection(f"at most {TXS_PER_REQUEST_MAX} transactions per request")
    if len(raws) > 1:  # the request itself took one token already
        request.app[LIMITER_KEY].take(request.remote or "unknown", len(raws) - 1)
    results: list[dict[str, Any]] = []
    for outcome in await node.submit_batch(raws):
        if isinstance(outcome, Rejection):
            results.append({"error": str(outcome), "status": outcome.status})
        else:
            results.append({"hash": outcome.hash.hex()})
    return web.json_response({"results": results})


async def get_commits(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    start = _int_query(request, "from", 1, COMMITS_FROM_MAX)
    wait_ms = _int_query(request, "wait_ms", 0, WAIT_MS_MAX)
    blocks = await node.commit_feed.wait_since(start, wait_ms / 1000)
    body = {
        "head": node.storage.head().height,
        "blocks": [[b.height, b.commit_ms, b.tx_hashes] for b in blocks],
    }
    return web.Response(
        body=msgpack.packb(body, use_bin_type=True), content_type="application/msgpack"
    )


async def get_tx(request: web.Request) -> web.Response:
    """The transaction with the receipt of its inclusion that counts (node/storage.py), and
    whether that receipt is `settled`: it succeeded, or the nonce is used (by this inclusion or
    by another transaction of the sender), so no block can ever run the transaction again. An
    unsettled one failed a gate without using its nonce (a block took it before its turn, say):
    a later block may still include it and run it. With wait_ms the answer waits for a commit,
    and while it is unsettled, for the next block that might settle it."""
    node = request.app[NODE_KEY]
    tx_hash = _hex_param(request, "hash", 32)
    wait_ms = _int_query(request, "wait_ms", 0, WAIT_MS_MAX)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_ms / 1000
    if wait_ms and not node.storage.has_tx(tx_hash):
        await node.wait_committed(tx_hash, wait_ms / 1000)
    committed = _committed_tx(node, tx_hash)
    while committed is not None and not committed["settled"] and loop.time() < deadline:
        after = node.storage.head().height + 1
        await node.commit_feed.wait_since(after, deadline - loop.time())
        committed = _committed_tx(node, tx_hash)
    if committed is not None:
        return web.json_response(committed)
    pending = node.mempool.get(tx_hash)
    if pending is not None:
        return web.json_response({"status": "pending", "tx": pending.summary()})
    return error(404, f"transaction {tx_hash.hex()} is unknown to this node")


def _committed_tx(node: Node, tx_hash: bytes) -> dict[str, Any] | None:
    """GET /tx's answer for a transaction a block included; None if none did."""
    receipt = node.storage.receipt(tx_hash)
    if receipt is None:
        return None
    stored = node.storage.block(receipt.height)
    assert stored is not None
    tx = stored.block.txs[receipt.index]
    settled = receipt.ok or node.runtime.account_nonce(node.storage, tx.sender) > tx.nonce
    return {
        "status": "committed",
        "height": receipt.height,
        "settled": settled,
        "tx": tx.summary(),
        "receipt": receipt.summary(),
    }


async def list_blocks(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    limit = _int_query(request, "limit", 20, BLOCK_LIST_MAX)
    return web.json_response({"blocks": node.storage.recent_blocks(limit)})


def _block_json(node: Node, height: int) -> dict[str, Any] | None:
    stored = node.storage.block(height)
    if stored is None:
        return None
    receipts = node.storage.block_receipts(height, stored.block)
    return {
        "header": stored.block.header.summary(),
        "state_digest_after": stored.state_digest.hex(),
        "txs": [
            {**tx.summary(), "receipt": None if r is None else r.summary()}
            for tx, r in zip(stored.block.txs, receipts, strict=True)
        ],
        "certificate": None if stored.certificate is None else stored.certificate.summary(),
    }


async def get_block(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    text = request.match_info["height"]
    if not is_decimal(text) or not 1 <= int(text) <= HEIGHT_MAX:
        raise Rejection(
            f"height must be an integer from 1 (the first block) to {HEIGHT_MAX}, got {text[:40]!r}"
        )
    body = _block_json(node, int(text))
    if body is None:
        return error(404, f"no block at height {text} (head is {node.storage.head().height})")
    return web.json_response(body)


async def get_block_by_hash(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    block_hash = _hex_param(request, "hash", 32)
    stored = node.storage.block_by_hash(block_hash)
    if stored is None:
        return error(404, f"no block with hash {block_hash.hex()}")
    body = _block_json(node, stored.block.height)
    return web.json_response(body)


async def get_status(request: web.Request) -> web.Response:
    return web.json_response(request.app[NODE_KEY].status())


async def get_account(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    key = _hex_param(request, "key", 32)
    identity = node.runtime.identity_of(node.storage, key)
    return web.json_response(
        {
            "public_key": key.hex(),
            "identity": None if identity is None else identity.name,
            "committed_nonce": node.runtime.account_nonce(node.storage, key),
            "next_nonce": node.mempool.next_nonce(key),
        }
    )


async def get_state(request: web.Request) -> web.Response:
    """A query of a contract's state; with ?after= (a cursor, empty for the first page), one
    bounded page of a listing (Contract.query_page). The cursor rides in the query string, as no
    path segment is free: the keys in the path are names that anyone may choose."""
    node = request.app[NODE_KEY]
    contract = request.match_info["contract"]
    # Split the raw path, then decode each key: an encoded "/" (%2F) belongs to its key.
    path = [unquote(part) for part in request.rel_url.raw_path.split("/")[3:] if part]
    after = _after_query(request)
    try:
        if after is None:
            value = node.runtime.query(node.storage, contract, path)
        else:
            value = node.runtime.query_page(node.storage, contract, path, after=after)
    except QueryParameterError as exc:
        return error(400, str(exc))
    except ContractError as exc:
        return error(404, str(exc))
    return web.json_response({"contract": contract, "path": path, "value": jsonable(value)})


def _after_query(request: web.Request) -> str | None:
    """The `after` cursor of a paged state query, None when the query is not paged."""
    values = request.query.getall("after", [])
    if len(values) > 1:
        raise Rejection(f"query parameter after must be given once, got {len(values)} values")
    return values[0] if values else None


async def get_events(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    subject = request.match_info["subject"]
    limit = _int_query(request, "limit", 1000, EVENTS_LIMIT_MAX)
    return web.json_response(
        {"subject": subject, "events": jsonable(node.storage.events(subject, limit))}
    )


async def peer_batch(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    validator = _link_validator(request)
    raw = await read_body(request)
    try:
        problem = take_peer_batch(node, raw, validator=validator, charge=_charger(request))
    except RateLimited as exc:
        if not exc.exceeds_burst:
            raise  # 429 with its Retry-After, from the rejections middleware
        node.counters.reject("rate_limited")
        return error(413, str(exc))
    if problem is not None:
        return error(400, problem)
    return web.json_response({"ok": True})


def _link_validator(request: web.Request) -> int | None:
    """The validator whose node sent this request (node/peer_auth.py), or None; a Rejection
    (403) when the request names one without proving it."""
    node = request.app[NODE_KEY]
    try:
        return linked_validator(request.headers, node.genesis, receiver=node.index, now_ms=now_ms())
    except LinkProofError as exc:
        raise Rejection(str(exc), status=403) from exc


def _charge_unproven(request: web.Request) -> None:
    """A peer read (/peer/pending, /peer/blocks, /peer/history) takes a token of the client
    rate limit unless a validator proves it asks (node/peer_auth.py): anybody can send them,
    and a history answer reads up to FETCH_BYTES_MAX of blocks and receipts on the event loop."""
    if _link_validator(request) is None:
        _charger(request)(1)


def _charger(request: web.Request) -> Callable[[int], None]:
    """Take tokens from the client rate limit of the request's address (RateLimited if over)."""
    limiter = request.app[LIMITER_KEY]
    client = request.remote or "unknown"
    return lambda tokens: limiter.take(client, tokens)


async def peer_stream(request: web.Request) -> web.WebSocketResponse:
    """A peer's stream of batches: each binary frame is taken as POST /peer/batch takes a body,
    and answered by an ack frame with the status that would have had (node/peers.py).

    A stream on which no whole frame arrives for the idle timeout, or whose peer does not take
    its ack that long, is closed, as an idle HTTP connection is. Pings, pongs and fragments of a
    frame do not count: aiohttp's heartbeat and receive timeout restart on any of them, so
    anybody could hold a stream, and a frame's worth (body_bytes_max) of fragments, for ever."""
    node = request.app[NODE_KEY]
    validator = _link_validator(request)
    charge = _charger(request)
    idle_timeout_s = request.app[LIMITS_KEY].idle_timeout_s
    stream = web.WebSocketResponse(
        max_msg_size=node.params.body_bytes_max,
        compress=False,
        heartbeat=PEER_STREAM_HEARTBEAT_S,
        timeout=1.0,  # for the peer's close frame: shutting down waits no longer for it
        # Chosen when the opener asks for it: it tells the opener this node's version too.
        protocols=(subprotocol(PROTOCOL_VERSION),),
    )
    await stream.prepare(request)
    streams = request.app[PEER_STREAMS_KEY]
    streams.add(stream)
    try:
        while True:
            async with asyncio.timeout(idle_timeout_s):
                frame = await stream.receive()
            if frame.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
                break
            if frame.type is not WSMsgType.BINARY:
                node.counters.reject("peer_malformed")
                ack = encode_ack(400, "peer stream frames must be binary")
            else:
                ack = _ack_for(node, frame.data, validator, charge)
            async with asyncio.timeout(idle_timeout_s):
                await stream.send_bytes(ack)
    except TimeoutError:
        await _close_idle(stream, idle_timeout_s)
    except ConnectionResetError as exc:  # the peer went away before its ack: it sends again
        log.debug("a peer stream closed before its ack was sent: %s", exc)
    finally:
        streams.discard(stream)
    return stream


async def _close_idle(stream: web.WebSocketResponse, idle_timeout_s: float) -> None:
    """Close a stream that was idle too long, within two seconds even if its peer reads nothing
    (its close frame is awaited for one)."""
    log.debug("closing a peer stream idle for %g s", idle_timeout_s)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(2.0):
            await stream.close(
                code=WSCloseCode.POLICY_VIOLATION,
                message=f"no whole frame or ack taken within {idle_timeout_s:g} s".encode(),
                drain=False,
            )


def _ack_for(node: Node, raw: bytes, validator: int | None, charge: Callable[[int], None]) -> bytes:
    """The ack of one frame: the status POST /peer/batch would have answered, and for 429 the
    Retry-After it would have carried."""
    try:
        problem = take_peer_batch(node, raw, validator=validator, charge=charge)
    except RateLimited as exc:
        node.counters.reject("rate_limited")
        if exc.exceeds_burst:
            # No wait lets this batch through; 413 has the sender split it (node/peers.py).
            return encode_ack(413, str(exc))
        return encode_ack(exc.status, str(exc), retry_after_s=exc.retry_after_s)
    except Rejection as exc:  # paused: as POST /peer/batch answers it, with no Retry-After
        return encode_ack(exc.status, str(exc))
    return encode_ack(200, None) if problem is None else encode_ack(400, problem)


def take_peer_batch(
    node: Node, raw: bytes, *, validator: int | None, charge: Callable[[int], None]
) -> str | None:
    """Feed a peer's batch to the node; what is wrong with it if it is malformed (a Rejection
    if the node cannot take batches now). Its transactions are forwards when `validator` sent
    it; otherwise clients' transactions.

    A batch on a link no validator opened (an observer's, or anybody's) takes tokens through
    `charge` first: one for the batch, before it is decoded, and one for each message and
    transaction in it. Every consensus message costs a decoding and signature checks whether
    or not a validator signed it, so a batch of 8 MiB of forged ones held the node's loop for
    seconds; uncounted, anybody reaching the port could send them without end."""
    if validator is None:
        charge(1)
    try:
        batch = decode(raw, containers_max=PEER_BATCH_CONTAINERS)
    except EncodingError as exc:
        node.counters.reject("peer_malformed")
        return f"peer batch is not canonical msgpack: {exc}"
    if (
        not isinstance(batch, dict)
        or not isinstance(batch.get("messages"), list)
        or not (isinstance(batch.get("txs"), list))
    ):
        node.counters.reject("peer_malformed")
        return "peer batch must be a map with lists 'messages' and 'txs'"
    if validator is None and (batch["messages"] or batch["txs"]):
        charge(len(batch["messages"]) + len(batch["txs"]))
    node.receive_peer_batch(batch["messages"], batch["txs"], from_validator=validator is not None)
    return None


async def _close_peer_streams(app: web.Application) -> None:
    """Close the peers' streams before the server waits for open requests to finish."""
    streams = app[PEER_STREAMS_KEY]
    await asyncio.gather(
        *(
            stream.close(code=WSCloseCode.GOING_AWAY, message=b"node shutting down")
            for stream in list(streams)
        )
    )


async def peer_pending(request: web.Request) -> web.Response:
    """For a backup whose senders stalled: how far this node holds each one's ready run."""
    node = request.app[NODE_KEY]
    _charge_unproven(request)
    if node.paused_at is not None or node.halted is not None:
        return error(503, "node is paused or halted; ask again later")
    raw = await read_body(request)
    try:
        query = decode(raw, containers_max=PENDING_QUERY_CONTAINERS)
    except EncodingError as exc:
        return error(400, f"pending query is not canonical msgpack: {exc}")
    senders = query.get("senders") if isinstance(query, dict) else None
    if (
        not isinstance(senders, list)
        or len(senders) > PENDING_QUERY_MAX
        or not all(isinstance(sender, bytes) and len(sender) == 32 for sender in senders)
    ):
        return error(
            400,
            f"pending query must be a map with 'senders': up to {PENDING_QUERY_MAX} "
            "32-byte public keys",
        )
    body = encode(node.pending_runs(senders))
    return web.Response(body=body, content_type="application/msgpack")


async def peer_blocks(request: web.Request) -> web.Response:
    """Certified blocks for a peer catching up (msgpack: [[block, certificate], ...])."""
    node = request.app[NODE_KEY]
    _charge_unproven(request)
    try:
        start, end = blocks_query(request.query, node.storage.head().height)
    except ValueError as exc:
        return error(400, str(exc))
    rows = node.storage.block_range(start, end) if start <= end else []
    return web.Response(body=encode_blocks(rows), content_type="application/msgpack")


async def peer_history(request: web.Request) -> web.Response:
    """Certified blocks with what rebuilds the state after each, for a peer catching up."""
    node = request.app[NODE_KEY]
    _charge_unproven(request)
    try:
        start, end = blocks_query(request.query, node.storage.head().height)
    except ValueError as exc:
        return error(400, str(exc))
    if start > end:
        return web.Response(body=encode_history([], []), content_type="application/msgpack")
    rows = node.storage.history_range(start, end)
    proofs = node.storage.checkpoint_proofs(start, end)
    return web.Response(body=encode_history(rows, proofs), content_type="application/msgpack")


LOOPBACK = frozenset({"127.0.0.1", "::1"})


def _admin_only(request: web.Request) -> None:
    """Admin requests come from loopback, or carry the configured admin token; never from a
    page of another origin in a browser on the node's machine (see _from_another_site)."""
    elsewhere = _from_another_site(request)
    if elsewhere is not None:
        raise Rejection(
            f"admin endpoints refuse requests a browser sent for {elsewhere}", status=403
        )
    foreign = _foreign_host(request) if request.remote in LOOPBACK else None
    if request.remote in LOOPBACK and foreign is None:
        return
    token = request.app[LIMITS_KEY].admin_token
    if foreign is not None and not token_matches(request.headers.get("Authorization"), token):
        raise Rejection(
            "admin endpoints answer loopback under its own names (an IP address, localhost or "
            f"a validator's host), or with the admin token; not under {foreign[:100]!a}, which "
            "a page that rebound its name to this machine sends",
            status=403,
        )
    if token is None:
        raise Rejection(
            "admin endpoints answer on loopback only (this node has no admin token)", status=403
        )
    if not token_matches(request.headers.get("Authorization"), token):
        raise Rejection(
            "admin endpoints answer on loopback, or with 'Authorization: Bearer <admin token>'",
            status=403,
        )


def _foreign_host(request: web.Request) -> str | None:
    """The name the request's Host header gives this node, when loopback does not go by it.

    A page whose DNS name an attacker rebinds to 127.0.0.1 is, to the browser, of the same
    origin as the node it then reaches (Origin and Sec-Fetch-Site say so), and its requests come
    from loopback; only the Host still names the attacker's domain. Loopback goes by IP
    addresses, localhost, and the hosts the genesis names for the validators (which the CLI
    uses); a request naming anything else gets no admin answer without the token."""
    try:
        name = (request.url.host or "").rstrip(".").lower()
    except ValueError:  # a Host header yarl cannot parse
        return request.host
    if name == "localhost" or name.endswith(".localhost"):
        return None
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        pass
    else:
        return None
    node = request.app[NODE_KEY]
    if name in {v.host.lower() for v in node.genesis.validators}:
        return None
    return name


def _from_another_site(request: web.Request) -> str | None:
    """The page that made a browser send this request, when it is not one of this node's own.

    Any page a browser on the node's machine shows can POST to loopback without asking first (a
    form, or fetch with a text/plain body), so loopback alone does not say the operator asked.
    Browsers name the requesting page's origin (Origin) and how it relates to the target
    (Sec-Fetch-Site); the CLI and scripts send neither.
    """
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site not in ("same-origin", "none"):
        return f"a {site} page"
    origin = request.headers.get("Origin")
    if origin is not None and origin != f"{request.scheme}://{request.host}":
        return f"a page of {origin[:100]!a}"
    return None


def _pause_json(node: Node) -> dict[str, Any]:
    point = node.pause_point
    return {
        "armed": None if point is None else {"phase": str(point.phase), "seq_min": point.seq_min},
        "paused_at": node.paused_at,
        "held_inputs": node.held_inputs,
        "outbound_queued": sum(link["queued"] for link in node.peers.status()),
    }


async def admin_pause_status(request: web.Request) -> web.Response:
    _admin_only(request)
    return web.json_response(_pause_json(request.app[NODE_KEY]))


async def admin_pause(request: web.Request) -> web.Response:
    """Arm a pause point: {"phase": one of pause.Phase, "seq_min": optional int}."""
    _admin_only(request)
    node = request.app[NODE_KEY]
    phases = ", ".join(p.value for p in pause.Phase)
    expected = f'expected {{"phase": one of {phases}, "seq_min": non-negative integer}}'
    try:
        body = json.loads(await read_body(request))
    except (ValueError, RecursionError) as exc:  # also UnicodeDecodeError; too deep nesting
        raise Rejection(f"{expected}; the body is not JSON: {exc!r}"[:300]) from None
    if not isinstance(body, dict) or set(body) - {"phase", "seq_min"}:
        raise Rejection(f"{expected}, got {str(body)[:80]}")
    try:
        phase = pause.Phase(str(body.get("phase")))
    except ValueError:
        raise Rejection(f"{expected}; got phase {str(body.get('phase'))[:40]!r}") from None
    seq_min = body.get("seq_min", 0)
    if isinstance(seq_min, bool) or not isinstance(seq_min, int) or not 0 <= seq_min <= HEIGHT_MAX:
        raise Rejection(f"{expected}; got seq_min {str(seq_min)[:40]}")
    node.arm_pause(pause.PausePoint(phase=phase, seq_min=seq_min))
    return web.json_response(_pause_json(node))


async def admin_resume(request: web.Request) -> web.Response:
    _admin_only(request)
    node = request.app[NODE_KEY]
    node.resume()
    return web.json_response(_pause_json(node))


def _faults_json(node: Node) -> dict[str, Any]:
    return node.faults.status([link.name for link in node.peers.links.values()])


async def admin_faults_status(request: web.Request) -> web.Response:
    _admin_only(request)
    return web.json_response(_faults_json(request.app[NODE_KEY]))


async def admin_faults(request: web.Request) -> web.Response:
    """Set or clear per-peer fault rules, or reseed (see the module docstring). The whole
    request is checked before any of it is applied: a refused one changes nothing."""
    _admin_only(request)
    node = request.app[NODE_KEY]
    try:
        body = json.loads(await read_body(request))
    except (ValueError, RecursionError) as exc:  # also UnicodeDecodeError; too deep nesting
        raise Rejection(f"expected a JSON object; the body is not JSON: {exc!r}"[:300]) from None
    if not isinstance(body, dict):
        raise Rejection("expected a JSON object")
    peers = _fault_peers(node, body.pop("peer", "*"))
    clear = body.pop("clear", False)
    seed = body.pop("seed", None)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise FaultSpecError(f"seed must be an integer, got {seed!r}")
    if clear is not True and clear is not False:
        raise FaultSpecError(f"clear must be true or false, got {clear!r}")
    if clear and body:
        raise FaultSpecError("clear takes no fault fields")
    rule = None
    if not clear and (body or seed is None):
        try:
            rule = LinkFaults.from_json(body)
        except TypeError as exc:
            raise FaultSpecError(f"malformed fault rule: {exc}") from exc
    if seed is not None:
        node.faults.reseed(seed)
    if clear:
        for peer in peers:
            node.faults.clear(peer)
    elif rule is not None:
        for peer in peers:
            node.faults.set(peer, rule)
        log.warning("fault injection towards %s: %s", ", ".join(peers), rule)
    return web.json_response(_faults_json(node))


def _fault_peers(node: Node, peer: object) -> list[str]:
    names = [link.name for link in node.peers.links.values()]
    if peer == "*":
        return names
    if peer not in names:
        raise FaultSpecError(f"peer must be one of {', '.join(names)} or '*', got {peer!r}")
    return [str(peer)]


def server_runner(app: web.Application, limits: ApiLimits) -> web.AppRunner:
    """The app's runner. keepalive_timeout closes a connection idle between requests, and
    (aiohttp >= 3.14.4) one that has not sent a whole request line and headers that long after
    connecting; read_body bounds the time a body may take, and lingering_time how long the
    server still reads (and discards) the rest of a body it answered without reading. On the
    way out, requests still in flight get SHUTDOWN_GRACE_S to finish (see serve)."""
    return web.AppRunner(
        app,
        access_log=None,
        keepalive_timeout=limits.idle_timeout_s,
        lingering_time=limits.body_timeout_s,
        shutdown_timeout=SHUTDOWN_GRACE_S,
    )


def listen(host: str, port: int) -> socket.socket:
    """The node's listening socket, bound before anything else is opened: a second process
    started for a node that runs already fails here, before it touches the node's database."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        return socket.create_server((host, port), family=family)
    except OSError as exc:
        raise ListenError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc


async def serve(
    node: Node, listener: socket.socket, stop: asyncio.Event, limits: ApiLimits | None = None
) -> None:
    """Run the node and its HTTP server on `listener` (see `listen`) until `stop` is set,
    then shut down gracefully: requests in flight get SHUTDOWN_GRACE_S, then are cut."""
    limits = limits or ApiLimits()
    runner = server_runner(create_app(node, limits), limits)
    await runner.setup()
    await web.SockSite(runner, listener).start()
    await node.start()
    host, port = listener.getsockname()[:2]
    log.info("listening on http://%s:%d", host, port)
    try:
        await stop.wait()
    finally:
        log.info("shutting down")
        await runner.cleanup()
        await node.stop()
        log.info("stopped")
