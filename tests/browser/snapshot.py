"""Take the explorer screenshot the README shows: a 4-node cluster after a short factory day.

.venv/bin/python -m tests.browser.snapshot docs/explorer.png --tab machines
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

from ledger.genesis import Params
from tests.browser.cdp import chromium_page, find_chromium
from tests.browser.cluster import explorer_cluster
from tests.browser.factory_day import run_factory_day

READY = {
    "blocks": "!!document.querySelector('#block-detail .block-view')",
    "orders": "document.querySelectorAll('#orders-board .order').length > 0",
    "inventory": "!!document.querySelector('#inventory-table table')",
    "machines": "!!document.querySelector('#predictions svg.chart')",
    "workorders": "!!document.querySelector('#workorders-table table')",
    "views": "!!document.querySelector('#views-detail h2')",
}


async def snapshot(out: Path, tab: str, width: int, height: int) -> None:
    chromium = find_chromium()
    if chromium is None:
        raise SystemExit("no Chromium found (apt-get install chromium, or set MILLCHAIN_CHROMIUM)")
    params = Params(block_interval_ms=20)
    with (
        tempfile.TemporaryDirectory(prefix="millchain-snapshot-") as root,
        explorer_cluster(Path(root) / "cluster", params=params) as layout,
    ):
        url = layout.config("node0").url
        await run_factory_day(layout, url)
        async with chromium_page(chromium, width=width, height=height) as page:
            await page.navigate(f"{url}/explorer/#{tab}")
            await page.wait_for(
                "document.querySelectorAll('.node-card[data-alive=\"true\"]').length === 4"
            )
            await page.wait_for(READY[tab], what=f"the {tab} tab")
            await asyncio.sleep(1.5)  # let the ages settle
            await page.screenshot(out, full_page=False)
    print(f"wrote {out} ({out.stat().st_size // 1024} KiB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", type=Path)
    parser.add_argument("--tab", choices=sorted(READY), default="machines")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=960)
    args = parser.parse_args()
    asyncio.run(snapshot(args.out, args.tab, args.width, args.height))


if __name__ == "__main__":
    main()
