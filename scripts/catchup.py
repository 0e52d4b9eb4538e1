"""Catch-up rate: restart a node that is BLOCKS behind and time how fast it reaches the head.

    python scripts/catchup.py [--blocks 1000] [--json catchup.json]

One node of a 4-node cluster is killed, load runs until the others are BLOCKS ahead, then the
node is restarted with the load stopped; the rate is blocks (and transactions) applied per second
from its restart until it reaches the others' head.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

from cli.cluster_cmd import collect_status, temporary_cluster
from cli.layout import ClusterDir
from cli.loadgen import Load
from cli.process import kill_node, start_node
from ledger.genesis import Role
from node.client import NodeClient, wait_until_up

SENDERS = tuple((f"load{i}", (Role.SUPPLIER,)) for i in range(8))


async def _height(layout: ClusterDir, name: str) -> int:
    async with NodeClient(layout.config(name).url) as client:
        return int((await client.status())["height"])


async def run(layout: ClusterDir, blocks: int) -> dict[str, float]:
    names = layout.node_names()
    laggard = names[-1]
    kill_node(layout, laggard)
    start_height = await _height(layout, names[0])
    load = Load(layout, [name for name, _ in SENDERS], count_max=10 * blocks)
    load.start()
    while await _height(layout, names[0]) < start_height + blocks:
        await asyncio.sleep(0.2)
    await load.stop()
    target = await _height(layout, names[0])
    txs = len(load.acked)
    start_node(layout, laggard)
    restarted = time.monotonic()
    await wait_until_up([layout.config(laggard).url], 30)
    while await _height(layout, laggard) < target:
        await asyncio.sleep(0.02)
    seconds = time.monotonic() - restarted
    behind = target - start_height
    rows = await collect_status(layout)
    assert len({r["state_digest"] for r in rows if r["height"] == target}) == 1
    return {
        "blocks_behind": behind,
        "txs_behind": txs,
        "seconds": round(seconds, 3),
        "blocks_per_s": round(behind / seconds, 1),
        "txs_per_s": round(txs / seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=1000)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    with temporary_cluster("millchain-catchup-", extra_identities=SENDERS) as layout:
        figures = asyncio.run(run(layout, args.blocks))
    for key, value in figures.items():
        print(f"{key:14} {value}")
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
