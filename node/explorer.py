"""The explorer: a live web page every node serves, and the few endpoints only the page needs.

  GET /explorer/               the page (static HTML, CSS and JavaScript from node/static/)
  GET /explorer/info           the chain id, this node, the validators from the genesis
  GET /explorer/cluster        every validator's /status, fetched by this node with a short timeout
                               (so the page needs no cross-origin calls; a node that does not
                               answer is reported down)
  GET /explorer/events         server-sent events: `head` whenever the height or view changes
  GET /explorer/views          view-change history: from the block headers (the first committed
                               block of each view), the node's own record if it keeps one, and the
                               changes this page's watcher observed

Everything else the page shows comes from the node's JSON API (/blocks, /tx, /state, /events).
One watcher task per app polls the head and view every WATCH_MS and fans changes out to the
event streams; it is started and cancelled in one cleanup context. Read-only JSON answers carry
`Access-Control-Allow-Origin: *`, so a page served by one node can fall back to asking the
others directly when its own node stops answering.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import msgpack
from aiohttp import web

from ledger.block import BlockHeader
from node.peers import read_capped
from node.stages import STAGES

if TYPE_CHECKING:
    from node.service import Node

STATIC_DIR = Path(__file__).resolve().parent / "static"
WATCH_MS = 200
PEER_STATUS_TIMEOUT_S = 1.0
CLUSTER_CACHE_MS = 250
KEEPALIVE_S = 15.0
SUBSCRIBER_QUEUE_MAX = 16
OBSERVED_VIEWS_MAX = 1000
# Header decodes one /explorer/views request may spend finding where views begin.
VIEW_SEARCH_DECODES_MAX = 400
# The /status fields a cluster row carries, with the JSON types a node reports them as. A peer's
# status is whatever it sends: a field of another type is shown as unknown (None).
STATUS_FIELDS: dict[str, tuple[type, ...]] = {
    "name": (str,),
    "index": (int,),
    "role": (str,),
    "height": (int,),
    "head": (str,),
    "state_digest": (str,),
    "timestamp_ms": (int,),
    "view": (int,),
    "primary": (int,),
    "primary_name": (str,),
    "is_primary": (bool,),
    "view_active": (bool,),
    "mempool": (int,),
    "last_commit_ms": (int,),
    "halted": (str,),
}
STATUS_TEXT_MAX = 300  # characters of a text field kept from a peer's status
# Bytes of a peer's /status read at most: an honest one is a few KiB (peers, stages, counters).
STATUS_BYTES_MAX = 256 * 1024


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(slots=True)
class Explorer:
    """The explorer's state in one app: event-stream subscribers, observed views, caches."""

    node: Node
    subscribers: set[asyncio.Queue[dict[str, Any] | None]] = field(default_factory=set)
    # The newest OBSERVED_VIEWS_MAX views this node was seen in, oldest first.
    observed_views: deque[dict[str, Any]] = field(
        default_factory=lambda: deque(maxlen=OBSERVED_VIEWS_MAX)
    )
    last_seen: dict[str, Any] | None = None
    # Headers read by view searches still under way, and what finished ones found: the first
    # block of each view by height, and how far up the chain they looked (see chain_views).
    header_views: dict[int, tuple[int, int, int]] = field(default_factory=dict)
    view_starts: dict[int, tuple[int, int, int]] = field(default_factory=dict)
    views_searched_to: int = 0
    cluster_cache: tuple[int, list[dict[str, Any]]] | None = None
    # The round of /status asks under way, which every request arriving meanwhile waits for.
    cluster_fetch: asyncio.Task[list[dict[str, Any]]] | None = None
    session: aiohttp.ClientSession | None = None

    def snapshot(self) -> dict[str, Any]:
        head = self.node.storage.head()
        replica = self.node.replica
        return {
            "height": head.height,
            "head": head.hash.hex(),
            "timestamp_ms": head.timestamp_ms,
            "view": None if replica is None else replica.view,
            "primary": None if replica is None else replica.primary,
        }

    def watch_once(self) -> None:
        """Compare the head and view with the last look; record and publish what changed."""
        seen = self.snapshot()
        last = self.last_seen
        if last is not None and (seen["height"], seen["view"]) == (last["height"], last["view"]):
            return
        self.last_seen = seen
        changed = last is None or seen["view"] != last["view"]
        if seen["view"] is not None and changed:
            self.observed_views.append(
                {
                    "view": seen["view"],
                    "primary": seen["primary"],
                    "at_ms": now_ms(),
                    "height": seen["height"],
                    "kind": "start" if last is None else "entered",
                }
            )
        self.publish({**seen, "now_ms": now_ms()})

    def publish(self, event: dict[str, Any] | None) -> None:
        for queue in self.subscribers:
            if queue.full():
                queue.get_nowait()  # only the newest head matters to a slow reader
            queue.put_nowait(event)


