"""Failover time: SIGKILL the primary of a loaded 4-node cluster and time the next commit.

    python scripts/failover.py [--trials 10] [--json failover.json]

Each trial finds the primary, kills it, and measures the time until a survivor that has moved
to a new view commits a block above the height it had when it entered that view (the view
change plus the new primary's first block), then restarts the killed node and waits until every
node agrees again. Prints each trial and the median; writes JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path
from typing import Any

from cli.cluster_cmd import collect_status, temporary_cluster, wait_converged
from cli.layout import ClusterDir
from cli.loadgen import Load
from cli.process import kill_node, start_node
from ledger.genesis import Role
from node.client import wait_until_up

SENDERS = tuple((f"load{i}", (Role.SUPPLIER,)) for i in range(3))


async def _heights(layout: ClusterDir, names: list[str]) -> dict[str, Any]:
    rows = await collect_status(layout)
    return {r["name"]: r for r in rows if r["name"] in names}


async def trial(layout: ClusterDir, timeout_s: float) -> float:
    """Seconds from SIGKILL of the primary to the first block committed in the new view (a
    block the dead primary had already pre-prepared may commit earlier; it does not count)."""
    rows = await collect_status(layout)
    live = [r for r in rows if r["alive"]]
    primary = live[0]["primary"]
    old_view = live[0]["view"]
    survivors = [r["name"] for r in live if r["name"] != primary]
    kill_node(layout, primary)
    killed_at = time.monotonic()
    height_at_new_view: int | None = None
    while time.monotonic() - killed_at < timeout_s:
        current = [r for r in (await _heights(layout, survivors)).values() if r["alive"]]
        in_new_view = [r for r in current if r["view"] is not None and r["view"] > old_view]
        if in_new_view and height_at_new_view is None:
            height_at_new_view = max(r["height"] for r in current)
        if height_at_new_view is not None and any(
            r["height"] > height_at_new_view for r in in_new_view
        ):
            break
        await asyncio.sleep(0.01)
    else:
        raise RuntimeError(f"no commit in a new view within {timeout_s} s of killing {primary}")
    elapsed = time.monotonic() - killed_at
    start_node(layout, primary)
    await wait_until_up([layout.config(primary).url], 30)
    await wait_converged(layout, timeout_s=60)
    return elapsed


async def run(layout: ClusterDir, trials: int) -> list[float]:
    load = Load(layout, [name for name, _ in SENDERS])
    load.start()
    try:
        results = []
        for number in range(1, trials + 1):
            seconds = await trial(layout, timeout_s=60)
            results.append(seconds)
            print(
                f"trial {number:2d}: {seconds * 1000:7.0f} ms "
                "from SIGKILL to a commit in the new view"
            )
        return results
    finally:
        await load.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    with temporary_cluster("millchain-failover-", extra_identities=SENDERS) as layout:
        results = asyncio.run(run(layout, args.trials))
    median_ms = statistics.median(results) * 1000
    print(f"median over {len(results)} trials: {median_ms:.0f} ms (default timeouts)")
    if args.json is not None:
        args.json.write_text(
            json.dumps({"trials_ms": [round(r * 1000) for r in results], "median_ms": median_ms})
            + "\n",
            encoding="utf-8",
        )


if __name__ == "__main__":
    main()
