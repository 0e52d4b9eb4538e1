"""Resident memory of every node under sustained load: does it stay flat?

    python scripts/memory_run.py [--nodes 4] [--minutes 10] [--rate 0] [--sample-every 10]
                                 [--threshold-pct 10] [--json memory-run.json] [--png FILE]

A fresh cluster starts on ports the OS reports free, with the bench's senders. Load runs for
--minutes through the bench's submitter (cli/bench_load.py): unpaced (as fast as the cluster
accepts) or at --rate tx/s, signed a chunk at a time as it is needed, since ten minutes at full
load is about a million transactions. Every --sample-every seconds each node's resident set
(VmRSS in /proc/PID/status, the PID from the cluster's pid files) and its height and mempool
size are recorded. A node is "flat" if its RSS grew less than --threshold-pct over the second
half of the run (from the first sample at or past half time to the last one): the first half
is where the mempool fills and caches warm (unpaced, on two cores, that took about two minutes:
a run of a few minutes judges a filling mempool, so the fullest mempool at half time and at the
end is printed too). Prints per node its RSS at minute 1, at the end, the maximum and the
second-half growth; writes every sample as JSON (and a PNG with --png, RSS, mempool and height
over time). Exit status 1 unless every node is flat.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from cli.bench_load import Counts, Pacer, SigningFeed, bench_identities, submit_in_order
from cli.bench_runs import machine, machine_line, nonnegative_float, positive_float, positive_int
from cli.cluster_cmd import temporary_cluster
from cli.layout import ClusterDir, LayoutError
from cli.process import running_node_pids
from ledger.errors import MillchainError
from node.client import ClientError, NodeClient

KIB_PER_MIB = 1024
STATUS_TIMEOUT_S = 5.0
SUBMIT_TIMEOUT_S = 30.0
MINUTE_S = 60.0


class MemoryRunError(MillchainError):
    """The run could not be made as asked (a node has no PID, the load failed)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeSample:
    rss_mib: float | None  # None: the process is gone
    height: int | None  # None: the node did not answer /status in time
    mempool: int | None
    txs_committed: int | None  # since the node started
    view: int | None  # a view change under load explains a pause in commits


@dataclass(frozen=True, slots=True, kw_only=True)
class Sample:
    at_s: float
    admitted: int  # transactions the load had got into a mempool so far
    loadgen_rss_mib: float | None  # this process: signing on the fly keeps it bounded
    nodes: dict[str, NodeSample]


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeVerdict:
    name: str
    rss_mib_minute_1: float | None
    minute_1_at_s: float | None  # when that sample was taken (the last one in a shorter run)
    rss_mib_end: float | None
    rss_mib_max: float | None
    second_half_growth_mib: float | None
    second_half_growth_pct: float | None
    verdict: str  # flat, growing, died, too few samples


def read_rss_mib(pid: int, proc: Path = Path("/proc")) -> float | None:
    """The resident set of a process (VmRSS) in MiB; None if it is gone."""
    try:
        text = (proc / str(pid) / "status").read_text(encoding="utf-8")
    except (FileNotFoundError, ProcessLookupError):
        return None
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            value, unit = line.split()[1:3]
            if unit != "kB":
                raise MemoryRunError(f"/proc/{pid}/status: VmRSS in {unit!r}, expected kB")
            return int(value) / KIB_PER_MIB
    return None  # a zombie has no VmRSS


