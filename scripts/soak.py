"""Soak with a nemesis: does a cluster under crashes, pauses and partitions lose or duplicate a
transaction whose commit a client saw?

    python scripts/soak.py [--nodes 4] [--minutes 5] [--seed 1] [--json soak.json] [--dir DIR]

A fresh cluster starts on ports the OS reports free. Clients submit signed inventory receipts
from many senders to random nodes (one transaction outstanding per sender, the same signed bytes
resubmitted to another node when one does not answer or does not commit it in time) and record
every commit they are told of, with its height. Meanwhile a seeded nemesis, one action at a time
and never more than f nodes at once, SIGKILLs and restarts nodes, SIGSTOPs and SIGCONTs them, and
cuts up to f of them off from the rest through the nodes' fault layer (`/admin/faults`), then
heals and waits for the victims to catch up. At the end every fault is healed, the load stops,
the nodes must converge, and every node's certified chain is read back and checked: each
acknowledged transaction on every node exactly once, at the height the client was told; no
transaction twice; the same block hash at every height and the same state digests everywhere;
no node halted. The seed fixes the nemesis's schedule (kinds, victims, durations), not the
interleaving with the load. Exit status 1 on any loss, duplicate or divergence.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import aiohttp

from cli.cluster_cmd import start_all
from cli.faults_cmd import partition_plan
from cli.layout import ClusterDir, init_cluster
from cli.process import is_alive, kill_node, node_pid, start_node, stop_node
from ledger.block import ZERO_HASH
from ledger.genesis import Genesis, Role
from ledger.tx import Transaction
from node.client import ClientError, NodeClient, wait_until_up
from node.protocol import PROTOCOL_HEADER, PROTOCOL_VERSION
from node.sync import FETCH_BLOCKS_MAX, SyncError, verify_blocks

log = logging.getLogger("soak")

STATUS_TIMEOUT_S = 3.0
ADMIN_TIMEOUT_S = 5.0
START_TIMEOUT_S = 60.0
RECENT_BLOCKS_COMPARED = 1000


class SoakError(Exception):
    """The soak could not be run as asked (a node refused a well-formed transaction, a fault
    could not be set)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SoakConfig:
    nodes: int = 4
    duration_s: float = 300.0
    seed: int = 1
    clients: int = 4
    senders_per_client: int = 4  # one transaction outstanding per sender
    items: int = 64
    txs_max: int = 1_000_000
    quiet_s: tuple[float, float] = (2.0, 8.0)  # between two nemesis actions
    fault_s: tuple[float, float] = (2.0, 8.0)  # how long one fault lasts
    every_kind: bool = True  # kill, pause and partition each at least once, even past duration
    settle_s: float = 15.0  # load without faults after the last heal, before the load stops
    submit_timeout_s: float = 3.0
    commit_wait_ms: int = 2000
    recover_timeout_s: float = 90.0
    converge_timeout_s: float = 120.0

    @property
    def f(self) -> int:
        return (self.nodes - 1) // 3

    def senders(self) -> list[str]:
        return [f"soak{c}-{s}" for c in range(self.clients) for s in range(self.senders_per_client)]


def _utc() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


# -- processes touched ---------------------------------------------------------------------------


@dataclass(slots=True)
class Processes:
    """Every node process the soak started or stopped, by PID, so a `finally` can let the
    stopped ones go on and kill whatever it started that still runs."""

    started: set[int] = field(default_factory=set)
    stopped: set[int] = field(default_factory=set)

    def release(self) -> None:
        for pid in sorted(self.stopped):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        self.stopped.clear()

    def kill_leftovers(self) -> None:
        for pid in sorted(self.started):
            if is_alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        self.started.clear()


# -- load ---------------------------------------------------------------------------------------


@dataclass(slots=True)
class LoadFigures:
    submitted: int = 0  # distinct transactions signed and sent
    attempts: int = 0  # POST /tx calls, resubmissions included
    refused_known: int = 0  # 409: the node already had it (a resubmission deduplicated)
    unreachable: int = 0  # timeouts, refused connections, 503
    errors: list[str] = field(default_factory=list)  # any other refusal: a failure