EXPLORER_KEY = web.AppKey("explorer", Explorer)


# -- the page ------------------------------------------------------------------------------


async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})


async def to_index(request: web.Request) -> web.Response:
    raise web.HTTPFound("/explorer/")


async def info(request: web.Request) -> web.Response:
    node = request.app[EXPLORER_KEY].node
    genesis = node.genesis
    return web.json_response(
        {
            "chain_id": genesis.chain_id,
            "node": {"name": node.name, "index": node.index, "observer": node.replica is None},
            "validators": [
                {"index": i, "name": v.name, "url": v.url} for i, v in enumerate(genesis.validators)
            ],
            "f": genesis.f,
            "block_interval_ms": node.params.block_interval_ms,
            "view_change_timeout_ms": node.params.view_change_timeout_ms,
            "now_ms": now_ms(),
        }
    )


# -- the cluster, as this node sees it -----------------------------------------------------


def _status_row(status: dict[str, Any]) -> dict[str, Any]:
    """The fields of a node's /status the cluster view shows, each of its expected type."""
    row = {key: _typed(status.get(key), kinds) for key, kinds in STATUS_FIELDS.items()}
    counters = _as_map(status.get("counters"))
    row["view_changes"] = _typed(counters.get("view_changes"), (int,))
    row["txs_committed"] = _typed(counters.get("txs_committed"), (int,))
    # Where a block's time goes there (node/stages.py): per stage, a count and two times.
    stages = _as_map(status.get("stages"))
    row["stages"] = {
        stage: {
            "count": _typed(timing.get("count"), (int,)),
            "p50_ms": _typed(timing.get("p50_ms"), (int, float)),
            "p90_ms": _typed(timing.get("p90_ms"), (int, float)),
        }
        for stage in STAGES
        if (timing := _as_map(stages.get(stage)))
    }
    return row


