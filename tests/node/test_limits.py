"""Overload limits: a full mempool, the per-client rate limit, the admin token, and connections
that are slow or idle (slowloris), cut off after a bounded time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import msgpack
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from ledger.genesis import Params
from ledger.tx import Transaction
from node import service
from node.api import Handler, create_app, server_runner
from node.limits import ApiLimits, RateLimited, RateLimiter
from node.service import Node
from node.storage import Storage
from tests.node.conftest import BODY_BYTES_MAX, CHAIN_ID, PEER_PROTOCOL, Client, Setup, make_setup
from tests.node.test_openapi import check_answer

TOKEN = "s3cret-admin-token-for-tests"


def _tx(setup: Setup, nonce: int) -> Transaction:
    return Transaction.create(
        setup.identities["supplier"],
        chain_id=CHAIN_ID,
        nonce=nonce,
        contract="inventory",
        method="receive",
        args={"item": "steel", "location": "main", "qty": 1},
    )


async def _backup(setup: Setup, path: Path) -> Node:
    node = Node(
        name="node1", genesis=setup.genesis, keys=setup.validator_keys[1], storage=Storage(path)
    )
    await node.start()
    return node


# -- a full mempool --------------------------------------------------------------------------


async def test_a_half_full_mempool_answers_clients_503_with_retry_after(tmp_path: Path) -> None:
    # Clients may fill half the pool; the other half is room for what peers forward.
    setup = make_setup(Params(body_bytes_max=BODY_BYTES_MAX, mempool_txs_max=4))
    node = await _backup(setup, tmp_path / "chain.sqlite")
    try:
        async with TestClient(TestServer(create_app(node)), headers=PEER_PROTOCOL) as client:
            for nonce in (0, 1):
                assert (await client.post("/tx", data=_tx(setup, nonce).to_wire())).status == 202
            response = await client.post("/tx", data=_tx(setup, 2).to_wire())
            body = await response.read()
            assert response.status == 503
            assert response.headers["Retry-After"] == "1"
            assert b"room for what peers forward" in body
            check_answer("POST", "/tx", response.status, response.headers, body)
            assert len(node.mempool) == 2
            assert node.counters.rejected == {"mempoolbusy": 1}
            # The same transaction forwarded by a peer finds room.
            node.receive_peer_batch([], [_tx(setup, 2).to_wire()], from_validator=True)
            deadline = asyncio.get_running_loop().time() + 5
            while len(node.mempool) < 3:
                assert asyncio.get_running_loop().time() < deadline, "forward not admitted"
                await asyncio.sleep(0.01)
            # So does this validator's own (its oracle's reports).
            node.submit(_tx(setup, 3).to_wire(), from_client=False)
            assert len(node.mempool) == 4
    finally:
        await node.stop()


async def test_a_full_admission_queue_answers_503_and_admits_what_it_queued(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup = make_setup(Params(body_bytes_max=BODY_BYTES_MAX))
    monkeypatch.setattr(service, "ADMISSION_BACKLOG_MAX", 3)
    node = await _backup(setup, tmp_path / "chain.sqlite")
    try:
        async with TestClient(TestServer(create_app(node)), headers=PEER_PROTOCOL) as client:
            # As if two transactions already waited for admission.
            node._admission_backlog = 2
            body = msgpack.packb([_tx(setup, 0).to_wire(), _tx(setup, 1).to_wire()])
            response = await client.post("/txs", data=body)
            answer = await response.read()
            assert response.status == 503
            assert response.headers["Retry-After"] == "1"
            assert b"node is busy" in answer
            check_answer("POST", "/txs", response.status, response.headers, answer)
            assert len(node.mempool) == 0
            node._admission_backlog = 0
            response = await client.post("/txs", data=body)
            results = (await response.json())["results"]
            assert response.status == 200
            assert [sorted(r) for r in results] == [["hash"], ["hash"]]
            assert len(node.mempool) == 2
            assert node.admission_backlog == 0
            assert node.counters.rejected["busy"] == 1
    finally:
        await node.stop()


# -- the rate limit --------------------------------------------------------------------------


def test_token_bucket_refills_at_its_rate_and_caps_at_its_burst() -> None:
    now = [100.0]
    limiter = RateLimiter(rate_per_s=2, burst=4, clock=lambda: now[0])
    limiter.take("a", 4)
    with pytest.raises(RateLimited) as refused:
        limiter.take("a")
    assert refused.value.retry_after_s == 1
    limiter.take("b")  # another client has its own bucket
    now[0] += 1.0  # two tokens back
    limiter.take("a", 2)
    with pytest.raises(RateLimited):
        limiter.take("a")
    now[0] += 100.0  # never more than the burst
    limiter.take("a", 4)
    with pytest.raises(RateLimited):
        limiter.take("a")
    with pytest.raises(RateLimited, match="burst"):
        limiter.take("c", 5)
    assert limiter.refused == 4


async def test_client_over_its_rate_gets_429_and_nothing_changes(node: Node, setup: Setup) -> None:
    limits = ApiLimits(rate_limit_per_s=0.5, rate_limit_burst=3)
    async with TestClient(TestServer(create_app(node, limits)), headers=PEER_PROTOCOL) as client:
        for _ in range(3):
            assert (await client.get("/status")).status == 200
        response = await client.post("/tx", data=_tx(setup, 0).to_wire())
        body = await response.read()
        assert response.status == 429
        assert int(response.headers["Retry-After"]) >= 1
        assert b"rate limit exceeded" in body
        check_answer("POST", "/tx", response.status, response.headers, body)
        assert len(node.mempool) == 0
        # Admin routes are not counted; peer reads are, unless a validator proves it asks
        # (tests/node/test_peer_reads_limit.py).
        assert (await client.get("/peer/blocks?from=1")).status == 429
        assert (await client.get("/admin/pause")).status == 200


async def test_a_batch_takes_one_token_per_transaction(node: Node, setup: Setup) -> None:
    limits = ApiLimits(rate_limit_per_s=0.5, rate_limit_burst=4)
    async with TestClient(TestServer(create_app(node, limits)), headers=PEER_PROTOCOL) as client:
        batch = msgpack.packb([_tx(setup, n).to_wire() for n in range(5)])
        response = await client.post("/txs", data=batch)
        assert response.status == 429
        assert len(node.mempool) == 0


# -- the admin token -------------------------------------------------------------------------


def _from(address: str) -> web.middleware:  # type: ignore[valid-type]
    """Make requests look as if they came from `address` (the test server is on loopback)."""

    @web.middleware
    async def pretend(request: web.Request, handler: Handler) -> web.StreamResponse:
        return await handler(request.clone(remote=address))

    return pretend


@pytest.fixture
async def remote_admin(node: Node) -> AsyncIterator[dict[str, Client]]:
    clients: dict[str, Client] = {}
    for name, limits in (("no_token", ApiLimits()), ("token", ApiLimits(admin_token=TOKEN))):
        app = create_app(node, limits)
        app.middlewares.insert(0, _from("192.0.2.7"))
        clients[name] = TestClient(TestServer(app), headers=PEER_PROTOCOL)
        await clients[name].start_server()
    try:
        yield clients
    finally:
        for client in clients.values():
            await client.close()


async def test_admin_off_loopback_without_a_configured_token_is_forbidden(
    remote_admin: dict[str, Client],
) -> None:
    client = remote_admin["no_token"]
    response = await client.get("/admin/pause", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status == 403
    assert "loopback only" in (await response.json())["error"]


@pytest.mark.parametrize(
    "header",
    [None, "Bearer wrong-token-of-some-length", f"Basic {TOKEN}", f"Bearer {TOKEN}x", "Bearer"],
)
async def test_admin_off_loopback_needs_the_right_token(
    remote_admin: dict[str, Client],
    node: Node,
    header: str | None,
) -> None:
    client = remote_admin["token"]
    headers = {} if header is None else {"Authorization": header}
    response = await client.post("/admin/pause", json={"phase": "after-commit"}, headers=headers)
    assert response.status == 403
    assert "Authorization: Bearer" in (await response.json())["error"]
    assert node.pause_point is None


async def test_admin_off_loopback_with_the_token_and_on_loopback_without(
    remote_admin: dict[str, Client],
    client: Client,
    node: Node,
) -> None:
    remote = remote_admin["token"]
    response = await remote.post(
        "/admin/pause",
        json={"phase": "after-commit", "seq_min": 9},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert response.status == 200
    assert node.pause_point is not None and node.pause_point.seq_min == 9
    assert (await client.post("/admin/resume")).status == 200  # loopback, no token
    assert node.pause_point is None


def test_a_short_admin_token_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 16"):
        ApiLimits(admin_token="short")


# -- slow and idle connections ---------------------------------------------------------------

LIMITS = ApiLimits(idle_timeout_s=0.5, body_timeout_s=0.5)
CUT_OFF_WITHIN_S = 3.0  # the timeouts above plus slack for a loaded machine


@pytest.fixture
async def server(node: Node) -> AsyncIterator[tuple[str, int]]:
    runner = server_runner(create_app(node, LIMITS), LIMITS)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        sockets = runner.addresses
        host, port = sockets[0][:2]
        yield host, port
    finally:
        await runner.cleanup()


async def _closed_within(reader: asyncio.StreamReader, timeout_s: float) -> bytes:
    """Read until the server closes the connection (a reset counts: the server closed with our
    bytes unread); fail after `timeout_s`."""
    try:
        return await asyncio.wait_for(reader.read(), timeout_s)
    except ConnectionResetError:
        return b""


async def _dribble(writer: asyncio.StreamWriter, data: bytes, pause_s: float) -> bool:
    """Send `data` a byte at a time; False once the server has closed the connection."""
    for byte in data:
        if writer.is_closing():
            return False
        try:
            writer.write(bytes([byte]))
            await writer.drain()
        except ConnectionError:
            return False
        await asyncio.sleep(pause_s)
    return True


async def test_a_connection_that_sends_nothing_is_closed(server: tuple[str, int]) -> None:
    reader, writer = await asyncio.open_connection(*server)
    started = time.monotonic()
    try:
        assert await _closed_within(reader, CUT_OFF_WITHIN_S) == b""
        assert time.monotonic() - started >= LIMITS.idle_timeout_s * 0.9
    finally:
        writer.close()


async def test_dribbled_headers_are_cut_off(server: tuple[str, int]) -> None:
    reader, writer = await asyncio.open_connection(*server)
    headers = b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"X-Slow: " + b"a" * 200
    started = time.monotonic()
    try:
        sender = asyncio.create_task(_dribble(writer, headers, 0.02))
        assert await _closed_within(reader, CUT_OFF_WITHIN_S) == b""
        assert time.monotonic() - started < CUT_OFF_WITHIN_S
        sender.cancel()
    finally:
        writer.close()


async def test_a_dribbled_body_gets_408_and_the_connection_closes(
    server: tuple[str, int], node: Node
) -> None:
    reader, writer = await asyncio.open_connection(*server)
    writer.write(
        b"POST /tx HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/msgpack\r\n"
        b"Content-Length: 1000\r\n\r\n"
    )
    await writer.drain()
    started = time.monotonic()
    try:
        sender = asyncio.create_task(_dribble(writer, b"\x00" * 1000, 0.02))
        answer = await asyncio.wait_for(reader.read(4096), CUT_OFF_WITHIN_S)
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert b"request body not received within 0.5 s" in answer
        await _closed_within(reader, CUT_OFF_WITHIN_S)
        assert time.monotonic() - started < CUT_OFF_WITHIN_S
        sender.cancel()
        assert len(node.mempool) == 0
    finally:
        writer.close()


async def test_an_idle_keep_alive_connection_is_closed(server: tuple[str, int]) -> None:
    reader, writer = await asyncio.open_connection(*server)
    try:
        writer.write(b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), CUT_OFF_WITHIN_S)
        assert status_line.startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        await _closed_within(reader, CUT_OFF_WITHIN_S)  # the rest of the answer, then EOF
        assert time.monotonic() - started >= LIMITS.idle_timeout_s * 0.9
    finally:
        writer.close()


# -- pages of other origins ------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://localhost:8000"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site", "Origin": "http://localhost:8000"},
    ],
    ids=["other-origin", "opaque-origin", "cross-site", "same-site"],
)
async def test_admin_refuses_what_a_browser_sends_for_a_page_of_another_origin(
    client: Client,
    node: Node,
    headers: dict[str, str],
) -> None:
    # A form or a no-cors fetch from any page: loopback, a text/plain body, no preflight.
    forged = {"Content-Type": "text/plain", **headers}
    faults = await (await client.get("/admin/faults")).json()
    for path, body in (
        ("/admin/pause", b'{"phase": "after-commit"}'),
        ("/admin/faults", b'{"peer": "*", "blocked": true}'),
    ):
        response = await client.post(path, data=body, headers=forged)
        assert response.status == 403, path
        assert "refuse requests a browser sent for a" in (await response.json())["error"]
    assert node.pause_point is None
    assert await (await client.get("/admin/faults")).json() == faults


async def test_admin_takes_its_own_pages_and_clients_that_name_no_page(
    client: Client,
    node: Node,
) -> None:
    own = str(client.make_url("")).rstrip("/")
    for headers in ({"Origin": own, "Sec-Fetch-Site": "same-origin"}, {"Sec-Fetch-Site": "none"}):
        response = await client.post(
            "/admin/pause", json={"phase": "after-commit"}, headers=headers
        )
        assert response.status == 200
        assert (await client.post("/admin/resume", headers=headers)).status == 200
    assert node.pause_point is None