class Clients:
    """Concurrent clients, each with a few senders; each sender keeps one transaction
    outstanding and resubmits the same bytes to other nodes until it sees it committed."""

    def __init__(self, layout: ClusterDir, config: SoakConfig) -> None:
        self.layout = layout
        self.config = config
        self.names = layout.validator_names()
        self.chain_id = layout.genesis().chain_id
        self.acked: dict[str, int] = {}  # tx hash -> height the client was told
        self.unacked: set[str] = set()  # submitted, no commit seen (yet)
        self.figures = LoadFigures()
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._client(index)) for index in range(self.config.clients)
        ]

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)

    async def _client(self, index: int) -> None:
        rng = random.Random(f"{self.config.seed}-client-{index}")
        per = self.config.senders_per_client
        senders = self.config.senders()[index * per : (index + 1) * per]
        async with contextlib.AsyncExitStack() as stack:
            nodes = {
                name: await stack.enter_async_context(
                    NodeClient(self.layout.config(name).url, timeout_s=self.config.submit_timeout_s)
                )
                for name in self.names
            }
            await asyncio.gather(*(self._sender(name, rng, nodes) for name in senders))

    async def _sender(
        self, identity: str, rng: random.Random, nodes: dict[str, NodeClient]
    ) -> None:
        keys = self.layout.identity_keys(identity)
        nonce = 0  # a fresh identity of a fresh chain
        while not self._stop.is_set() and self.figures.submitted < self.config.txs_max:
            tx = Transaction.create(
                keys,
                chain_id=self.chain_id,
                nonce=nonce,
                contract="inventory",
                method="receive",
                args={
                    "item": f"soak-{rng.randrange(self.config.items)}",
                    "location": identity,
                    "qty": 1,
                },
            )
            raw, tx_hash = tx.to_wire(), tx.hash.hex()  # resubmissions send these same bytes
            self.figures.submitted += 1
            self.unacked.add(tx_hash)
            node = rng.choice(self.names)
            while True:
                if self._stop.is_set():
                    return
                try:
                    height = await self._attempt(nodes[node], raw, tx_hash)
                except SoakError as exc:
                    self.figures.errors.append(f"{identity} via {node}: {exc}")
                    return
                if height is not None:
                    self.unacked.discard(tx_hash)
                    self.acked[tx_hash] = height
                    break
                node = rng.choice([n for n in self.names if n != node])
            nonce += 1

    async def _attempt(self, client: NodeClient, raw: bytes, tx_hash: str) -> int | None:
        """The height the node says the transaction committed at, or None to try elsewhere."""
        self.figures.attempts += 1
        try:
            await client.submit(raw)
        except ClientError as exc:
            if exc.status == 409:
                self.figures.refused_known += 1
            elif exc.status is None or exc.status == 503:
                self.figures.unreachable += 1
                return None
            else:
                raise SoakError(f"transaction {tx_hash} refused: {exc}") from exc
        try:
            result = await client.tx(tx_hash, wait_ms=self.config.commit_wait_ms)
        except ClientError as exc:
            if exc.status in {None, 404, 503}:  # 404: a restarted node forgot its mempool
                self.figures.unreachable += 1
                return None
            raise SoakError(f"asking for {tx_hash}: {exc}") from exc
        return int(result["height"]) if result["status"] == "committed" else None


# -- nemesis ------------------------------------------------------------------------------------


class Kind(StrEnum):
    KILL = "kill"  # SIGKILL, later restart from disk
    PAUSE = "pause"  # SIGSTOP, later SIGCONT
    PARTITION = "partition"  # cut off from the rest by the fault layer, later healed


async def _status(url: str) -> dict[str, Any] | None:
    try:
        async with NodeClient(url, timeout_s=STATUS_TIMEOUT_S) as client:
            return await client.status()
    except ClientError:
        return None


async def _statuses(layout: ClusterDir, names: list[str]) -> dict[str, dict[str, Any] | None]:
    rows = await asyncio.gather(*(_status(layout.config(n).url) for n in names))
    return dict(zip(names, rows, strict=True))


async def _post_faults(url: str, body: dict[str, Any]) -> None:
    timeout = aiohttp.ClientTimeout(total=ADMIN_TIMEOUT_S)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.post(f"{url}/admin/faults", json=body) as response,
        ):
            if response.status != 200:
                raise SoakError(
                    f"{url}/admin/faults {body}: {response.status} {await response.text()}"
                )
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise SoakError(f"{url}/admin/faults {body}: {exc or type(exc).__name__}") from exc