def sample_times(duration_s: float, every_s: float) -> list[float]:
    """0, every, 2 x every, ... within the run, and the end of the run."""
    count = int(duration_s // every_s)
    times = [k * every_s for k in range(count + 1)]
    if duration_s - times[-1] > every_s / 100:
        times.append(duration_s)
    return times


def judge(
    name: str, series: Sequence[tuple[float, float | None]], duration_s: float, threshold_pct: float
) -> NodeVerdict:
    """Flat if the RSS grew less than `threshold_pct` from the first sample at or past half
    time to the last; `series` is (seconds since the start, RSS MiB or None if gone)."""
    present = [rss for _, rss in series if rss is not None]
    after_minute = [(t, rss) for t, rss in series if t >= MINUTE_S]
    minute_1 = after_minute[0] if after_minute else (series[-1] if series else (None, None))
    second_half = [(t, rss) for t, rss in series if t >= duration_s / 2]
    growth_mib = growth_pct = None
    if len(present) < len(series):
        verdict = "died"
    elif len(second_half) < 2:
        verdict = "too few samples"
    else:
        middle, end = second_half[0][1], second_half[-1][1]
        assert middle is not None and end is not None  # none is missing: checked above
        growth_mib = end - middle
        growth_pct = 100 * growth_mib / middle if middle > 0 else 0.0
        verdict = "flat" if growth_pct < threshold_pct else "growing"
    return NodeVerdict(
        name=name,
        rss_mib_minute_1=minute_1[1],
        minute_1_at_s=minute_1[0],
        rss_mib_end=series[-1][1] if series else None,
        rss_mib_max=max(present) if present else None,
        second_half_growth_mib=growth_mib,
        second_half_growth_pct=growth_pct,
        verdict=verdict,
    )


def verdict_table(verdicts: Sequence[NodeVerdict]) -> str:
    lines = [
        f"{'node':8} {'RSS @1 min':>12} {'RSS end':>10} {'RSS max':>10} "
        f"{'2nd-half growth':>22}  verdict"
    ]
    for v in verdicts:
        growth = (
            "n/a"
            if v.second_half_growth_mib is None or v.second_half_growth_pct is None
            else f"{v.second_half_growth_mib:+.1f} MiB ({v.second_half_growth_pct:+.1f} %)"
        )
        lines.append(
            f"{v.name:8} {_mib(v.rss_mib_minute_1):>12} {_mib(v.rss_mib_end):>10} "
            f"{_mib(v.rss_mib_max):>10} {growth:>22}  {v.verdict}"
        )
    return "\n".join(lines)


def _mib(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} MiB"


@dataclass(frozen=True, slots=True, kw_only=True)
class RunConfig:
    duration_s: float
    rate_per_s: float
    batch: int
    sample_every_s: float


async def _node_sample(client: NodeClient, pid: int) -> NodeSample:
    rss = read_rss_mib(pid)
    try:
        status = await client.request("GET", "/status", timeout_s=STATUS_TIMEOUT_S)
    except ClientError:
        return NodeSample(rss_mib=rss, height=None, mempool=None, txs_committed=None, view=None)
    return NodeSample(
        rss_mib=rss,
        height=int(status["height"]),
        mempool=int(status["mempool"]),
        txs_committed=int(status["counters"]["txs_committed"]),
        view=status.get("view"),
    )


async def _sample(
    at_s: float, clients: dict[str, NodeClient], pids: dict[str, int], counts: Counts
) -> Sample:
    names = list(clients)
    rows = await asyncio.gather(*(_node_sample(clients[n], pids[n]) for n in names))
    return Sample(
        at_s=round(at_s, 3),
        admitted=counts.admitted,
        loadgen_rss_mib=read_rss_mib(os.getpid()),
        nodes=dict(zip(names, rows, strict=True)),
    )


async def run_load(
    layout: ClusterDir,
    senders: Sequence[str],
    config: RunConfig,
    progress: Callable[[Sample], None],
) -> tuple[list[Sample], Counts]:
    """Load from every sender until the end of the run, sampling on the schedule meanwhile."""
    names = layout.node_names()
    try:
        pids = running_node_pids(layout)
    except LayoutError as exc:
        raise MemoryRunError(str(exc)) from exc
    chain_id = layout.genesis().chain_id
    counts = Counts()
    samples: list[Sample] = []
    async with contextlib.AsyncExitStack() as stack:
        clients = {
            name: await stack.enter_async_context(
                NodeClient(layout.config(name).url, timeout_s=SUBMIT_TIMEOUT_S)
            )
            for name in names
        }
        submit_clients = list(clients.values())
        feeds = [SigningFeed(layout.identity_keys(sender), chain_id=chain_id) for sender in senders]
        started = time.monotonic()
        stop_at = started + config.duration_s
        pacer = Pacer(config.rate_per_s)
        load = asyncio.ensure_future(
            asyncio.gather(
                *(
                    submit_in_order(
                        submit_clients[i % len(submit_clients)],
                        feed,
                        counts,
                        stop_at=stop_at,
                        pacer=pacer,
                        batch=config.batch,
                    )
                    for i, feed in enumerate(feeds)
                )
            )
        )
        try:
            for at_s in sample_times(config.duration_s, config.sample_every_s):
                delay = started + at_s - time.monotonic()
                if delay > 0:
                    await asyncio.wait({load}, timeout=delay)
                if load.done() and load.exception() is not None:
                    raise MemoryRunError(f"the load failed: {load.exception()}")
                samples.append(await _sample(time.monotonic() - started, clients, pids, counts))
                progress(samples[-1])
            await load
        finally:
            if not load.done():
                load.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await load
    return samples, counts


def committed_at_end(samples: Sequence[Sample]) -> int:
    """Transactions the most advanced node committed during the run."""
    if not samples:
        return 0
    first, last = samples[0].nodes, samples[-1].nodes
    gains = [
        (last[name].txs_committed or 0) - (first[name].txs_committed or 0)
        for name in last
        if last[name].txs_committed is not None
    ]
    return max(gains, default=0)


def mempool_line(samples: Sequence[Sample], duration_s: float) -> str:
    """The fullest mempool at half time and at the end: a mempool still filling in the
    second half is growth that is not a leak."""
    second_half = [s for s in samples if s.at_s >= duration_s / 2]
    if not second_half:
        return "mempool: no samples in the second half"

    def fullest(sample: Sample) -> int:
        return max((node.mempool or 0 for node in sample.nodes.values()), default=0)

    return (
        f"mempool (fullest node): {fullest(second_half[0]):,} transactions at half time, "
        f"{fullest(second_half[-1]):,} at the end"
    )


def height_at_end(samples: Sequence[Sample]) -> int:
    if not samples:
        return 0
    return max((node.height or 0 for node in samples[-1].nodes.values()), default=0)


def write_memory_plot(samples: Sequence[Sample], path: Path, *, title: str) -> None:
    import matplotlib  # noqa: PLC0415 (heavy; only when a plot is asked for)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    minutes = [s.at_s / MINUTE_S for s in samples]
    names = list(samples[0].nodes) if samples else []
    figure, (top, middle, bottom) = plt.subplots(3, 1, figsize=(8, 8), sharex=True)
    for name in names:
        rss = [_nan(s.nodes[name].rss_mib) for s in samples]
        top.plot(minutes, rss, label=name)
        middle.plot(minutes, [_nan(s.nodes[name].mempool) for s in samples], label=name)
        bottom.plot(minutes, [_nan(s.nodes[name].height) for s in samples], label=name)
    middle.set_ylabel("mempool (transactions)")
    middle.set_ylim(bottom=0)
    middle.grid(alpha=0.3)
    top.set_ylabel("resident memory (MiB)")
    top.set_ylim(bottom=0)
    top.set_title(title)
    top.legend()
    top.grid(alpha=0.3)
    bottom.set_ylabel("committed height")
    bottom.set_xlabel("minutes since the load started")
    bottom.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _nan(value: float | None) -> float:
    return float("nan") if value is None else float(value)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--nodes", type=positive_int, default=4)
    parser.add_argument("--minutes", type=positive_float, default=10.0, help="length of the load")
    parser.add_argument(
        "--rate", type=nonnegative_float, default=0.0, help="offered tx/s; 0: as fast as accepted"
    )
    parser.add_argument("--batch", type=positive_int, default=64, help="transactions a request")
    parser.add_argument("--sample-every", type=positive_float, default=10.0, help="seconds")
    parser.add_argument(
        "--threshold-pct",
        type=positive_float,
        default=10.0,
        help="second-half RSS growth below which a node counts as flat",
    )
    parser.add_argument("--json", type=Path, default=Path("memory-run.json"))
    parser.add_argument("--png", type=Path, default=None, help="plot RSS over time here")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    config = RunConfig(
        duration_s=args.minutes * MINUTE_S,
        rate_per_s=args.rate,
        batch=args.batch,
        sample_every_s=args.sample_every,
    )
    info = machine()
    print(f"machine: {machine_line(info)}", flush=True)
    senders = bench_identities()
    print(f"starting {args.nodes} nodes...", flush=True)
    try:
        with temporary_cluster(
            "millchain-memory-", nodes=args.nodes, extra_identities=senders
        ) as layout:
            print(f"cluster folder: {layout.root}", flush=True)
            samples, counts = asyncio.run(
                run_load(layout, [name for name, _ in senders], config, _progress)
            )
    except MemoryRunError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    names = list(samples[0].nodes)
    verdicts = [
        judge(
            name,
            [(s.at_s, s.nodes[name].rss_mib) for s in samples],
            config.duration_s,
            args.threshold_pct,
        )
        for name in names
    ]
    flat = all(v.verdict == "flat" for v in verdicts)
    committed = committed_at_end(samples)
    load = "unpaced" if args.rate == 0 else f"{args.rate:g} tx/s offered"
    print(
        f"\n{args.minutes:g} min of load ({load}): {counts.admitted:,} transactions admitted, "
        f"{counts.rejected} rejected; {committed:,} committed "
        f"({committed / config.duration_s:,.0f} /s), height {height_at_end(samples)}\n"
    )
    print(verdict_table(verdicts))
    print(mempool_line(samples, config.duration_s))
    if config.duration_s < MINUTE_S:
        print("(a run shorter than a minute: 'RSS @1 min' is its last sample)")
    print(
        f"\nflat means second-half growth under {args.threshold_pct:g} %: "
        f"{'every node is flat' if flat else 'NOT every node is flat'}"
    )
    report = {
        "machine": info,
        "settings": {
            "nodes": args.nodes,
            "minutes": args.minutes,
            "rate_per_s": args.rate,
            "batch": args.batch,
            "sample_every_s": args.sample_every,
            "threshold_pct": args.threshold_pct,
        },
        "admitted": counts.admitted,
        "rejected": counts.rejected,
        "committed": committed,
        "height": height_at_end(samples),
        "flat": flat,
        "nodes": [asdict(v) for v in verdicts],
        "samples": [asdict(s) for s in samples],
    }
    args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.json}")
    if args.png is not None:
        write_memory_plot(samples, args.png, title=f"millchain, n = {args.nodes}: resident memory")
        print(f"wrote {args.png}")
    return 0 if flat else 1


def _progress(sample: Sample) -> None:
    rss = " ".join(f"{_mib(node.rss_mib)}" for node in sample.nodes.values())
    nodes = sample.nodes.values()
    height = max((node.height for node in nodes if node.height is not None), default=0)
    view = max((node.view for node in nodes if node.view is not None), default=0)
    mempool = max((node.mempool for node in nodes if node.mempool is not None), default=0)
    print(
        f"{sample.at_s:7.1f} s  height {height:6}  view {view:3}  mempool {mempool:7,}  "
        f"admitted {sample.admitted:9,}  RSS {rss}",
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
