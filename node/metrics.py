"""Prometheus metrics for one node: GET /metrics in the Prometheus text format (or OpenMetrics
when the scraper asks for it).

Each node has its own `CollectorRegistry` (several nodes share one process in tests, so nothing is
registered globally). The node's state is not copied: a collector reads the node's counters,
consensus status, mempool and peer links at scrape time. The metrics that need memory are the
two histograms: block intervals, fed at scrape time from the timestamps in the headers of the
blocks committed since the previous scrape (so it covers blocks committed after the node
started), and latency stages, fed by the node's stage clock (node/stages.py) as it times each
one (its own log keeps only the recent ones, fewer than a minute's worth at full speed).
Names follow CometBFT's: namespace `millchain`, then the subsystem (consensus, mempool, p2p,
statesync, oracle). The README's Observability section lists every metric.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from importlib.metadata import PackageNotFoundError, version
from itertools import pairwise
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from node.protocol import PROTOCOL_VERSION
from node.stages import StageClock

if TYPE_CHECKING:
    from node.service import Node

NAMESPACE = "millchain"
# Blocks are cut every few tens of milliseconds under load; a silent primary costs seconds.
BLOCK_INTERVAL_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
# A stage lasts from a fraction of a millisecond (the primary's own pre-prepare) to seconds.
STAGE_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
# At most this many new blocks are read per scrape; older ones are left out of the histogram.
BLOCKS_PER_SCRAPE_MAX = 10_000
# When the node does not count messages by kind, one series carries them all.


def _package_version() -> str:
    try:
        return version("millchain")
    except PackageNotFoundError:
        return "unknown"


def _counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(f"{NAMESPACE}_{name}", documentation, value=value)


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"{NAMESPACE}_{name}", documentation, value=value)


def _labelled_counter(
    name: str, documentation: str, label: str, values: Mapping[str, int]
) -> CounterMetricFamily:
    family = CounterMetricFamily(f"{NAMESPACE}_{name}", documentation, labels=[label])
    for key, value in sorted(values.items()):
        family.add_metric([key], value)
    return family


class NodeCollector(Collector):
    """Reads one node's state at scrape time and yields it as metric families."""

    def __init__(self, node: Node) -> None:
        self._node = node

    def collect(self) -> Iterator[Metric]:
        yield from self._info()
        yield from self._consensus()
        yield from self._transactions()
        yield from self._p2p()
        yield from self._statesync()
        yield from self._oracle()

    def _info(self) -> Iterator[Metric]:
        node = self._node
        info = InfoMetricFamily(
            f"{NAMESPACE}_node", "This node: its name, chain, role, version and protocol version."
        )
        info.add_metric(
            [],
            {
                "name": node.name,
                "chain_id": node.genesis.chain_id,
                "role": "observer" if node.replica is None else "validator",
                "index": str(node.index),
                "version": _package_version(),
                "protocol": str(PROTOCOL_VERSION),
            },
        )
        yield info

    def _consensus(self) -> Iterator[Metric]:
        node = self._node
        counters = node.counters
        yield _gauge("consensus_height", "Height of the last committed block.", self._height())
        yield _gauge("consensus_validators", "Number of validators (n).", node.genesis.n)
        yield _gauge(
            "consensus_fault_tolerance", "Faulty validators tolerated (f).", node.genesis.f
        )
        replica = node.replica
        if replica is not None:
            yield _gauge("consensus_view", "Current PBFT view.", replica.view)
            yield _gauge(
                "consensus_primary", "Index of the current view's primary.", replica.primary
            )
            yield _gauge(
                "consensus_is_primary", "1 if this node is the current primary.", replica.is_primary
            )
            yield _gauge(
                "consensus_view_active",
                "1 while the view is active, 0 during a view change.",
                replica.view_active,
            )
        yield _counter(
            "consensus_view_changes",
            "Views this node has entered since it started.",
            counters.view_changes,
        )
        yield _counter(
            "consensus_blocks_committed",
            "Blocks this node committed (by consensus or state transfer) since it started.",
            counters.blocks_committed,
        )
        if node.last_commit_ms is not None:
            yield _gauge(
                "consensus_last_commit_timestamp_seconds",
                "Unix time at which this node last committed a block.",
                node.last_commit_ms / 1000,
            )
        yield _gauge(
            "consensus_halted", "1 if the node halted (see its log).", node.halted is not None
        )
        yield _labelled_counter(
            "consensus_messages_sent",
            "Consensus messages queued to peers, by message type.",
            "type",
            counters.messages_sent_by_type,
        )
        yield _labelled_counter(
            "consensus_messages_received",
            "Consensus messages received from peers, by message type.",
            "type",
            counters.messages_received_by_type,
        )
        yield _counter(
            "consensus_messages_rejected",
            "Consensus messages dropped as malformed, badly signed or out of place.",
            counters.messages_rejected,
        )
        yield _counter(
            "consensus_messages_stale",
            "Consensus messages dropped as too late to matter (at or below the low watermark).",
            counters.messages_stale,
        )
        yield _gauge(
            "storage_wal_records", "Records in the consensus write-ahead log.", self._wal()
        )

    def _transactions(self) -> Iterator[Metric]:
        node = self._node
        counters = node.counters
        yield _gauge("mempool_size", "Transactions waiting in the mempool.", len(node.mempool))
        yield _gauge(
            "mempool_admission_queue",
            "Transactions queued for admission (client batches and forwarded ones).",
            node.admission_backlog,
        )
        yield _gauge(
            "mempool_capacity",
            "Transactions the mempool holds at most.",
            node.params.mempool_txs_max,
        )
        yield _counter(
            "txs_admitted", "Transactions admitted to the mempool.", counters.txs_admitted
        )
        yield _counter(
            "txs_committed",
            "Transactions in blocks this node committed (failed receipts included).",
            counters.txs_committed,
        )
        yield _counter(
            "txs_resent",
            "Transactions sent to the primary again because their sender's nonce stalled.",
            counters.txs_resent,
        )
        yield _counter(
            "txs_expired",
            "Transactions dropped after waiting too long behind a missing nonce.",
            counters.txs_expired,
        )
        yield _labelled_counter(
            "txs_rejected",
            "Transactions (and peer batches) refused at admission, by reason.",
            "reason",
            counters.rejected,
        )

    def _p2p(self) -> Iterator[Metric]:
        links = list(self._node.peers.links.values())
        up = GaugeMetricFamily(
            f"{NAMESPACE}_p2p_peer_up",
            "1 if the last batch sent to the peer got an answer.",
            labels=["peer"],
        )
        queued = GaugeMetricFamily(
            f"{NAMESPACE}_p2p_peer_queued",
            "Messages and transactions waiting to be sent to the peer.",
            labels=["peer"],
        )
        dropped = CounterMetricFamily(
            f"{NAMESPACE}_p2p_peer_dropped",
            "Items dropped from the peer's full send queue.",
            labels=["peer"],
        )
        failures = CounterMetricFamily(
            f"{NAMESPACE}_p2p_peer_send_failures",
            "Batches the peer did not take (unreachable or timed out).",
            labels=["peer"],
        )
        batches = CounterMetricFamily(
            f"{NAMESPACE}_p2p_peer_batches_sent",
            "Batches the peer took.",
            labels=["peer"],
        )
        for link in links:
            up.add_metric([link.name], link.up)
            queued.add_metric([link.name], len(link.messages.items) + len(link.txs.items))
            dropped.add_metric([link.name], link.messages.dropped + link.txs.dropped)
            failures.add_metric([link.name], link.failures)
            batches.add_metric([link.name], link.sent_batches)
        yield _gauge("p2p_peers", "Peers this node sends to.", len(links))
        yield _gauge(
            "p2p_peers_up", "Peers that answered the last batch.", sum(x.up for x in links)
        )
        yield from (up, queued, dropped, failures, batches)

    def _statesync(self) -> Iterator[Metric]:
        counters = self._node.counters
        yield _counter(
            "statesync_blocks_transferred",
            "Certified blocks fetched from peers and executed (catching up or following).",
            counters.blocks_transferred,
        )
        yield _counter(
            "statesync_fetches", "Catch-ups started because the node fell behind.", counters.fetches
        )

    def _oracle(self) -> Iterator[Metric]:
        counters = self._node.counters
        yield _counter(
            "oracle_reports",
            "Signed prediction reports this node's oracle submitted.",
            counters.oracle_reports,
        )
        yield _counter(
            "oracle_final_predictions",
            "Predictions the oracle contract finalized in blocks this node committed.",
            counters.oracle_final_predictions,
        )

    def _height(self) -> int:
        return self._node.storage.head().height

    def _wal(self) -> int:
        return self._node.storage.wal_size()