class Nemesis:
    """One fault at a time on at most f nodes: apply, hold, undo, wait for the victims to catch
    up, rest. Every step is logged with the time."""

    def __init__(self, layout: ClusterDir, config: SoakConfig, processes: Processes) -> None:
        self.layout = layout
        self.config = config
        self.processes = processes
        self.names = layout.validator_names()
        self.rng = random.Random(config.seed)
        self.started_at = time.monotonic()
        self.log: list[dict[str, Any]] = []
        self.failures: list[str] = []
        self._paused: dict[str, int] = {}
        self._killed: set[str] = set()
        self._partitioned = False

    def _record(self, kind: str, event: str, nodes: list[str], **detail: Any) -> None:
        entry = {
            "t_s": round(time.monotonic() - self.started_at, 3),
            "utc": _utc(),
            "kind": kind,
            "event": event,
            "nodes": nodes,
            **detail,
        }
        self.log.append(entry)
        log.info("nemesis %7.1fs %-9s %-9s %s %s", entry["t_s"], kind, event, nodes, detail or "")

    def note(self, kind: str, text: str) -> None:
        self._record(kind, "note", [], text=text)

    def counts(self) -> dict[str, int]:
        counted = Counter(e["kind"] for e in self.log if e["event"] == "start")
        return {kind.value: counted.get(kind.value, 0) for kind in Kind}

    async def run(self, deadline: float) -> None:
        owed = list(Kind) if self.config.every_kind else []
        self.rng.shuffle(owed)
        while time.monotonic() < deadline or owed:
            await asyncio.sleep(self.rng.uniform(*self.config.quiet_s))
            kind = owed.pop(0) if owed else self.rng.choice(list(Kind))
            victims = sorted(self.rng.sample(self.names, self.rng.randint(1, self.config.f)))
            hold_s = round(self.rng.uniform(*self.config.fault_s), 3)
            await self._apply(kind, victims, hold_s)
            await asyncio.sleep(hold_s)
            reference = await self._head_of_others(victims)
            await self.heal()
            if not await self._caught_up(kind, victims, reference):
                return  # a failure is recorded; more faults would only blur it

    async def _apply(self, kind: Kind, victims: list[str], hold_s: float) -> None:
        if kind is Kind.KILL:
            for name in victims:
                await asyncio.to_thread(kill_node, self.layout, name)
                self._killed.add(name)
        elif kind is Kind.PAUSE:
            for name in victims:
                pid = node_pid(self.layout, name)
                if pid is None:
                    raise SoakError(f"{name} is not running; cannot pause it")
                self.processes.stopped.add(pid)
                os.kill(pid, signal.SIGSTOP)
                self._paused[name] = pid
        else:
            rest = [n for n in self.names if n not in victims]
            self._partitioned = True
            for name, cuts in partition_plan([victims, rest]).items():
                url = self.layout.config(name).url
                await _post_faults(url, {"clear": True})
                for peer in cuts:
                    await _post_faults(url, {"peer": peer, "blocked": True})
        self._record(kind, "start", victims, hold_s=hold_s)

    async def heal(self) -> None:
        """Undo whatever fault is on: SIGCONT, restart, clear every fault rule."""
        if self._paused:
            for pid in sorted(self._paused.values()):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)
                self.processes.stopped.discard(pid)
            self._record(Kind.PAUSE, "end", sorted(self._paused))
            self._paused.clear()
        if self._killed:
            for name in sorted(self._killed):
                self.processes.started.add(start_node(self.layout, name))
            urls = [self.layout.config(n).url for n in sorted(self._killed)]
            await wait_until_up(urls, START_TIMEOUT_S)
            self._record(Kind.KILL, "end", sorted(self._killed))
            self._killed.clear()
        if self._partitioned:
            for name in self.names:
                await _post_faults(self.layout.config(name).url, {"clear": True})
            self._record(Kind.PARTITION, "end", list(self.names))
            self._partitioned = False

    async def _head_of_others(self, victims: list[str]) -> int:
        others = [n for n in self.names if n not in victims]
        rows = await _statuses(self.layout, others)
        return max((r["height"] for r in rows.values() if r is not None), default=0)

    async def _caught_up(self, kind: Kind, victims: list[str], height: int) -> bool:
        """Wait until every victim reaches the height the others had when the fault ended."""
        deadline = time.monotonic() + self.config.recover_timeout_s
        while True:
            rows = await _statuses(self.layout, victims)
            if all(r is not None and r["height"] >= height for r in rows.values()):
                self._record(kind, "caught-up", victims, height=height)
                return True
            if time.monotonic() > deadline:
                seen = {n: None if r is None else r["height"] for n, r in rows.items()}
                self.failures.append(
                    f"{victims} did not reach height {height} within "
                    f"{self.config.recover_timeout_s:.0f} s after a {kind}: {seen}"
                )
                self._record(kind, "stuck", victims, height=height, seen=seen)
                return False
            await asyncio.sleep(0.2)


