"""Catch-up rate: restart a node that is BLOCKS behind and time how fast it reaches the head.

    python scripts/catchup.py [--blocks 10000] [--batch 100] [--repeat 1] [--history DIR]
                              [--json catchup.json] [--logs DIR]

One node of a 4-node cluster is killed, load runs until the others are BLOCKS ahead, then the
node is restarted with the load stopped. The rate is blocks and transactions of history applied
per second until it reaches the others' head, timed from its restart (the process spawn, Python
start-up included) and from the moment it received its first fetched block (its /status).

The load is batched: transactions signed ahead of each request from several senders with
consecutive nonces, BATCH to a POST /txs, paced so blocks carry about one batch each (tens to
hundreds of transactions; see BatchedLoad). `--batch 0` runs the closed-loop one-at-a-time load
of cli/loadgen instead (a few transactions a block). With `--repeat N` the laggard's database,
saved when it was killed, is put back and the catch-up timed N times over the same history; the
median run is reported. `--history DIR` keeps the cluster and that history in DIR, and a later
run given the same DIR times the catch-up again without building the history anew.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cli.cluster_cmd import collect_status, temporary_cluster
from cli.layout import ClusterDir, init_cluster
from cli.loadgen import Load
from cli.process import cpu_seconds, kill_node, start_node, stop_node
from ledger.genesis import Role
from ledger.tx import Transaction
from node.client import ClientError, NodeClient, wait_until_up

SENDERS = tuple((f"load{i}", (Role.SUPPLIER,)) for i in range(16))
RETRY_S = 0.2
POLL_S = 0.05
PACE_S = 0.01


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


class BatchedLoad:
    """Batches of pre-signed transactions (one sender's, consecutive nonces) posted to the
    given nodes in turn (POST /txs), keeping about two batches uncommitted: a block is cut
    while the one before it commits, so each carries about one batch whatever the cluster's
    pace (an open-loop rate past what it commits would fill blocks to the limit and make the
    cluster change views). A batch a node refused in part is sent again from the first refused
    transaction."""

    def __init__(self, layout: ClusterDir, nodes: list[str], *, batch: int) -> None:
        self.layout = layout
        self.urls = [layout.config(name).url for name in nodes]
        self.batch = batch
        self.submitted = 0
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task

    async def _run(self) -> None:
        chain_id = self.layout.genesis().chain_id
        keys = [self.layout.identity_keys(name) for name, _ in SENDERS]
        clients = [NodeClient(url, timeout_s=30) for url in self.urls]
        async with contextlib.AsyncExitStack() as stack:
            for client in clients:
                await stack.enter_async_context(client)
            nonces = [await clients[0].next_nonce(k.public_key) for k in keys]
            committed_base = int((await clients[0].status())["counters"]["txs_committed"])
            turn = 0
            while not self._stop.is_set():
                status = await clients[0].status()
                committed = int(status["counters"]["txs_committed"]) - committed_base
                if self.submitted - committed >= 2 * self.batch:
                    await asyncio.sleep(PACE_S)
                    continue
                sender = turn % len(keys)
                raws = [
                    Transaction.create(
                        keys[sender],
                        chain_id=chain_id,
                        nonce=n,
                        contract="inventory",
                        method="receive",
                        args={"item": f"part-{n % 50}", "location": "bench", "qty": 1},
                    ).to_wire()
                    for n in range(nonces[sender], nonces[sender] + self.batch)
                ]
                await self._submit(clients[turn % len(clients)], raws)
                nonces[sender] += self.batch
                self.submitted += self.batch
                turn += 1

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
    layout: ClusterDir, laggard: str, blocks: int, *, batch: int
) -> tuple[int, int]:
    """Kill `laggard`, run load until the others are `blocks` ahead, stop it. Returns the
    laggard's height and the others' head once they settled."""
    names = layout.node_names()
    others = [name for name in names if name != laggard]
    kill_node(layout, laggard)
    start_height = int((await _status(layout, others[0]))["height"])
    load: Load | BatchedLoad
    if batch:
        load = BatchedLoad(layout, others, batch=batch)
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
    pid = start_node(layout, laggard)
    await wait_until_up([url], 30)
    async with NodeClient(url) as client:
        while (status := await _status(layout, laggard, client))["height"] < target:
            await asyncio.sleep(POLL_S)
    done_wall_ms = time.time() * 1000
    seconds = time.monotonic() - spawned
    cpu_s = cpu_seconds(pid)
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
    if cpu_s is not None:  # what the node spent, whatever else ran on the machine
        figures |= {"cpu_seconds": round(cpu_s, 3), "txs_per_cpu_s": round(txs / cpu_s, 1)}
    if fetching_s:
        figures |= {
            "seconds_from_first_fetch": round(fetching_s, 3),
            "txs_per_s_from_first_fetch": round(txs / fetching_s, 1),
        }
    return figures


async def run(
    layout: ClusterDir,
    workspace: Path,
    blocks: int,
    *,
    batch: int,
    repeat: int,
) -> dict[str, Any]:
    names = layout.node_names()
    laggard = names[-1]
    data_dir = layout.node_dir(laggard) / "data"
    saved = workspace / "laggard-data"
    history = workspace / "history.json"
    if history.exists():
        start, target = json.loads(history.read_text(encoding="utf-8"))["heights"]
        print(f"  history: blocks {start + 1}..{target}, saved in {workspace}")
    else:
        start, target = await build_history(layout, laggard, blocks, batch=batch)
        shutil.copytree(data_dir, saved)  # the laggard is down: its database as it was killed
        record = {"heights": [start, target], "batch": batch}
        history.write_text(json.dumps(record) + "\n", encoding="utf-8")
    runs = []
    for index in range(repeat):
        kill_node(layout, laggard)  # after a run (a no-op before the first)
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


@contextlib.contextmanager
def _cluster(history: Path | None) -> Iterator[tuple[ClusterDir, Path]]:
    """(cluster, folder for the saved history): a temporary cluster, or the one kept under
    `history` (made on first use). Every node is stopped at the end."""
    if history is None:
        with temporary_cluster("millchain-catchup-", extra_identities=SENDERS) as layout:
            yield layout, layout.root.parent
        return
    root = history / "cluster"
    kept = root.exists()
    layout = ClusterDir(root) if kept else init_cluster(root, nodes=4, extra_identities=SENDERS)
    names = layout.node_names()
    # With a kept history the laggard starts only when it is timed.
    starting = names[:-1] if kept else names
    try:
        for name in starting:
            start_node(layout, name)
        asyncio.run(wait_until_up([layout.config(name).url for name in starting], 60))
        yield layout, history
    finally:
        for name in names:
            stop_node(layout, name)


def main() -> None:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--blocks", type=int, default=10_000)
    parser.add_argument(
        "--batch", type=int, default=100, help="transactions per POST /txs, about one a block"
    )
    parser.add_argument("--repeat", type=int, default=1, help="catch-up runs over one history")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--logs", type=Path, default=None, help="copy the node logs here")
    parser.add_argument(
        "--history",
        type=Path,
        default=None,
        help="keep the cluster and its history in this folder, and reuse it if it has one",
    )
    args = parser.parse_args()
    with _cluster(args.history) as (layout, workspace):
        try:
            figures = asyncio.run(
                run(
                    layout,
                    workspace,
                    args.blocks,
                    batch=args.batch,
                    repeat=args.repeat,
                )
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
