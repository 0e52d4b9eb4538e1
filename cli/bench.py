"""`millchain bench`: committed throughput and commit latency of a cluster under offered load.

Load comes from transactions signed before the cluster starts (signing is not part of what is
measured), submitted in batches (`POST /txs`) over a few keep-alive connections spread over the
nodes; each connection owns some senders, so every sender's nonces arrive in order. Without
`--rate` the load is a flood (each connection sends its next batch as soon as the last one is
answered), which measures the maximum throughput; with `--rate` batches leave on a fixed clock,
which measures latency at that offered load. A watcher long-polls one node's `GET /commits` and
stamps each transaction when it sees it committed; latency is that stamp minus the moment its
batch was sent. Throughput counts commits inside the load window after a warm-up.

The machine's ed25519 verification rate is measured in the same run, so throughput is also
printed as a fraction of the signature bound: cores x verify rate / n (every node verifies every
transaction once). The bench runs on the same cores as the cluster, so it reports its own CPU
share and each node's.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
from nacl.signing import SigningKey

from cli.cluster_cmd import start_all
from cli.common import console, guarded, layout_of
from cli.layout import ClusterDir, init_cluster
from cli.process import node_pid, stop_node
from ledger.crypto import KeyPair
from ledger.genesis import Role
from ledger.tx import Transaction
from node.client import ClientError, NodeClient

BENCH_SENDERS = 64
CONNECTIONS = 4
BATCH_TXS_MAX = 500
FLOOD_TX_PER_S_MAX = 12_000  # how many transactions a flood may need, per second of load
WARMUP_S = 3.0
DRAIN_S = 15.0
TICK_S = 0.02
HASH_BYTES = 32


def verify_rate(duration_s: float = 1.0) -> float:
    """ed25519 verifications per second on one core (PyNaCl, 240-byte messages)."""
    key = SigningKey.generate()
    message = os.urandom(240)
    signed = key.sign(message)
    verify_key = key.verify_key
    count = 0
    started = time.perf_counter()
    while time.perf_counter() - started < duration_s:
        for _ in range(200):
            verify_key.verify(signed)
        count += 200
    return count / (time.perf_counter() - started)


# -- pre-signing ------------------------------------------------------------------------------


def _sign_range(seed: bytes, chain_id: str, start: int, count: int) -> list[tuple[bytes, bytes]]:
    """(wire, hash) of one sender's transactions with nonces start .. start+count-1."""
    keys = KeyPair.from_seed(seed)
    out = []
    for nonce in range(start, start + count):
        tx = Transaction.create(
            keys,
            chain_id=chain_id,
            nonce=nonce,
            contract="inventory",
            method="receive",
            args={"item": f"part-{nonce % 50}", "location": "bench", "qty": 1},
        )
        out.append((tx.to_wire(), tx.hash))
    return out