# -- the final check ----------------------------------------------------------------------------


@dataclass(slots=True)
class Chain:
    """One node's certified chain up to a height: block hashes, and where each tx sits."""

    name: str
    height: int
    block_hashes: dict[int, str] = field(default_factory=dict)
    tx_heights: dict[str, list[int]] = field(default_factory=dict)


async def read_chain(
    session: aiohttp.ClientSession, genesis: Genesis, name: str, url: str, height: int
) -> Chain:
    """Blocks 1..height from a node, each checked against its commit certificate and chained
    to the one before it."""
    chain = Chain(name=name, height=height)
    prev_hash, start = ZERO_HASH, 1
    while start <= height:
        end = min(height, start + FETCH_BLOCKS_MAX - 1)
        async with session.get(
            f"{url}/peer/blocks",
            params={"from": start, "to": end},
            headers={PROTOCOL_HEADER: str(PROTOCOL_VERSION)},
        ) as answer:
            if answer.status != 200:
                raise SoakError(f"{name} /peer/blocks from {start}: {answer.status}")
            raw = await answer.read()
        try:
            blocks = verify_blocks(genesis, raw, expect_height=start, prev_hash=prev_hash)
        except SyncError as exc:
            raise SoakError(f"{name} serves blocks that do not check out: {exc}") from exc
        if not blocks:
            raise SoakError(f"{name} has no block at height {start}")
        for block, _ in blocks:
            chain.block_hashes[block.height] = block.hash.hex()
            for tx in block.txs:
                chain.tx_heights.setdefault(tx.hash.hex(), []).append(block.height)
        prev_hash, start = blocks[-1][0].hash, blocks[-1][0].height + 1
    return chain


async def converge(layout: ClusterDir, timeout_s: float) -> tuple[dict[str, Any], list[str]]:
    """Poll until every node answers with the same height, head and state digest and an empty
    mempool; returns the last statuses and what was still wrong at the deadline."""
    names = layout.validator_names()
    deadline = time.monotonic() + timeout_s
    while True:
        rows = await _statuses(layout, names)
        problems = []
        down = [n for n, r in rows.items() if r is None]
        if down:
            problems.append(f"not answering: {down}")
        live = [r for r in rows.values() if r is not None]
        heads = {(r["height"], r["head"], r["state_digest"]) for r in live}
        if len(heads) > 1:
            problems.append(f"heads differ: { {r['name']: r['height'] for r in live} }")
        pending = {r["name"]: r["mempool"] for r in live if r["mempool"]}
        if pending:
            problems.append(f"transactions still pending: {pending}")
        if not problems or time.monotonic() > deadline:
            return rows, problems
        await asyncio.sleep(0.2)


@dataclass(slots=True)
class Verdict:
    """Per transaction hash, what is wrong with it on which node."""

    lost: dict[str, list[str]] = field(default_factory=dict)
    moved: dict[str, list[str]] = field(default_factory=dict)  # at another height than told
    duplicated: dict[str, list[str]] = field(default_factory=dict)
    divergent_heights: list[int] = field(default_factory=list)
    unacked_committed: int = 0


