"""`millchain bench`: committed throughput and commit latency of a cluster under offered load.

Load comes from pre-signed transactions (signing is not part of what is measured), submitted by
one worker per sender so every sender's nonces arrive in order (cli/bench_load.py). A watcher
follows the chain on one node and stamps each transaction when it sees it committed; latency is
that stamp minus the submit stamp. The machine's ed25519 verification rate is measured in the
same run, so throughput can be read against what signature checks allow. After the run every
node's stage times (node/stages.py, on /status) say where the latency went, and the nodes' CPU
time (/proc) and commit counters what the commits cost.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
import time
from http import HTTPStatus
from pathlib import Path
from typing import Any

import click

from cli.bench_load import (
    BENCH_SENDERS,
    Pacer,
    PresignedFeed,
    Samples,
    bench_identities,
    receipt,
    submit_in_order,
)
from cli.bench_plot import timeline, write_plot
from cli.cluster_cmd import fsync_option, temporary_cluster
from cli.common import FiniteFloatRange, OutputFile, console, guarded, layout_of
from cli.layout import ClusterDir
from cli.process import NodeCpu, cpu_spent, node_cpu_seconds
from ledger.crypto import VERIFIER, KeyPair, signature_holds, write_key_file
from ledger.errors import MillchainError
from ledger.tx import Transaction
from node.client import ClientError, NodeClient
from node.mempool import CLIENT_SHARE
from node.stages import STAGES

BATCH_DEFAULT = 64
# Seconds each node of a --dir cluster has to answer its status before the bench starts.
ANSWER_TIMEOUT_S = 3.0
# Presigned per second of an unpaced run (besides what the mempools take): above the most this
# machine has committed (3,800 tx/s); a run that runs out of them stops with an error.
UNPACED_PRESIGN_PER_S = 4000
# A paced run whose senders sent less than this share of the offered rate says so.
SENT_SHORTFALL_WARN = 0.95


class BenchError(MillchainError):
    """The bench cannot run as asked on this cluster."""


def verify_rate(duration_s: float = 1.0) -> float:
    """ed25519 verifications per second on one core, of 240-byte messages, by the check the nodes
    make (`ledger.crypto.signature_holds`)."""
    keys = KeyPair.generate()
    message = os.urandom(240)
    signature = keys.signing_key.sign(message).signature
    public_key = keys.public_key
    if not signature_holds(public_key, message, signature):
        raise BenchError("a fresh signature does not verify: the ed25519 check is broken")
    count = 0
    started = time.perf_counter()
    while time.perf_counter() - started < duration_s:
        for _ in range(200):
            signature_holds(public_key, message, signature)
        count += 200
    return count / (time.perf_counter() - started)


def _presign(
    layout: ClusterDir, senders: list[str], count: int, first_nonces: list[int]
) -> list[list[Transaction]]:
    """`count` transactions spread over `senders`, each sender's from its next nonce on."""
    chain_id = layout.genesis().chain_id
    keys = [layout.identity_keys(name) for name in senders]
    per_sender: list[list[Transaction]] = [[] for _ in senders]
    for i in range(count):
        s = i % len(senders)
        per_sender[s].append(
            receipt(
                keys[s], chain_id=chain_id, nonce=first_nonces[s] + len(per_sender[s]), serial=i
            )
        )
    return per_sender


async def _watcher(
    client: NodeClient, start_height: int, samples: Samples, stop: asyncio.Event
) -> None:
    """Time each commit from the node's commit feed (heights and 32-byte transaction hashes,
    msgpack, long-polled): cheap for the node, unlike rendering whole blocks as JSON, which
    cost the watched node a fifth of its CPU under load."""
    height = start_height + 1
    while not stop.is_set():
        feed = await client.commits(height, wait_ms=200)
        now = time.monotonic()
        for block_height, _commit_ms, hashes in feed["blocks"]:
            for offset in range(0, len(hashes), 32):
                tx_hash = hashes[offset : offset + 32].hex()
                # Only the bench's own: other clients' commits (readings, oracle reports) would
                # let the wait for the bench's commits end with some of them still pending.
                # A transaction is stamped as sent before it is posted, so none is missed.
                if tx_hash in samples.submitted_at:
                    samples.committed_at.setdefault(tx_hash, now)
            height = max(height, int(block_height) + 1)


