"""Catch-up rate: restart a node that is BLOCKS behind and time how fast it reaches the head.

    python scripts/catchup.py [--blocks 10000] [--batch 50] [--rate 500] [--repeat 1]
                              [--json catchup.json] [--logs DIR]

One node of a 4-node cluster is killed, load runs until the others are BLOCKS ahead, then the
node is restarted with the load stopped. The rate is blocks and transactions of history applied
per second until it reaches the others' head, timed from its restart (the process spawn, Python
start-up included) and from the moment it received its first fetched block (its /status).

The load is batched: pre-signed transactions from several senders with consecutive nonces,
BATCH to a POST /txs, RATE transactions per second in all, so blocks carry tens to hundreds of
transactions (keep RATE below what the cluster commits: an overloaded cluster changes views).
`--batch 0` runs the closed-loop one-at-a-time load of cli/loadgen instead (a few transactions
a block). With `--repeat N` the laggard's database, saved when it was killed, is put back and
the catch-up timed N times over the same history; the median run is reported.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

from cli.cluster_cmd import collect_status, temporary_cluster
from cli.layout import ClusterDir
from cli.loadgen import Load
from cli.process import kill_node, start_node
from ledger.genesis import Role
from ledger.tx import Transaction
from node.client import ClientError, NodeClient, wait_until_up

SENDERS = tuple((f"load{i}", (Role.SUPPLIER,)) for i in range(16))
RETRY_S = 0.2
POLL_S = 0.05


async def _status(
    layout: ClusterDir, name: str, client: NodeClient | None = None
) -> dict[str, Any]:
    """A node's /status, asked again while it is too busy to answer in time."""
    if client is None:
        async with NodeClient(layout.config(name).url) as fresh:
            return await _status(layout, name, fresh)
    for _ in range(10):
        try:
            return await client.status()
        except ClientError as exc:
            print(f"  {name}: {exc}; asking again")
    return await client.status()


class _Pacer:
    """Hands out permission to send transactions at `rate_per_s` in all (open loop)."""

    def __init__(self, rate_per_s: float) -> None:
        self.rate_per_s = rate_per_s
        self._started = time.monotonic()
        self._granted = 0

    async def wait(self, count: int) -> None:
        due = self._started + self._granted / self.rate_per_s
        self._granted += count
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)


class BatchedLoad:
    """Senders submitting freshly signed batches with consecutive nonces to the given nodes
    (POST /txs), without waiting for commits; a batch a node refused in part is sent again
    from the first refused transaction (the ones before it keep their place)."""

    def __init__(
        self, layout: ClusterDir, nodes: list[str], *, batch: int, rate_per_s: float
    ) -> None:
        self.layout = layout
        self.urls = [layout.config(name).url for name in nodes]
        self.batch = batch
        self.pacer = _Pacer(rate_per_s)
        self.submitted = 0
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._sender(name, i)) for i, (name, _) in enumerate(SENDERS)
        ]

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)

    async def _sender(self, name: str, offset: int) -> None:
        keys = self.layout.identity_keys(name)
        chain_id = self.layout.genesis().chain_id
        url = self.urls[offset % len(self.urls)]
        async with NodeClient(url, timeout_s=30) as client:
            nonce = await client.next_nonce(keys.public_key)
            while not self._stop.is_set():
                await self.pacer.wait(self.batch)
                raws = [
                    Transaction.create(
                        keys,
                        chain_id=chain_id,
                        nonce=n,
                        contract="inventory",
                        method="receive",
                        args={"item": f"part-{n % 50}", "location": name, "qty": 1},
                    ).to_wire()
                    for n in range(nonce, nonce + self.batch)
                ]
                await self._submit(client, raws)
                nonce += self.batch
                self.submitted += self.batch

    async def _submit(self, client: NodeClient, raws: list[bytes]) -> None:
        while raws and not self._stop.is_set():
            try:
                results = await client.submit_many(raws)
            except ClientError as exc:
                print(f"  load: {client.url}: {exc}; retrying")
                await asyncio.sleep(RETRY_S)
                continue
            refused = [i for i, r in enumerate(results) if "error" in r and r.get("status") != 409]
            if not refused:
                return
            raws = raws[refused[0] :]  # e.g. a full mempool: the rest waits its turn
            await asyncio.sleep(RETRY_S)


async def build_history(
    layout: ClusterDir, laggard: str, blocks: int, *, batch: int, rate_per_s: float
) -> tuple[int, int]:
    """Kill `laggard`, run load until the others are `blocks` ahead, stop it. Returns the
    laggard's height and the others' head once they settled."""
    names = layout.node_names()
    others = [name for name in names if name != laggard]
    kill_node(layout, laggard)
    start_height = int((await _status(layout, others[0]))["height"])
    load: Load | BatchedLoad
    if batch:
        load = BatchedLoad(layout, others, batch=batch, rate_per_s=rate_per_s)
    else:
        load = Load(layout, [name for name, _ in SENDERS], count_max=10 * blocks)
    load.start()
    started = time.monotonic()
    while (height := int((await _status(layout, others[0]))["height"])) < start_height + blocks:
        print(f"  history: {height - start_height}/{blocks} blocks", end="\r", flush=True)
        await asyncio.sleep(1)
    await load.stop()
    print(f"\n  history built in {time.monotonic() - started:.0f} s")
    return start_height, await _settled_height(layout, others)