def judge(chains: list[Chain], acked: dict[str, int], unacked: set[str]) -> Verdict:
    verdict = Verdict()
    heights = sorted(set().union(*(c.block_hashes for c in chains)))
    for height in heights:
        if len({c.block_hashes[height] for c in chains if height in c.block_hashes}) != 1:
            verdict.divergent_heights.append(height)
    for chain in chains:
        for tx_hash, found in chain.tx_heights.items():
            if len(found) > 1:
                verdict.duplicated.setdefault(tx_hash, []).append(f"{chain.name} at {found}")
    for tx_hash, height in sorted(acked.items()):
        for chain in chains:
            found = chain.tx_heights.get(tx_hash, [])
            if not found and height <= chain.height:
                verdict.lost.setdefault(tx_hash, []).append(f"{chain.name}, told {height}")
            elif found and found[0] != height:
                verdict.moved.setdefault(tx_hash, []).append(
                    f"{chain.name} at {found}, told {height}"
                )
    if chains:
        longest = max(chains, key=lambda c: c.height)
        verdict.unacked_committed = sum(1 for t in unacked if t in longest.tx_heights)
    return verdict


async def _recent_digests(url: str, height: int) -> dict[int, str]:
    async with NodeClient(url) as client:
        result = await client.request("GET", f"/blocks?limit={RECENT_BLOCKS_COMPARED}")
    return {b["height"]: b["state_digest"] for b in result["blocks"] if b["height"] <= height}


# -- the run ------------------------------------------------------------------------------------


@dataclass(slots=True)
class Report:
    nodes: int
    seed: int
    duration_s: float
    elapsed_s: float = 0.0
    nemesis: dict[str, Any] = field(default_factory=dict)
    txs: dict[str, Any] = field(default_factory=dict)
    final_height: int = 0
    view_max: int = 0
    view_changes: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    passed: bool = False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


async def soak(layout: ClusterDir, config: SoakConfig, processes: Processes) -> Report:
    report = Report(nodes=config.nodes, seed=config.seed, duration_s=config.duration_s)
    started = time.monotonic()
    clients = Clients(layout, config)
    nemesis = Nemesis(layout, config, processes)
    clients.start()
    try:
        await nemesis.run(deadline=started + config.duration_s)
        await nemesis.heal()
        nemesis.note("settle", f"load for {config.settle_s:.0f} s more without faults")
        await asyncio.sleep(config.settle_s)
    finally:
        await nemesis.heal()
        await clients.stop()
    rows, problems = await converge(layout, config.converge_timeout_s)
    report.elapsed_s = round(time.monotonic() - started, 1)
    report.failures += nemesis.failures + clients.figures.errors + problems
    live = [r for r in rows.values() if r is not None]
    report.final_height = min((r["height"] for r in live), default=0)
    report.view_max = max((r["view"] or 0 for r in live), default=0)
    report.view_changes = {r["name"]: r["counters"]["view_changes"] for r in live}
    report.failures += [f"{r['name']} halted: {r['halted']}" for r in live if r["halted"]]
    report.nemesis = {"by_kind": nemesis.counts(), "log": nemesis.log}
    heights = {r["name"]: r["height"] for r in live}
    verdict = await _check(layout, heights, clients, report)
    figures = clients.figures
    report.txs = {
        "submitted": figures.submitted,
        "acknowledged": len(clients.acked),
        "lost": len(verdict.lost),
        "duplicated": len(verdict.duplicated),
        "moved": len(verdict.moved),
        "unacknowledged": len(clients.unacked),
        "unacknowledged_committed": verdict.unacked_committed,
        "attempts": figures.attempts,
        "resubmissions_refused_as_known": figures.refused_known,
        "unreachable_or_busy": figures.unreachable,
        "examples": {
            what: dict(list(found.items())[:10])
            for what, found in (
                ("lost", verdict.lost),
                ("moved", verdict.moved),
                ("duplicated", verdict.duplicated),
            )
            if found
        },
    }
    if verdict.divergent_heights:
        report.failures.append(f"block hashes differ at heights {verdict.divergent_heights[:20]}")
    for name, items in (
        ("lost", verdict.lost),
        ("at another height", verdict.moved),
        ("duplicated", verdict.duplicated),
    ):
        if items:
            report.failures.append(f"{len(items)} transaction(s) {name}")
    if not clients.acked:
        report.failures.append("no transaction was acknowledged")
    report.passed = not report.failures
    return report


