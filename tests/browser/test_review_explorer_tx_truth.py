"""The transaction view in headless Chromium against a real in-process node: a receipt that did
not settle its transaction (it failed a gate without using the nonce, so a later block may
still run it) is shown as such and followed until a block settles it, and a search for text
that is no hash gets a clear answer instead of a page stuck on "Looking up", also when it is
typed before a slow node's info has reached the page.

Blocks are built by hand and committed through the node's own path for executed blocks."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from aiohttp.typedefs import Handler, Middleware

from ledger.tx import Transaction
from node.api import create_app
from node.explorer import setup_explorer
from node.service import Node
from node.storage import Storage
from tests.browser.cdp import Page, chromium_page, find_chromium
from tests.node.conftest import Setup, certify, make_setup, next_block, steel_received

pytestmark = [
    pytest.mark.slow,
    pytest.mark.integration,
    pytest.mark.skipif(find_chromium() is None, reason="no Chromium on PATH"),
]

TX_RESULT = "document.getElementById('tx-result')"


def _execute(node: Node, setup: Setup, txs: Sequence[Transaction]) -> None:
    block = next_block(setup, node.storage, txs)
    node._execute(block, certify(setup, block))


@pytest.fixture
def setup() -> Setup:
    return make_setup()


@contextlib.asynccontextmanager
async def _serving(
    setup: Setup, tmp_path: Path, *, middlewares: Sequence[Middleware] = ()
) -> AsyncIterator[tuple[Node, str]]:
    """Validator 1 (a backup whose peers do not answer: nothing moves unless a test commits)
    serving the explorer, behind `middlewares`; the node and its base URL."""
    node = Node(
        name="node1",
        genesis=setup.genesis,
        keys=setup.validator_keys[1],
        storage=Storage(tmp_path / "chain.sqlite"),
    )
    await node.start()
    app = create_app(node)
    setup_explorer(app)
    app.middlewares.extend(middlewares)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield node, str(server.make_url("")).rstrip("/")
    finally:
        await server.close()
        await node.stop()


@pytest.fixture
async def served(setup: Setup, tmp_path: Path) -> AsyncIterator[tuple[Node, str]]:
    async with _serving(setup, tmp_path) as serving:
        yield serving


async def _wait_until_ready(page: Page, setup: Setup) -> None:
    """Until the page shows the node's info, which it asks for once its script has run (the chip
    holds a placeholder before, so any text in it is not a sign of readiness)."""
    chain_id = json.dumps(setup.genesis.chain_id)
    await page.wait_for(
        f"document.getElementById('chain-id').textContent === {chain_id}",
        what="the node's info on the page",
    )


async def _page_text(page: Page) -> str:
    text: str = await page.evaluate(f"{TX_RESULT}.innerText")
    return text


async def test_an_unsettled_receipt_is_shown_unsettled_and_followed_until_it_settles(
    served: tuple[Node, str], setup: Setup
) -> None:
    node, url = served
    chromium = find_chromium()
    assert chromium is not None
    early = steel_received(
        setup, 1
    )  # ahead of the supplier's next nonce: fails a gate, uses nothing
    _execute(node, setup, [early])
    async with chromium_page(chromium) as page:
        await page.navigate(f"{url}/explorer/#tx/{early.hash.hex()}")
        await page.wait_for(f"{TX_RESULT}.dataset.status === 'committed'", what="the receipt")
        text = await _page_text(page)
        # The node says the failure is not final (settled false): the page must not present
        # a plain failed, committed transaction.
        assert "not settled" in text.lower(), text
        # The page asks again on every refresh; what it shows stays meanwhile (it used to
        # flash "Looking up" each time, which a reader, or this test, could catch).
        await page.evaluate(
            f"(() => {{ window.flashes = 0; new MutationObserver(() => {{"
            f" if ({TX_RESULT}.innerText.includes('Looking up')) window.flashes += 1; }})"
            f".observe({TX_RESULT}, {{ childList: true, subtree: true }}); }})()"
        )
        # A later block includes it in its turn and it runs: the open page follows.
        _execute(node, setup, [steel_received(setup, 0), early])
        await page.wait_for(
            f"{TX_RESULT}.querySelector('a[href=\"#block/2\"]') !== null"
            f" && {TX_RESULT}.querySelector('.badge.ok') !== null",
            timeout_s=15,
            what="the settling inclusion in block 2",
        )
        assert "failed" not in (await _page_text(page)).lower()
        assert await page.evaluate("window.flashes") == 0
        assert not [line for line in page.console if line.startswith("exception")]


@pytest.mark.parametrize("typed", ["..", "?x=1", "nothex", "%zz", "#"])
async def test_a_search_for_no_hash_says_so(
    served: tuple[Node, str], setup: Setup, typed: str
) -> None:
    _, url = served
    chromium = find_chromium()
    assert chromium is not None
    async with chromium_page(chromium) as page:
        await page.navigate(f"{url}/explorer/")
        await _wait_until_ready(page, setup)
        await page.type_and_enter("#search-input", typed)
        await page.wait_for(
            f"{TX_RESULT}.dataset.status === 'unknown'",
            timeout_s=10,
            what=f"an answer for {typed!r}",
        )
        text = await _page_text(page)
        assert "hash" in text.lower(), text
        errors = [line for line in page.console if line.startswith("exception")]
        assert not errors, json.dumps(errors)


async def test_a_search_typed_before_the_node_info_arrives_is_answered(
    setup: Setup, tmp_path: Path
) -> None:
    # A slow node: its info is held until the search has its answer. The search box must not
    # fall back to submitting the form, which reloads the page and loses the search.
    info_released = asyncio.Event()

    @web.middleware
    async def hold_info(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path == "/explorer/info":
            await info_released.wait()
        return await handler(request)

    chromium = find_chromium()
    assert chromium is not None
    async with _serving(setup, tmp_path, middlewares=[hold_info]) as (_, url):
        try:
            async with chromium_page(chromium) as page:
                await page.navigate(f"{url}/explorer/")
                await page.wait_for("window.explorer !== undefined", what="the page's script")
                await page.type_and_enter("#search-input", "nothex")
                await page.wait_for(
                    f"{TX_RESULT}.dataset.status === 'unknown'",
                    timeout_s=10,
                    what="an answer while the node's info is held",
                )
                assert await page.evaluate("location.pathname + location.search") == "/explorer/"
                assert await page.evaluate("window.explorer.info") is None  # still held
                info_released.set()
                await _wait_until_ready(page, setup)
                assert await page.evaluate("location.hash") == "#tx/nothex"
                errors = [line for line in page.console if line.startswith("exception")]
                assert not errors, json.dumps(errors)
        finally:
            info_released.set()