class BlockIntervals:
    """Feeds a histogram with the gaps between consecutive block timestamps, from the block after
    `start_height` on, reading only the blocks committed since it last looked."""

    def __init__(self, histogram: Histogram, *, start_height: int) -> None:
        self._histogram = histogram
        self._seen_height = start_height

    def refresh(self, node: Node) -> None:
        head = node.storage.head().height
        fresh = head - self._seen_height
        if fresh <= 0:
            return
        fresh = min(fresh, BLOCKS_PER_SCRAPE_MAX)
        # One more than the fresh blocks, so the first of them has its predecessor's timestamp.
        rows = list(reversed(node.storage.recent_blocks(fresh + 1)))
        for before, after in pairwise(rows):
            if after["height"] != before["height"] + 1:
                continue
            gap_ms = max(0, after["timestamp_ms"] - before["timestamp_ms"])
            self._histogram.observe(gap_ms / 1000)
        self._seen_height = head


class StageDurations:
    """Feeds a histogram, by stage, with every duration the node's stage clock times from its
    creation on, as it is timed (a duration below zero, which clock skew can give, counts as
    zero)."""

    def __init__(self, histogram: Histogram, stages: StageClock) -> None:
        self._histogram = histogram
        stages.subscribe(self._observe)

    def _observe(self, stage: str, ms: float) -> None:
        self._histogram.labels(stage).observe(max(0.0, ms) / 1000)