def _typed(value: Any, kinds: tuple[type, ...]) -> Any:
    """`value` if it is of one of `kinds` (a bool is no number here), text cut short; else None."""
    if isinstance(value, bool) and bool not in kinds:
        return None
    if not isinstance(value, kinds):
        return None
    if isinstance(value, str):
        return value[:STATUS_TEXT_MAX]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _as_map(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


async def _peer_status(
    session: aiohttp.ClientSession, index: int, name: str, url: str
) -> dict[str, Any]:
    row: dict[str, Any] = {"index": index, "name": name, "url": url, "self": False}
    try:
        async with session.get(f"{url}/status") as response:
            if response.status != 200:
                return {**row, "alive": False, "error": f"status {response.status}"}
            # A faulty validator's answer may be of any size or depth: read no more than an
            # honest status can hold, and a decoder that gives up is an answer that says nothing.
            status = json.loads(await read_capped(response, STATUS_BYTES_MAX))
    except (aiohttp.ClientError, TimeoutError, ValueError, RecursionError) as exc:
        return {**row, "alive": False, "error": (str(exc) or type(exc).__name__)[:STATUS_TEXT_MAX]}
    if not isinstance(status, dict):
        return {**row, "alive": False, "error": f"/status answered a {type(status).__name__}"}
    return {**row, "alive": True, **_status_row(status), "index": index, "name": name}


async def cluster(request: web.Request) -> web.Response:
    """Every validator's status: the kept answer while it is fresh, else the round of asks
    under way, or a new one. Requests arriving while a round is under way (it takes up to
    PEER_STATUS_TIMEOUT_S when a peer is slow or down) share it rather than each asking every
    validator again."""
    explorer = request.app[EXPLORER_KEY]
    cached = explorer.cluster_cache
    if cached is not None and now_ms() - cached[0] < CLUSTER_CACHE_MS:
        rows = cached[1]
    else:
        if explorer.cluster_fetch is None:
            explorer.cluster_fetch = asyncio.create_task(_fetch_and_keep(explorer))
        # Shielded: a client that goes away does not cancel the round the others wait for.
        rows = await asyncio.shield(explorer.cluster_fetch)
    return web.json_response({"now_ms": now_ms(), "nodes": rows})


async def _fetch_and_keep(explorer: Explorer) -> list[dict[str, Any]]:
    try:
        rows = await _fetch_cluster(explorer)
        explorer.cluster_cache = (now_ms(), rows)
        return rows
    finally:
        explorer.cluster_fetch = None


async def _fetch_cluster(explorer: Explorer) -> list[dict[str, Any]]:
    node = explorer.node
    assert explorer.session is not None
    validators = node.genesis.validators
    peers = await asyncio.gather(
        *(
            _peer_status(explorer.session, i, v.name, v.url)
            for i, v in enumerate(validators)
            if i != node.index
        )
    )
    own_url = validators[node.index].url if node.replica is not None else None
    own = {"url": own_url, "self": True, "alive": True, **_status_row(node.status())}
    rows = sorted(peers, key=lambda row: int(row["index"]))
    # An observer is not in the genesis: it comes after the validators.
    position = node.index if node.replica is not None else len(rows)
    rows.insert(position, own)
    return rows


# -- live updates --------------------------------------------------------------------------


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


async def events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: `head` now, then at every change of height or view."""
    explorer = request.app[EXPLORER_KEY]
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(SUBSCRIBER_QUEUE_MAX)
    explorer.subscribers.add(queue)
    try:
        await response.write(b"retry: 1000\n\n")
        await response.write(_sse("head", {**explorer.snapshot(), "now_ms": now_ms()}))
        while True:
            try:
                event = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
            except TimeoutError:
                await response.write(b": keepalive\n\n")
                continue
            if event is None:
                break  # the app is shutting down
            await response.write(_sse("head", event))
    except (ConnectionResetError, aiohttp.ClientConnectionResetError):
        pass  # the page went away
    finally:
        explorer.subscribers.discard(queue)
    return response


async def _watch(explorer: Explorer) -> None:
    while True:
        explorer.watch_once()
        await asyncio.sleep(WATCH_MS / 1000)


# -- view-change history -------------------------------------------------------------------


def _header_view(explorer: Explorer, height: int) -> tuple[int, int, int]:
    """(view, proposer, timestamp_ms) from a stored block's header, read once: the header alone,
    not the block's transactions (a block of a thousand took a millisecond to decode whole)."""
    cached = explorer.header_views.get(height)
    if cached is not None:
        return cached
    rows = explorer.node.storage.block_range(height, height)
    header = BlockHeader.from_map(_stored_header(rows[0][1]))
    found = (header.view, header.proposer, header.timestamp_ms)
    explorer.header_views[height] = found
    return found


def _stored_header(block: bytes) -> Any:
    """The header map of a stored block's canonical encoding, {"header": ..., "txs": [...]}:
    its first entry, keys being sorted."""
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=True)
    unpacker.feed(block)
    if unpacker.read_map_header() != 2 or unpacker.unpack() != "header":
        raise ValueError("a stored block is not a map of its header and transactions")
    return unpacker.unpack()