async def _settled_height(layout: ClusterDir, names: list[str]) -> int:
    """The common head once the nodes agree, hold nothing more to commit, and stop moving."""
    previous = -1
    while True:
        rows = [await _status(layout, name) for name in names]
        heights = {int(row["height"]) for row in rows}
        idle = all(int(row["mempool"]) == 0 for row in rows)
        if len(heights) == 1 and idle and (height := heights.pop()) == previous:
            return height
        previous = max(int(row["height"]) for row in rows) if idle else -1
        await asyncio.sleep(1.0)


async def time_catch_up(
    layout: ClusterDir, laggard: str, *, behind: int, target: int
) -> dict[str, Any]:
    """Start `laggard` (`behind` blocks behind) and time it until it reaches `target`."""
    url = layout.config(laggard).url
    spawned = time.monotonic()
    start_node(layout, laggard)
    await wait_until_up([url], 30)
    async with NodeClient(url) as client:
        while (status := await _status(layout, laggard, client))["height"] < target:
            await asyncio.sleep(POLL_S)
    done_wall_ms = time.time() * 1000
    seconds = time.monotonic() - spawned
    blocks = behind
    txs = int(status["counters"]["txs_committed"])
    transfer = status["transfer"]
    first_fetch_ms = transfer["first_fetch_ms"]
    fetching_s = (done_wall_ms - first_fetch_ms) / 1000 if first_fetch_ms else None
    figures: dict[str, Any] = {
        "blocks_behind": blocks,
        "txs_behind": txs,
        "txs_per_block": round(txs / max(blocks, 1), 1),
        "seconds_from_spawn": round(seconds, 3),
        "blocks_per_s_from_spawn": round(blocks / seconds, 1),
        "txs_per_s_from_spawn": round(txs / seconds, 1),
        "blocks_checked": transfer["blocks_checked"],
        "blocks_executed": transfer["blocks_executed"],
        "runs_refused": transfer["runs_refused"],
        "load_average_1m": round(os.getloadavg()[0], 2),  # the machine may be shared
    }
    if fetching_s:
        figures |= {
            "seconds_from_first_fetch": round(fetching_s, 3),
            "txs_per_s_from_first_fetch": round(txs / fetching_s, 1),
        }
    return figures


async def run(
    layout: ClusterDir, blocks: int, *, batch: int, rate_per_s: float, repeat: int
) -> dict[str, Any]:
    names = layout.node_names()
    laggard = names[-1]
    data_dir = layout.node_dir(laggard) / "data"
    saved = layout.root.parent / "laggard-data"
    start, target = await build_history(layout, laggard, blocks, batch=batch, rate_per_s=rate_per_s)
    shutil.copytree(data_dir, saved)  # the laggard is down: its database as it was killed
    runs = []
    for index in range(repeat):
        if index:
            kill_node(layout, laggard)
            shutil.rmtree(data_dir)
            shutil.copytree(saved, data_dir)
        figures = await time_catch_up(layout, laggard, behind=target - start, target=target)
        rows = await collect_status(layout)
        digests = {row["state_digest"] for row in rows if row["height"] == target}
        assert len(digests) == 1, f"state digests differ at height {target}: {rows}"
        assert all(row["height"] == target for row in rows), rows
        print(f"  run {index + 1}: {json.dumps(figures)}")
        runs.append(figures)
    median = statistics.median_low(run["txs_per_s_from_spawn"] for run in runs)
    chosen = next(run for run in runs if run["txs_per_s_from_spawn"] == median)
    return {**chosen, "runs": runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=50, help="transactions per POST /txs")
    parser.add_argument("--rate", type=float, default=500, help="offered transactions per s")
    parser.add_argument("--repeat", type=int, default=1, help="catch-up runs over one history")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--logs", type=Path, default=None, help="copy the node logs here")
    args = parser.parse_args()
    with temporary_cluster("millchain-catchup-", extra_identities=SENDERS) as layout:
        try:
            figures = asyncio.run(
                run(layout, args.blocks, batch=args.batch, rate_per_s=args.rate, repeat=args.repeat)
            )
        finally:
            if args.logs is not None:
                args.logs.mkdir(parents=True, exist_ok=True)
                for name in layout.node_names():
                    shutil.copy(layout.log_file(name), args.logs / f"{name}.log")
    for key, value in figures.items():
        if key != "runs":
            print(f"{key:28} {value}")
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