class NodeMetrics:
    """One node's registry and what feeds it."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(NodeCollector(node))
        ProcessCollector(registry=self.registry)
        histogram = Histogram(
            "consensus_block_interval_seconds",
            "Time between consecutive committed blocks, from their header timestamps.",
            namespace=NAMESPACE,
            buckets=BLOCK_INTERVAL_BUCKETS_S,
            registry=self.registry,
        )
        self.block_intervals = BlockIntervals(histogram, start_height=node.storage.head().height)
        stages = Histogram(
            "latency_stage_seconds",
            "Time blocks spent in each stage here (propose on the primary, pre_prepare, "
            "prepare, commit, execute) and client batches in admission.",
            labelnames=["stage"],
            namespace=NAMESPACE,
            buckets=STAGE_BUCKETS_S,
            registry=self.registry,
        )
        self.stage_durations = StageDurations(stages, node.stages)

    def exposition(self, accept: str) -> tuple[bytes, str]:
        """The scrape body and its content type, in the format the scraper accepts."""
        self.block_intervals.refresh(self.node)
        encoder, content_type = choose_encoder(accept)
        return encoder(self.registry), content_type


METRICS_KEY = web.AppKey("metrics", NodeMetrics)


async def get_metrics(request: web.Request) -> web.Response:
    body, content_type = request.app[METRICS_KEY].exposition(request.headers.get("Accept", ""))
    return web.Response(body=body, headers={"Content-Type": content_type})


def setup_metrics(app: web.Application) -> None:
    """Add GET /metrics for the node in `app[NODE_KEY]` (idempotent)."""
    # node.api wires this module into create_app; importing it at the top would be circular.
    from node.api import NODE_KEY  # noqa: PLC0415

    if METRICS_KEY in app:
        return
    app[METRICS_KEY] = NodeMetrics(app[NODE_KEY])
    app.router.add_get("/metrics", get_metrics)