async def _offer_load(
    layout: ClusterDir, senders: list[str], duration_s: float, rate_per_s: float, batch: int
) -> dict[str, Any]:
    names = layout.node_names()
    urls = [layout.config(name).url for name in names]
    # Enough pre-signed transactions for the rate (or a generous one); the run stops at the
    # deadline.
    per_s = rate_per_s if rate_per_s > 0 else UNPACED_PRESIGN_PER_S
    clients = [NodeClient(url, timeout_s=30) for url in urls]
    for client in clients:
        await client.__aenter__()
    samples = Samples()
    stop = asyncio.Event()
    watcher: asyncio.Task[None] | None = None
    try:
        # From each sender's next nonce: the cluster may have run a bench (or anything) before.
        first_nonces = [
            await clients[0].next_nonce(layout.identity_keys(name).public_key) for name in senders
        ]
        per_sender = _presign(
            layout,
            senders,
            count=int(per_s * duration_s * 1.1) + _pool_headroom(layout, rate_per_s),
            first_nonces=first_nonces,
        )
        first = await clients[0].status()
        start_height = first["height"]
        cpu_first = node_cpu_seconds(layout)
        watcher = asyncio.create_task(_watcher(clients[0], start_height, samples, stop))
        started = time.monotonic()
        stop_at = started + duration_s
        pacer = Pacer(rate_per_s)
        feeds = [PresignedFeed(txs) for txs in per_sender]
        await asyncio.gather(
            *(
                submit_in_order(
                    clients[i % len(clients)],
                    feed,
                    samples,
                    stop_at=stop_at,
                    pacer=pacer,
                    batch=batch,
                )
                for i, feed in enumerate(feeds)
            )
        )
        dry = sum(1 for feed in feeds if not feed.peek(1))
        if dry and rate_per_s <= 0:
            # Unpaced, the senders share the pre-signed load evenly and run out together: what
            # committed would be the pre-signed count over a shortened window, not what the
            # cluster can do. (Paced, the pacer's turns go to the senders that have some left.)
            raise BenchError(
                f"{dry} of {len(feeds)} senders ran out of pre-signed transactions before the "
                f"end of the load (the cluster took more than {per_s:,.0f} tx/s): raise "
                "UNPACED_PRESIGN_PER_S in cli/bench.py"
            )
        # Let what was admitted commit (bounded), then stop watching.
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and len(samples.committed_at) < len(samples.submitted_at):
            await asyncio.sleep(0.05)
        stop.set()
        await watcher
        cpu_last = node_cpu_seconds(layout)
        last = await clients[0].status()
        stages = await _stages(clients)
    finally:
        if watcher is not None and not watcher.done():
            # A submitter failed or the run was interrupted: the watcher must not outlive
            # its client.
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        for client in clients:
            await client.__aexit__(None, None, None)
    committed = [samples.committed_at[h] for h in samples.submitted_at if h in samples.committed_at]
    latencies_ms = sorted(
        (samples.committed_at[h] - t) * 1000
        for h, t in samples.submitted_at.items()
        if h in samples.committed_at
    )
    window_end = max(committed) if committed else started
    window = max(min(window_end, started + duration_s + 15) - started, 1e-9)
    series = timeline(samples.submitted_at, samples.committed_at, started)
    return {
        "timeline": series,
        "submitted": len(samples.submitted_at),
        "committed": len(committed),
        "rejected": samples.rejected,
        "duration_s": round(window, 3),
        "offered_tx_per_s": rate_per_s if rate_per_s > 0 else None,
        # What the senders really sent: new transactions a second of the load. Below the
        # offered rate when the generator fell behind its schedule (requests slower than the
        # pace, refusals), and then the run did not offer what it was asked to.
        "sent_tx_per_s": round(_sent_in_load(samples, started, duration_s) / duration_s, 1),
        "committed_tx_per_s": round(len(committed) / window, 1),
        "latency_ms_p50": _pct(latencies_ms, 50),
        "latency_ms_p99": _pct(latencies_ms, 99),
        "latency_ms_mean": round(statistics.fmean(latencies_ms), 1) if latencies_ms else None,
        **_costs(first["counters"], last["counters"], cpu_first, cpu_last),
        "stages_ms_p50": stages,
    }


