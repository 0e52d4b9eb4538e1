"""`millchain demo`: a 4-node cluster in a temporary folder, a short mixed workload, the result."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from cli.cluster_cmd import collect_status, start_all, start_nodes, status_table, wait_converged
from cli.common import console, guarded
from cli.common import table as print_table
from cli.demo_factory import factory_act
from cli.demo_oracle import oracle_act
from cli.layout import ClusterDir, init_cluster
from cli.process import kill_node, stop_nodes, terminated_as_exit
from cli.scenario.command import compare_command
from ledger.tx import Transaction
from node.client import NodeClient

ITEMS = ("steel", "aluminium", "bolts", "bearings", "paint")
LOCATIONS = ("main", "line-a", "line-b")


def _workload(layout: ClusterDir, count: int) -> list[Transaction]:
    """Receipts of materials by the supplier, then planners reserving, consuming and moving."""
    genesis = layout.genesis()
    supplier = layout.identity_keys("supplier")
    planner = layout.identity_keys("planner")
    txs: list[Transaction] = []
    nonce = {"supplier": 0, "planner": 0}

    def make(who: str, method: str, args: dict[str, Any]) -> None:
        keys = supplier if who == "supplier" else planner
        txs.append(
            Transaction.create(
                keys,
                chain_id=genesis.chain_id,
                nonce=nonce[who],
                contract="inventory",
                method=method,
                args=args,
            )
        )
        nonce[who] += 1

    for item in ITEMS:
        make("supplier", "receive", {"item": item, "location": "main", "qty": 10_000})
    step = 0
    while len(txs) < count:
        item = ITEMS[step % len(ITEMS)]
        kind = step % 4
        if kind == 0:
            make("supplier", "receive", {"item": item, "location": "main", "qty": 50})
        elif kind == 1:
            make("planner", "reserve", {"item": item, "location": "main", "qty": 20})
        elif kind == 2:
            make("planner", "consume", {"item": item, "location": "main", "qty": 10})
        else:
            make(
                "planner",
                "transfer",
                {"item": item, "location": "main", "to": LOCATIONS[1 + (step // 4) % 2], "qty": 5},
            )
        step += 1
    return txs


async def _run_workload(layout: ClusterDir, txs: list[Transaction], names: list[str]) -> float:
    """Submit `txs` to the nodes `names` (one sender's in order to one node), wait for all."""
    clients = [NodeClient(layout.config(name).url) for name in names]
    for client in clients:
        await client.__aenter__()
    started = time.monotonic()
    try:
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as progress:
            submitted = progress.add_task("submitted", total=len(txs))
            committed = progress.add_task("committed", total=len(txs))
            by_sender: dict[bytes, list[Transaction]] = {}
            for tx in txs:
                by_sender.setdefault(tx.sender, []).append(tx)

            async def feed(client: NodeClient, batch: list[Transaction]) -> None:
                for tx in batch:
                    await client.submit(tx.to_wire())
                    progress.advance(submitted)
                for tx in batch:
                    await client.wait_committed(tx.hash.hex(), 60)
                    progress.advance(committed)

            await asyncio.gather(
                *(
                    feed(clients[i % len(clients)], batch)
                    for i, batch in enumerate(by_sender.values())
                )
            )
    finally:
        for client in clients:
            await client.__aexit__(None, None, None)
    return time.monotonic() - started


async def _stages_line(layout: ClusterDir, name: str) -> str:
    """Where the blocks' time went on node `name` (its /status stages, node/stages.py)."""
    async with NodeClient(layout.config(name).url) as client:
        stages = (await client.status())["stages"]
    timed = {stage: values for stage, values in stages.items() if values["p50_ms"] is not None}
    blocks = max((values["count"] for values in timed.values()), default=0)
    parts = ", ".join(f"{stage} {values['p50_ms']:.1f}" for stage, values in timed.items())
    return f"where a block's time went on {name} (p50 over {blocks} blocks, ms): {parts}"


async def _time_to_next_commit(layout: ClusterDir, names: list[str], height: int) -> float:
    """Seconds until any of `names` commits above `height` (bounded at 60 s)."""
    started = time.monotonic()
    while time.monotonic() - started < 60:
        rows = await collect_status(layout)
        if any(r["alive"] and r["name"] in names and r["height"] > height for r in rows):
            return time.monotonic() - started
        await asyncio.sleep(0.02)
    raise click.ClickException(f"no commit within 60 s on {', '.join(names)}")


def _show_cluster(layout: ClusterDir, title: str) -> list[dict[str, Any]]:
    rows = asyncio.run(wait_converged(layout, timeout_s=30))
    status_table(title, rows)
    return rows


def _failover(layout: ClusterDir, txs: list[Transaction]) -> None:
    """Kill the primary, keep the workload going on the others, bring it back."""
    rows = asyncio.run(collect_status(layout))
    primary = rows[0]["primary"]
    height = max(r["height"] for r in rows)
    survivors = [r["name"] for r in rows if r["name"] != primary]
    console.print(f"\n[bold]failover[/bold]: SIGKILL the primary {primary} at height {height}")
    kill_node(layout, primary)

    async def during() -> tuple[float, float]:
        watcher = asyncio.create_task(_time_to_next_commit(layout, survivors, height))
        elapsed = await _run_workload(layout, txs, survivors)
        return await watcher, elapsed

    first_commit_s, elapsed = asyncio.run(during())
    console.print(
        f"the other three changed view and committed again {first_commit_s * 1000:.0f} ms "
        f"after the kill; {len(txs)} more transactions in {elapsed:.1f} s"
    )
    _show_cluster(layout, f"{primary} is down; the cluster carries on")
    console.print(f"restarting {primary}: it recovers from its disk and catches up")
    start_nodes(layout, [primary], 30)


async def _inventory(layout: ClusterDir) -> Any:
    async with NodeClient(layout.config(layout.node_names()[0]).url) as client:
        return await client.query("inventory", [])


@click.command()
@click.option("--txs", "tx_count", default=400, show_default=True, help="Transactions to submit.")
@click.option("--keep", is_flag=True, help="Leave the cluster directory (not the processes).")
@click.option(
    "--scenario-hours",
    type=click.IntRange(0, 336),
    default=16,
    show_default=True,
    help="Simulated hours of the closing maintenance-strategy comparison (0 skips it).",
)
@guarded
def demo(tx_count: int, keep: bool, scenario_hours: int) -> None:
    """Launch a 4-node cluster, run a mixed inventory workload, kill the primary midway and
    watch the others change view and carry on, bring it back, take a custom order through a
    machine failure to delivery, let the oracle flag a machine before it fails, show what
    committed on every node, stop; then compare reactive, preventive and predictive
    maintenance on a short factory scenario."""
    with terminated_as_exit():  # SIGTERM, too, stops the nodes and says where the logs are
        _demo(tx_count, keep, scenario_hours)


def _demo(tx_count: int, keep: bool, scenario_hours: int) -> None:
    root = Path(tempfile.mkdtemp(prefix="millchain-demo-"))
    layout = init_cluster(root / "cluster", nodes=4)
    console.print(f"[bold]millchain demo[/bold]: 4 validators (f = 1) in {layout.root}")
    succeeded = False
    try:
        with console.status("starting 4 nodes..."):
            start_all(layout, timeout_s=30)
        txs = _workload(layout, tx_count)
        half = len(txs) // 2
        elapsed = asyncio.run(_run_workload(layout, txs[:half], layout.node_names()))
        console.print(
            f"{half} transactions committed in {elapsed:.1f} s "
            f"({half / elapsed:.0f} tx/s end to end, one client per sender, in order)"
        )
        console.print(asyncio.run(_stages_line(layout, layout.node_names()[0])))
        _show_cluster(layout, "every node at the same head and state")
        _failover(layout, txs[half:])
        _show_cluster(layout, "all four nodes agree again")
        asyncio.run(factory_act(layout))
        asyncio.run(oracle_act(layout, root))
        rows = _show_cluster(layout, "final state, the same on every node")
        inventory = asyncio.run(_inventory(layout))
        print_table(
            "inventory (on hand / reserved)",
            ["item", *LOCATIONS],
            [
                [item, *(_cell(inventory.get(item, {}).get(loc)) for loc in LOCATIONS)]
                for item in ITEMS
            ],
        )
        digests = {r["state_digest"] for r in rows}
        heights = {r["height"] for r in rows}
        if len(digests) != 1 or len(heights) != 1:
            raise click.ClickException("nodes disagree: see the table above")
        console.print("[green]all 4 nodes agree on height, head and state digest[/green]")
        succeeded = True
    finally:
        with console.status("stopping the cluster..."):
            stop_nodes(layout, layout.node_names())
        if keep or not succeeded:
            console.print(f"cluster directory (logs in nodes/*/node.log) kept at {layout.root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    if scenario_hours:
        console.print(
            f"\n[bold]scenario[/bold]: {scenario_hours} simulated hours of a 4-machine plant "
            "under each maintenance strategy, each on a fresh cluster"
        )
        report = Path(tempfile.mkdtemp(prefix="millchain-demo-scenario-"))
        click.get_current_context().invoke(
            compare_command, machines=4, hours=scenario_hours, out_dir=report
        )


def _cell(record: Any) -> str:
    if not record:
        return "-"
    return f"{record['on_hand']} / {record['reserved']}"