def chain_views(explorer: Explorer, head: int) -> tuple[list[dict[str, Any]], bool]:
    """The first committed block of each view, by bisection over heights (views do not fall
    along the chain, so a range whose ends share a view holds no change); and whether the
    search stopped early at VIEW_SEARCH_DECODES_MAX. Committed blocks never change, so what
    one search found is kept, and the next one looks only above the head it reached."""
    if head < 1:
        return [], False
    budget = [VIEW_SEARCH_DECODES_MAX]
    starts = explorer.view_starts
    if not starts:
        starts[1] = _header_view(explorer, 1)

    def view_at(height: int) -> int | None:
        if height not in explorer.header_views:
            if budget[0] <= 0:
                return None
            budget[0] -= 1
        return _header_view(explorer, height)[0]

    # Newest first: when the budget runs out, the views missing are the oldest ones.
    stack = [(max(1, explorer.views_searched_to), head)]
    while stack:
        low, high = stack.pop()
        low_view, high_view = view_at(low), view_at(high)
        if low_view is None or high_view is None or low_view == high_view:
            continue
        if high == low + 1:
            starts[high] = _header_view(explorer, high)
            continue
        middle = (low + high) // 2
        stack.extend([(low, middle), (middle, high)])
    truncated = budget[0] <= 0
    if not truncated and head > explorer.views_searched_to:
        explorer.views_searched_to = head
        # Kept: the headers at the ends of the ranges the next searches start from.
        explorer.header_views = {head: explorer.header_views[head]}
    result = [
        {"view": view, "first_height": height, "proposer": proposer, "at_ms": timestamp_ms}
        for height, (view, proposer, timestamp_ms) in sorted(starts.items())
    ]
    return result, truncated


def _node_history(node: Node) -> list[dict[str, Any]]:
    """The newest OBSERVED_VIEWS_MAX views of the node's own record of the views it entered
    since it started: the record grows with every view change, and this answer is built on the
    event loop for every open views tab (`view_changes` says how many there were in all)."""
    newest = list(node.view_history)[-OBSERVED_VIEWS_MAX:]
    return [
        {"view": view, "at_ms": at_ms, "height": height, "primary": view % node.genesis.n}
        for view, at_ms, height in newest
    ]


async def views(request: web.Request) -> web.Response:
    explorer = request.app[EXPLORER_KEY]
    node = explorer.node
    blocks, truncated = chain_views(explorer, node.storage.head().height)
    names = [v.name for v in node.genesis.validators]
    return web.json_response(
        {
            "view": None if node.replica is None else node.replica.view,
            "view_changes": node.counters.view_changes,
            "validators": names,
            "blocks": blocks,
            "blocks_truncated": truncated,
            "node": _node_history(node),
            "observed": list(explorer.observed_views),
        }
    )


# -- wiring --------------------------------------------------------------------------------


async def _cors(request: web.Request, response: web.StreamResponse) -> None:
    """Let a page served by another node read this node's public JSON (GET only)."""
    if request.method in ("GET", "HEAD") and not request.path.startswith("/admin"):
        response.headers.setdefault("Access-Control-Allow-Origin", "*")


def _lifecycle(explorer: Explorer) -> Callable[[web.Application], AsyncIterator[None]]:
    async def context(app: web.Application) -> AsyncIterator[None]:
        timeout = aiohttp.ClientTimeout(total=PEER_STATUS_TIMEOUT_S, connect=PEER_STATUS_TIMEOUT_S)
        explorer.session = aiohttp.ClientSession(timeout=timeout)
        watcher = asyncio.create_task(_watch(explorer), name="explorer-watcher")
        try:
            yield
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            fetch = explorer.cluster_fetch
            if fetch is not None:
                fetch.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await fetch
            await explorer.session.close()

    return context


async def _close_streams(app: web.Application) -> None:
    """End the event streams before the server waits for open requests to finish."""
    app[EXPLORER_KEY].publish(None)


def setup_explorer(app: web.Application) -> None:
    """Add the explorer page and its endpoints for the node in `app[NODE_KEY]` (idempotent)."""
    # node.api wires this module into create_app; importing it at the top would be circular.
    from node.api import NODE_KEY  # noqa: PLC0415

    if EXPLORER_KEY in app:
        return
    explorer = Explorer(node=app[NODE_KEY])
    app[EXPLORER_KEY] = explorer
    app.router.add_get("/", to_index)
    app.router.add_get("/explorer", to_index)
    app.router.add_get("/explorer/", index)
    app.router.add_get("/explorer/info", info)
    app.router.add_get("/explorer/cluster", cluster)
    app.router.add_get("/explorer/events", events)
    app.router.add_get("/explorer/views", views)
    app.router.add_static("/explorer/static", STATIC_DIR, append_version=False)
    app.on_response_prepare.append(_cors)
    app.on_shutdown.append(_close_streams)
    app.cleanup_ctx.append(_lifecycle(explorer))