def _sent_in_load(samples: Samples, started: float, duration_s: float) -> int:
    """Transactions first sent during the load (a request in flight at its end is not)."""
    end = started + duration_s
    return sum(1 for at in samples.submitted_at.values() if at < end)


def _pool_headroom(layout: ClusterDir, rate_per_s: float) -> int:
    """Pre-signed transactions beyond the rate's: unpaced, the mempools take what clients may
    put in them (CLIENT_SHARE of each node's) on top of what commits, tens of thousands on a
    larger cluster, and a short run would otherwise run out early."""
    if rate_per_s > 0:
        return 1000
    pool_txs_max = layout.genesis().params.mempool_txs_max
    return 1000 + len(layout.node_names()) * int(pool_txs_max * CLIENT_SHARE)


def _costs(
    first: dict[str, Any],
    last: dict[str, Any],
    cpu_first: NodeCpu | str,
    cpu_last: NodeCpu | str,
) -> dict[str, Any]:
    """What the run's commits cost, from the watched node's counters and every node's CPU time
    from the start of the load to the end of the wait for its commits: blocks, transactions a
    block, and CPU per committed transaction and node (less noisy than tx/s on a shared
    machine, and what the bound's arithmetic is about)."""
    blocks = int(last["blocks_committed"]) - int(first["blocks_committed"])
    txs = int(last["txs_committed"]) - int(first["txs_committed"])
    costs: dict[str, Any] = {
        "blocks_committed": blocks,
        "txs_per_block": round(txs / blocks, 1) if blocks else None,
        "node_cpu_us_per_tx": None,
    }
    spent = cpu_spent(cpu_first, cpu_last)
    if isinstance(spent, str):
        costs["node_cpu_not_measured"] = spent
    elif txs:
        costs["node_cpu_us_per_tx"] = round(1e6 * sum(spent.values()) / txs / len(spent), 1)
    return costs


async def _stages(clients: list[NodeClient]) -> dict[str, float | None]:
    """Where the time went, by stage (node/stages.py): the median over the nodes of each one's
    median over the last blocks it committed (client batches, for admission)."""
    medians: dict[str, list[float]] = {stage: [] for stage in STAGES}
    for client in clients:
        summary = (await client.status()).get("stages") or {}
        for stage, values in medians.items():
            p50 = summary.get(stage, {}).get("p50_ms")
            if p50 is not None:
                values.append(p50)
    return {
        stage: round(statistics.median(values), 1) if values else None
        for stage, values in medians.items()
    }


def _pct(values: list[float], pct: int) -> float | None:
    if not values:
        return None
    index = min(len(values) - 1, round(pct / 100 * (len(values) - 1)))
    return round(values[index], 1)


