"""The explorer page in headless Chromium against a real 4-node cluster: new blocks arrive live,
a transaction is found by hash, and a killed node is shown as down while the others change view
and go on. Screenshots land in artifacts/screenshots/."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.explorer_cmd import explorer
from cli.layout import ClusterDir
from ledger.genesis import Params
from node.client import NodeClient
from tests.browser.cdp import Page, chromium_page, find_chromium
from tests.browser.cluster import explorer_cluster
from tests.browser.factory_day import run_factory_day
from tests.clusters import millchain

pytestmark = [pytest.mark.slow, pytest.mark.integration]

CHROMIUM = find_chromium()
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
ALIVE = "document.querySelectorAll('.node-card[data-alive=\"true\"]').length"
TOP_HEIGHT = "Number(document.querySelector('#block-list tbody tr')?.dataset.height || 0)"


def exists(selector: str) -> str:
    return f"!!document.querySelector({json.dumps(selector)})"


def card(node: str, alive: bool) -> str:
    return exists(f'.node-card[data-node="{node}"][data-alive="{str(alive).lower()}"]')


async def receive(layout: ClusterDir, url: str, qty: int) -> tuple[str, int]:
    """Book a delivery and wait for it; its hash and height."""
    async with NodeClient(url) as client:
        tx = await client.sign_and_submit(
            layout.identity_keys("supplier"),
            chain_id=layout.genesis().chain_id,
            contract="inventory",
            method="receive",
            args={"item": "bolt-m8", "location": "main", "qty": qty},
        )
        result = await client.wait_committed(tx.hash.hex(), 60)
        return tx.hash.hex(), int(result["height"])


async def shows_new_blocks(page: Page, layout: ClusterDir, url: str) -> str:
    before = await page.wait_for(TOP_HEIGHT, what="the block list")
    tx_hash, height = await receive(layout, url, 5)
    assert height > before
    # The page is not reloaded: the event stream brings the new head and the list follows.
    await page.wait_for(f"{TOP_HEIGHT} >= {height}", what=f"block {height} in the list")
    assert await page.evaluate("document.getElementById('live').dataset.state") == "live"
    await page.wait_for(
        f"document.querySelector('#block-detail .block-view')?.dataset.height === '{height}'",
        what="the latest block's detail",
    )
    detail = await page.evaluate("document.getElementById('block-detail').innerText")
    assert "inventory.receive" in detail and "Commit certificate".lower() in detail.lower()
    # Each card says where a block's time went on its node; the primary also times proposing.
    stages = 'document.querySelector(\'.node-card[data-node="{}"] [data-field="stages"]\')'
    await page.wait_for(
        f"{stages.format('node0')}?.innerText.includes('propose')",
        what="the primary's stages on its card",
    )
    backup = await page.evaluate(f"{stages.format('node2')}.innerText")
    assert backup.startswith("block p50 ms: pre-prepare") and "execute" in backup, backup
    await page.screenshot(SCREENSHOTS / "01-new-blocks.png")
    return tx_hash


async def finds_tx_by_hash(page: Page, tx_hash: str) -> None:
    await page.type_and_enter("#search-input", tx_hash)
    await page.wait_for(
        "document.getElementById('tx-result').dataset.status === 'committed'",
        what="the transaction found",
    )
    text = await page.evaluate("document.getElementById('tx-result').innerText")
    assert tx_hash in text and "inventory.receive" in text
    assert await page.evaluate("location.hash") == f"#tx/{tx_hash}"
    await page.screenshot(SCREENSHOTS / "02-tx-by-hash.png")


async def shows_factory_tabs(page: Page) -> None:
    checks = {
        "orders": "document.querySelectorAll('#orders-board .order').length === 5"
        + " && document.getElementById('orders-shown').hidden",
        "inventory": exists('#inventory-table tr.low[data-item="steel-sheet"]'),
        "machines": exists('#machine-cards [data-machine="m3"][data-status="down"]')
        + " && "
        + exists('#machine-cards [data-machine="m1"][data-status="degraded"]')
        + " && "
        + exists('#predictions [data-machine="m1"] svg.chart circle.pending'),
        "workorders": "document.getElementById('workorders-table').innerText.includes('wo-2')",
    }
    for index, (tab, check) in enumerate(checks.items(), start=3):
        await page.evaluate(f"location.hash = '#{tab}'")
        await page.wait_for(check, what=f"the {tab} tab")
        await page.screenshot(SCREENSHOTS / f"{index:02d}-{tab}.png")


async def shows_killed_node_down(page: Page, layout: ClusterDir, url: str) -> None:
    result = millchain("cluster", "kill", "node0", "--dir", str(layout.root))
    assert result.returncode == 0, result.stdout + result.stderr
    await page.evaluate("location.hash = '#blocks'")
    await page.wait_for(card("node0", alive=False), what="node0 shown down")
    assert await page.evaluate(ALIVE) == 3
    # The others elect node1 and go on committing; the page keeps showing new blocks.
    _, height = await receive(layout, url, 7)
    await page.wait_for(f"{TOP_HEIGHT} >= {height}", timeout_s=30, what=f"block {height}")
    await page.wait_for(
        "[...document.querySelectorAll('.node-card[data-alive=\"true\"]')]"
        ".every((c) => c.querySelector('[data-field=\"primary\"] b').textContent === 'node1')",
        timeout_s=30,
        what="the survivors showing node1 as primary",
    )
    await page.screenshot(SCREENSHOTS / "07-node-down.png")
    await page.evaluate("location.hash = '#views'")
    await page.wait_for(
        "document.getElementById('views-detail').innerText.includes('entered view')",
        what="the view change in the history",
    )
    await page.screenshot(SCREENSHOTS / "08-view-changes.png")


@pytest.mark.skipif(
    CHROMIUM is None,
    reason="no Chromium on PATH (apt-get install chromium, or set MILLCHAIN_CHROMIUM)",
)
def test_explorer_shows_live_blocks_a_tx_by_hash_and_a_killed_node(tmp_path: Path) -> None:
    assert CHROMIUM is not None
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with explorer_cluster(tmp_path / "cluster", params=Params(block_interval_ms=20)) as layout:
        # The page is served by node1, so it stays up when node0, the first primary, is killed.
        url = layout.config("node1").url
        command = ["--dir", str(layout.root), "--node", "node1", "--no-open"]
        printed = CliRunner().invoke(explorer, command)
        assert (printed.exit_code, printed.output.strip()) == (0, f"{url}/explorer/")

        async def drive() -> None:
            await run_factory_day(layout, url)
            async with chromium_page(CHROMIUM) as page:
                try:
                    await page.navigate(f"{url}/explorer/")
                    await page.wait_for(f"{ALIVE} === 4", what="4 nodes up")
                    chain_id = await page.evaluate(
                        "document.getElementById('chain-id').textContent"
                    )
                    assert chain_id == layout.genesis().chain_id
                    tx_hash = await shows_new_blocks(page, layout, url)
                    await finds_tx_by_hash(page, tx_hash)
                    await shows_factory_tabs(page)
                    await shows_killed_node_down(page, layout, url)
                    assert not [line for line in page.console if line.startswith("exception")]
                except Exception:
                    await page.screenshot(SCREENSHOTS / "failure.png")
                    print(json.dumps(page.console[-20:], indent=2))
                    raise

        asyncio.run(drive())