def presign(seeds: list[bytes], chain_id: str, per_sender: int) -> list[list[tuple[bytes, bytes]]]:
    """Every sender's transactions, signed on all cores before anything is measured."""
    workers = os.cpu_count() or 1
    chunk = max(1, per_sender // 4)
    jobs = [
        (s, start, min(chunk, per_sender - start))
        for s in range(len(seeds))
        for start in range(0, per_sender, chunk)
    ]
    per: list[list[tuple[bytes, bytes]]] = [[] for _ in seeds]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [
            (s, pool.submit(_sign_range, seeds[s], chain_id, start, count))
            for s, start, count in jobs
        ]
        for s, future in futures:
            per[s].extend(future.result())
    return per


# -- load -----------------------------------------------------------------------------------


@dataclass(slots=True)
class Samples:
    submitted_at: dict[bytes, float] = field(default_factory=dict)
    committed_at: dict[bytes, float] = field(default_factory=dict)
    rejected: int = 0
    retried: int = 0
    requests: int = 0


@dataclass(slots=True)
class _Connection:
    """One keep-alive connection and the senders whose transactions it submits, interleaved."""

    client: NodeClient
    queue: list[tuple[bytes, bytes]]
    position: int = 0
    retry: list[tuple[bytes, bytes]] = field(default_factory=list)

    def take(self, count: int) -> list[tuple[bytes, bytes]]:
        batch = self.retry[:count]
        self.retry = self.retry[count:]
        room = count - len(batch)
        if room > 0:
            batch.extend(self.queue[self.position : self.position + room])
            self.position += room
        return batch


def _interleave(per_sender: list[list[tuple[bytes, bytes]]]) -> list[tuple[bytes, bytes]]:
    """Round-robin over senders, so every sender's nonces stay in order."""
    out: list[tuple[bytes, bytes]] = []
    for row in zip(*per_sender, strict=False):
        out.extend(row)
    return out


async def _send(
    connection: _Connection, batch: list[tuple[bytes, bytes]], samples: Samples
) -> None:
    now = time.monotonic()
    for _, tx_hash in batch:
        samples.submitted_at.setdefault(tx_hash, now)
    samples.requests += 1
    try:
        results = await connection.client.submit_many([wire for wire, _ in batch])
    except ClientError:
        connection.retry.extend(batch)  # the node was busy or away: offer them again
        await asyncio.sleep(0.05)
        return
    for item, result in zip(batch, results, strict=True):
        status = result.get("status")
        if status is None or status == 409:  # 409: known already (a resend)
            continue
        if status == 503:  # mempool full or too far ahead: back-pressure, offer it again
            connection.retry.append(item)
            samples.retried += 1
        else:
            samples.rejected += 1
    if len(connection.retry) > BATCH_TXS_MAX:
        await asyncio.sleep(0.02)


async def _flood(connection: _Connection, samples: Samples, stop_at: float) -> None:
    while time.monotonic() < stop_at:
        batch = connection.take(BATCH_TXS_MAX)
        if not batch:
            return
        await _send(connection, batch, samples)


async def _paced(
    connection: _Connection, samples: Samples, stop_at: float, tx_per_s: float
) -> None:
    """Send at a fixed rate: every tick, what the clock says is due (a late tick catches up)."""
    started = time.monotonic()
    sent = 0
    in_flight: set[asyncio.Task[None]] = set()
    while True:
        now = time.monotonic()
        if now >= stop_at:
            break
        due = int((now - started) * tx_per_s) - sent
        while due > 0:
            batch = connection.take(min(due, BATCH_TXS_MAX))
            if not batch:
                break
            sent += len(batch)
            due -= len(batch)
            task = asyncio.create_task(_send(connection, batch, samples))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
        await asyncio.sleep(TICK_S)
    await asyncio.gather(*in_flight)


async def _watcher(
    client: NodeClient, start_height: int, samples: Samples, stop: asyncio.Event
) -> None:
    height = start_height + 1
    while not stop.is_set():
        try:
            answer = await client.commits(height, wait_ms=200)
        except ClientError:
            await asyncio.sleep(0.05)
            continue
        now = time.monotonic()
        for block_height, _, hashes in answer["blocks"]:
            for offset in range(0, len(hashes), HASH_BYTES):
                samples.committed_at.setdefault(hashes[offset : offset + HASH_BYTES], now)
            height = block_height + 1
        if answer["blocks"] == [] and answer["head"] >= height:
            height = answer["head"] + 1  # fell out of the node's window: skip ahead


def _cpu_s(pid: int | None) -> float:
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def offer_load(
    layout: ClusterDir,
    per_sender: list[list[tuple[bytes, bytes]]],
    duration_s: float,
    rate: float | None,
) -> dict[str, Any]:
    names = layout.node_names()
    urls = [layout.config(name).url for name in names]
    groups = [per_sender[i::CONNECTIONS] for i in range(CONNECTIONS)]
    clients = [NodeClient(urls[i % len(urls)], timeout_s=30) for i in range(CONNECTIONS)]
    watch = NodeClient(urls[1 % len(urls)], timeout_s=30)
    for client in [*clients, watch]:
        await client.__aenter__()
    connections = [
        _Connection(client=c, queue=_interleave(g)) for c, g in zip(clients, groups, strict=True)
    ]
    samples = Samples()
    stop = asyncio.Event()
    pids = {name: node_pid(layout, name) for name in names}
    try:
        start_height = (await watch.status())["height"]
        watcher = asyncio.create_task(_watcher(watch, start_height, samples, stop))
        cpu_before = {name: _cpu_s(pid) for name, pid in pids.items()}
        own_before = time.process_time()
        started = time.monotonic()
        stop_at = started + duration_s
        if rate is None:
            await asyncio.gather(*(_flood(c, samples, stop_at) for c in connections))
        else:
            share = rate / len(connections)
            await asyncio.gather(*(_paced(c, samples, stop_at, share) for c in connections))
        load_end = time.monotonic()
        own_cpu_s = time.process_time() - own_before
        node_cpu_s = {name: _cpu_s(pid) - cpu_before[name] for name, pid in pids.items()}
        deadline = load_end + DRAIN_S
        while time.monotonic() < deadline and len(samples.committed_at) < len(samples.submitted_at):
            await asyncio.sleep(0.05)
        stop.set()
        await watcher
    finally:
        for client in [*clients, watch]:
            await client.__aexit__(None, None, None)
    return _figures(samples, started, load_end, own_cpu_s, node_cpu_s)


def _figures(
    samples: Samples,
    started: float,
    load_end: float,
    own_cpu_s: float,
    node_cpu_s: dict[str, float],
) -> dict[str, Any]:
    load_s = load_end - started
    warmup_s = min(WARMUP_S, load_s / 4)
    window_start = started + warmup_s
    in_window = sum(1 for t in samples.committed_at.values() if window_start <= t <= load_end)
    latencies_ms = sorted(
        (samples.committed_at[h] - t) * 1000
        for h, t in samples.submitted_at.items()
        if h in samples.committed_at
    )
    offered = sum(1 for t in samples.submitted_at.values() if t >= window_start)
    return {
        "submitted": len(samples.submitted_at),
        "committed": len(latencies_ms),
        "rejected": samples.rejected,
        "retried_busy": samples.retried,
        "requests": samples.requests,
        "load_s": round(load_s, 3),
        "warmup_s": round(warmup_s, 3),
        "offered_tx_per_s": round(offered / max(load_end - window_start, 1e-9), 1),
        "committed_tx_per_s": round(in_window / max(load_end - window_start, 1e-9), 1),
        "latency_ms_p50": _pct(latencies_ms, 50),
        "latency_ms_p99": _pct(latencies_ms, 99),
        "latency_ms_mean": round(statistics.fmean(latencies_ms), 1) if latencies_ms else None,
        "client_cpu_core_share": round(own_cpu_s / load_s, 3),
        "node_cpu_core_share": {name: round(s / load_s, 3) for name, s in node_cpu_s.items()},
    }


def _pct(values: list[float], pct: int) -> float | None:
    if not values:
        return None
    index = min(len(values) - 1, round(pct / 100 * (len(values) - 1)))
    return round(values[index], 1)


# -- the command ------------------------------------------------------------------------------


def run_bench(
    *,
    nodes: int,
    duration_s: float,
    rate: float | None,
    directory: Path | None = None,
) -> dict[str, Any]:
    """Launch a cluster (or use `directory`'s), offer load, stop it; return the figures."""
    verify_per_s = verify_rate()
    own = directory is None
    root = Path(tempfile.mkdtemp(prefix="millchain-bench-")) if own else None
    if root is not None:
        extra = tuple((f"bench{i}", (Role.SUPPLIER,)) for i in range(BENCH_SENDERS))
        layout = init_cluster(root / "cluster", nodes=nodes, extra_identities=extra)
        senders = [name for name, _ in extra]
    else:
        assert directory is not None
        layout = layout_of(directory)
        senders = ["supplier"]
    n = len(layout.node_names())
    tx_per_s = FLOOD_TX_PER_S_MAX if rate is None else rate * 1.2
    per_sender_count = int(tx_per_s * duration_s / len(senders)) + 50
    seeds = [layout.identity_keys(name).seed for name in senders]
    try:
        with console.status(f"signing {per_sender_count * len(senders):,} transactions..."):
            per_sender = presign(seeds, layout.genesis().chain_id, per_sender_count)
        if own:
            with console.status(f"starting {n} nodes..."):
                start_all(layout, timeout_s=60)
        load = "a flood" if rate is None else f"{rate:,.0f} tx/s"
        with console.status(f"offering {load} for {duration_s:.0f} s..."):
            figures = asyncio.run(offer_load(layout, per_sender, duration_s, rate))
    finally:
        if own:
            for name in layout.node_names():
                stop_node(layout, name)
            assert root is not None
            shutil.rmtree(root, ignore_errors=True)
    cores = os.cpu_count() or 1
    bound = cores * verify_per_s / n
    return {
        "nodes": n,
        "cores": cores,
        "offered_rate": "flood" if rate is None else rate,
        "verify_per_s": round(verify_per_s),
        "signature_bound_tx_per_s": round(bound),
        "fraction_of_bound": round(figures["committed_tx_per_s"] / bound, 3),
        **figures,
    }


@click.command()
@click.option(
    "--nodes", default=4, show_default=True, help="Validators of the cluster it launches."
)
@click.option("--duration", "duration_s", default=20.0, show_default=True, help="Seconds of load.")
@click.option(
    "--rate",
    type=float,
    default=None,
    help="Offered load in tx/s (default: a flood, to measure the maximum throughput).",
)
@click.option(
    "--json",
    "json_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the figures to this JSON file.",
)
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Use this running cluster instead of launching one (load from its supplier).",
)
@guarded
def bench(
    nodes: int,
    duration_s: float,
    rate: float | None,
    json_file: Path | None,
    directory: Path | None,
) -> None:
    """Offer load from pre-signed transactions; print committed tx/s and commit latency."""
    report = run_bench(nodes=nodes, duration_s=duration_s, rate=rate, directory=directory)
    for key, value in report.items():
        console.print(f"  {key:26} {value}")
    console.print(
        f"committed {report['committed_tx_per_s']:,.0f} tx/s = "
        f"{report['fraction_of_bound']:.2f} of the signature bound "
        f"({report['cores']} cores x {report['verify_per_s']:,} verify/s / {report['nodes']} nodes)"
    )
    if json_file is not None:
        json_file.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        console.print(f"wrote {json_file}")