async def _register_senders(
    layout: ClusterDir, senders: list[str], *, timeout_s: float = 60.0
) -> None:
    """Make sure every sender has a key in the cluster directory and an active supplier
    identity on the chain with that key: the missing ones are registered by the cluster's admin
    (`identity.add`), and this waits for their commits."""
    keys: dict[str, KeyPair] = {}
    for name in senders:
        path = layout.identity_key_file(name)
        if not path.exists():
            write_key_file(path, KeyPair.generate(), name=name)
        keys[name] = layout.identity_keys(name)
    url = layout.config(layout.validator_names()[0]).url
    async with NodeClient(url, timeout_s=30) as client:
        missing: list[str] = []
        for name in senders:
            try:
                record = await client.query("identity", [name])
            except ClientError as exc:
                if exc.status != HTTPStatus.NOT_FOUND:
                    raise
                missing.append(name)
                continue
            if record["status"] == "removed":
                raise BenchError(
                    f"identity {name} was removed from the chain, and a removed name is retired "
                    "for good: the bench's senders cannot be registered again on this cluster"
                )
            if record["public_key"] != keys[name].public_key.hex():
                raise BenchError(
                    f"identity {name} on the chain has another key than "
                    f"{layout.identity_key_file(name)}; restore its key file"
                )
            if record["status"] != "active" or "supplier" not in record["roles"]:
                raise BenchError(
                    f"identity {name} must be an active supplier to send the bench's "
                    f"transactions; it is {record['status']} with roles {record['roles']}"
                )
        if not missing:
            return
        admin = layout.identity_keys("admin")
        chain_id = (await client.status())["chain_id"]
        nonce = await client.next_nonce(admin.public_key)
        txs = [
            Transaction.create(
                admin,
                chain_id=chain_id,
                nonce=nonce + i,
                contract="identity",
                method="add",
                args={"name": name, "public_key": keys[name].public_key, "roles": ["supplier"]},
            )
            for i, name in enumerate(missing)
        ]
        console.print(f"registering {len(missing)} bench senders (signed by admin)...")
        for outcome in await client.submit_many([tx.wire for tx in txs]):
            if "error" in outcome:
                raise BenchError(f"registering the bench senders was refused: {outcome['error']}")
        for tx in txs:
            committed = await client.wait_committed(tx.hash.hex(), timeout_s)
            receipt_summary = committed["receipt"]
            if not receipt_summary["ok"]:
                raise BenchError(f"registering a bench sender failed: {receipt_summary['error']}")


def _fsyncs(layout: ClusterDir) -> bool:
    """Whether every node of `layout` forces its commits to disk (NodeConfig.fsync)."""
    return all(layout.config(name).fsync for name in layout.node_names())


async def _not_answering(layout: ClusterDir) -> list[str]:
    """Each node that does not answer its status within ANSWER_TIMEOUT_S (all asked at once),
    with what went wrong: the load goes to every node, so the bench needs them all."""

    async def ask(name: str) -> str | None:
        async with NodeClient(layout.config(name).url, timeout_s=ANSWER_TIMEOUT_S) as client:
            try:
                await client.request("GET", "/status", timeout_s=ANSWER_TIMEOUT_S)
            except ClientError as exc:
                return f"{name} ({exc})"
        return None

    answers = await asyncio.gather(*(ask(name) for name in layout.node_names()))
    return [answer for answer in answers if answer is not None]


def _measure(
    layout: ClusterDir, senders: list[str], duration_s: float, rate_per_s: float, batch: int
) -> dict[str, Any]:
    with console.status(f"offering load for {duration_s:.0f} s..."):
        return asyncio.run(_offer_load(layout, senders, duration_s, rate_per_s, batch))