async def _check(
    layout: ClusterDir, heights: dict[str, int], clients: Clients, report: Report
) -> Verdict:
    """Each answering node's chain up to its own height; nodes that did not converge are
    already failures, and are judged only on the blocks they hold."""
    if not heights:
        return Verdict()  # no node answered: already a failure, nothing to read
    names = sorted(heights)
    height = min(heights.values())
    genesis = layout.genesis()
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        chains = [
            await read_chain(session, genesis, name, layout.config(name).url, heights[name])
            for name in names
        ]
    digests = [await _recent_digests(layout.config(n).url, height) for n in names]
    for h in sorted(set.intersection(*(set(d) for d in digests))):
        if len({d[h] for d in digests}) != 1:
            report.failures.append(f"state digests differ after height {h}")
            break
    return judge(chains, clients.acked, clients.unacked)


def stop_cluster(layout: ClusterDir) -> None:
    """SIGTERM every node at once, then stop each by its PID (SIGKILL past the deadline)."""
    names = layout.node_names()
    for name in names:
        pid = node_pid(layout, name)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
    for name in names:
        stop_node(layout, name, timeout_s=10)


@contextlib.contextmanager
def soak_cluster(root: Path, config: SoakConfig, processes: Processes) -> Iterator[ClusterDir]:
    """A started cluster with the soak's senders; in the `finally` every paused node is let go
    on and every node is stopped by its PID."""
    layout = init_cluster(
        root, nodes=config.nodes, extra_identities=[(s, (Role.SUPPLIER,)) for s in config.senders()]
    )
    try:
        start_all(layout, START_TIMEOUT_S)
        for name in layout.node_names():
            pid = node_pid(layout, name)
            if pid is not None:
                processes.started.add(pid)
        yield layout
    finally:
        processes.release()
        stop_cluster(layout)
        processes.kill_leftovers()


def run_soak(root: Path, config: SoakConfig) -> Report:
    """Start a cluster in `root` (a new or empty folder), soak it, stop it; the report."""
    processes = Processes()
    with soak_cluster(root, config, processes) as layout:
        return asyncio.run(soak(layout, config, processes))


def summary(report: Report) -> str:
    txs = report.txs
    kinds = ", ".join(f"{k} {v}" for k, v in report.nemesis["by_kind"].items())
    lines = [
        f"soak: {report.nodes} nodes, seed {report.seed}, {report.duration_s:.0f} s of faults "
        f"({report.elapsed_s:.0f} s in all)",
        f"nemesis actions: {kinds}",
        f"transactions: {txs['submitted']} submitted, {txs['acknowledged']} acknowledged, "
        f"{txs['lost']} lost, {txs['duplicated']} duplicated, "
        f"{txs['unacknowledged']} never acknowledged "
        f"({txs['unacknowledged_committed']} of them committed anyway)",
        f"final height {report.final_height}, highest view {report.view_max}, "
        f"view changes per node {report.view_changes}",
        *(f"FAILURE: {failure}" for failure in report.failures),
        "PASS" if report.passed else "FAIL",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--nodes", type=int, default=4, help="validators (n = 3f+1)")
    parser.add_argument("--minutes", type=float, default=5.0, help="length of load and faults")
    parser.add_argument("--seed", type=int, default=1, help="seed of the nemesis's schedule")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--senders-per-client", type=int, default=4)
    parser.add_argument("--json", type=Path, default=None, help="write the report here")
    parser.add_argument(
        "--dir", type=Path, default=None, help="cluster folder to create and keep (logs)"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    config = SoakConfig(
        nodes=args.nodes,
        duration_s=args.minutes * 60,
        seed=args.seed,
        clients=args.clients,
        senders_per_client=args.senders_per_client,
    )
    root = args.dir if args.dir is not None else Path(tempfile.mkdtemp(prefix="millchain-soak-"))
    print(f"cluster folder: {root}", flush=True)  # its logs, should the run break off
    report = run_soak(root / "cluster" if args.dir is None else root, config)
    print(summary(report))
    if args.json is not None:
        args.json.write_text(json.dumps(report.to_json(), indent=2) + "\n", encoding="utf-8")
    if args.dir is None:
        if report.passed:
            shutil.rmtree(root)
        else:
            print(f"cluster folder kept for its logs: {root}")
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