@click.command()
@click.option(
    "--nodes",
    type=click.IntRange(min=4),
    default=4,
    show_default=True,
    help="Validators of the cluster it launches (n = 3f+1, at least 4).",
)
@click.option(
    "--duration",
    "duration_s",
    type=FiniteFloatRange(min=0, min_open=True),
    default=20.0,
    show_default=True,
    help="Seconds of load.",
)
@click.option(
    "--rate",
    "rate_per_s",
    type=FiniteFloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Offered load in transactions per second (open loop); 0 offers as fast as the "
    "cluster accepts (one request in flight per sender).",
)
@click.option(
    "--batch",
    type=click.IntRange(min=1, max=1000),
    default=BATCH_DEFAULT,
    show_default=True,
    help="Transactions per client request (POST /txs).",
)
@click.option(
    "--json",
    "json_file",
    type=OutputFile(),
    default=None,
    help="Also write the figures to this JSON file.",
)
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help=(
        "Use this running cluster instead of launching one; every node must answer, or the "
        "bench stops at once and changes nothing. The load comes from the same 32 senders as a "
        "launched cluster's (bench0 to bench31, suppliers): the first run makes their keys in "
        "DIR/identities and registers them with the cluster's admin identity."
    ),
)
@click.option(
    "--plot",
    "plot_file",
    type=OutputFile(),
    default=Path("bench.png"),
    show_default=True,
    help="PNG of committed throughput and commit latency over the run.",
)
@fsync_option
@guarded
def bench(
    nodes: int,
    duration_s: float,
    rate_per_s: float,
    batch: int,
    json_file: Path | None,
    directory: Path | None,
    plot_file: Path,
    fsync: bool,
) -> None:
    """Offer load from pre-signed transactions; print committed tx/s, commit latency and the
    time spent in each stage (admission, propose, the three phases, execution), the blocks
    committed and the nodes' CPU per committed transaction, and committed tx/s as a fraction of
    the signature bound: cores x ed25519 verifications a second on one core, by the nodes' own
    check (measured before and after the load, the mean) / nodes."""
    # A --dir that is no cluster, or whose nodes do not all answer, is refused before the
    # signature speed takes seconds to measure and before anything is written.
    existing = None if directory is None else layout_of(directory)
    if existing is not None and fsync:
        raise click.BadParameter(
            "applies to the cluster the bench launches; a --dir cluster keeps its nodes' own "
            "setting (`millchain init --fsync`)",
            param_hint="--fsync",
        )
    if existing is not None:
        silent = asyncio.run(_not_answering(existing))
        if silent:
            raise BenchError(
                f"{len(silent)} of the {len(existing.node_names())} nodes in {directory} do not "
                f"answer, and the bench loads every node: {'; '.join(silent)} (start them with "
                f"`millchain cluster up --dir {directory}`)"
            )
    before = verify_rate()
    console.print(f"ed25519 verify rate ({VERIFIER}): {before:,.0f} /s on one core")
    if existing is None:
        extra = bench_identities(BENCH_SENDERS)
        console.print(f"starting {nodes} nodes...")
        with temporary_cluster(
            "millchain-bench-", nodes=nodes, extra_identities=extra, fsync=fsync
        ) as layout:
            n = len(layout.node_names())
            fsyncs = _fsyncs(layout)  # read while the cluster's files are there
            figures = _measure(layout, [name for name, _ in extra], duration_s, rate_per_s, batch)
    else:
        layout = existing
        n = len(layout.node_names())
        fsyncs = _fsyncs(layout)
        senders = [name for name, _ in bench_identities(BENCH_SENDERS)]
        asyncio.run(_register_senders(layout, senders))
        figures = _measure(layout, senders, duration_s, rate_per_s, batch)
    # Again after the load: the shared machine's speed drifts over a run, and the bound is
    # taken from the mean of the two.
    after = verify_rate()
    console.print(f"ed25519 verify rate after the load: {after:,.0f} /s on one core")
    rate = (before + after) / 2
    cores = os.cpu_count() or 1
    bound = cores * rate / n
    report = {
        "nodes": n,
        # Whether the nodes force each commit to disk (--fsync, or the --dir cluster's setting).
        "fsync": fsyncs,
        "cores": cores,
        "verifier": VERIFIER,
        "verify_per_s": round(rate),
        "verify_per_s_before": round(before),
        "verify_per_s_after": round(after),
        "signature_bound_tx_per_s": round(bound),
        "fraction_of_bound": round(figures["committed_tx_per_s"] / bound, 3),
        **figures,
    }
    offered, sent = figures.get("offered_tx_per_s"), figures.get("sent_tx_per_s")
    if offered is not None and sent is not None and sent < SENT_SHORTFALL_WARN * offered:
        console.print(
            f"[yellow]warning: the senders fell behind the schedule: {sent:,.0f} tx/s sent of "
            f"{offered:,.0f} offered[/yellow]"
        )
    series = report.pop("timeline")
    stages = report.pop("stages_ms_p50")
    for key, value in report.items():
        unpaced = key == "offered_tx_per_s" and value is None
        console.print(
            f"  {key:26} {'unpaced (as fast as the cluster accepts)' if unpaced else value}"
        )
    console.print(
        "  stages, ms (median over nodes of their p50): "
        + ", ".join(f"{stage} {'-' if ms is None else ms}" for stage, ms in stages.items())
    )
    report["stages_ms_p50"] = stages
    write_plot(series, plot_file, title=f"millchain bench, n = {n}")
    console.print(f"wrote {plot_file}")
    report["timeline"] = series
    if json_file is not None:
        json_file.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        console.print(f"wrote {json_file}")
