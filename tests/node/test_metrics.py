"""GET /metrics: every documented metric is exposed, counters move with what the node does, each
node has its own registry, and on a real 4-node cluster the numbers follow the load."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from cli.layout import ClusterDir
from consensus.actions import Broadcast, Send
from consensus.messages import sign_commit
from ledger.genesis import Params
from ledger.tx import Transaction
from node.api import create_app
from node.client import ClientError, NodeClient
from node.mempool import GAPPED_TTL_MS
from node.metrics import METRICS_KEY, setup_metrics
from node.protocol import PROTOCOL_VERSION
from node.service import Node
from tests.browser.blocks import commit_empty_blocks
from tests.browser.cluster import explorer_cluster
from tests.clusters import converged, millchain, url
from tests.node.conftest import CHAIN_ID, Client, Setup

BLOCK = bytes(32)  # the hash of the block the stage clock is told about
DOCS = Path(__file__).resolve().parents[2] / "README.md"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def documented_names() -> set[str]:
    """The metric names in the README's metrics table."""
    names = re.findall(r"^\| `(millchain_[a-z_]+)` \|", DOCS.read_text(encoding="utf-8"), re.M)
    assert len(names) > 20
    return set(names)


def parse(text: str) -> tuple[set[str], Samples]:
    """Family names as exposed (counters with _total) and every sample by (name, labels)."""
    names: set[str] = set()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        names.add(f"{family.name}_total" if family.type == "counter" else family.name)
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return names, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def total(samples: Samples, name: str) -> float:
    """The sum over every label value (message types, say)."""
    return sum(v for (sample, _), v in samples.items() if sample == name)


@pytest.fixture
async def metrics_client(node: Node) -> AsyncIterator[Client]:
    app = create_app(node)
    setup_metrics(app)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


async def scrape(client: Client) -> tuple[set[str], Samples]:
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    return parse(await response.text())


def receive_tx(setup: Setup, *, nonce: int = 0) -> Transaction:
    return Transaction.create(
        setup.identities["supplier"],
        chain_id=CHAIN_ID,
        nonce=nonce,
        contract="inventory",
        method="receive",
        args={"item": "steel", "location": "main", "qty": 5},
    )


async def test_exposes_every_documented_metric(
    metrics_client: Client,
) -> None:
    names, samples = await scrape(metrics_client)
    # The node in this fixture has never committed a block, so it has no last-commit time yet.
    expected = documented_names() - {"millchain_consensus_last_commit_timestamp_seconds"}
    assert expected <= names, sorted(expected - names)
    assert value(samples, "millchain_consensus_height") == 0
    assert value(samples, "millchain_consensus_validators") == 4
    assert value(samples, "millchain_consensus_fault_tolerance") == 1
    assert value(samples, "millchain_consensus_view") == 0
    assert value(samples, "millchain_consensus_is_primary") == 0
    info = [labels for (name, labels) in samples if name == "millchain_node_info"]
    assert dict(info[0])["name"] == "node1"
    assert dict(info[0])["chain_id"] == CHAIN_ID
    assert dict(info[0])["protocol"] == str(PROTOCOL_VERSION)  # what its peers must speak


async def test_counts_admitted_and_rejected_transactions_by_reason(
    metrics_client: Client,
    setup: Setup,
) -> None:
    tx = receive_tx(setup)
    headers = {"Content-Type": "application/msgpack"}
    assert (await metrics_client.post("/tx", data=tx.to_wire(), headers=headers)).status == 202
    assert (await metrics_client.post("/tx", data=tx.to_wire(), headers=headers)).status == 409
    assert (await metrics_client.post("/tx", data=b"\xc1junk", headers=headers)).status == 400
    _, samples = await scrape(metrics_client)
    assert value(samples, "millchain_txs_admitted_total") == 1
    assert value(samples, "millchain_mempool_size") == 1
    assert value(samples, "millchain_txs_rejected_total", reason="duplicate") == 1
    assert value(samples, "millchain_txs_rejected_total", reason="malformed") == 1


async def test_transactions_parked_behind_a_gap_expire_and_are_counted(
    metrics_client: Client,
    node: Node,
    setup: Setup,
) -> None:
    headers = {"Content-Type": "application/msgpack"}
    parked = receive_tx(setup, nonce=1)  # nonce 0 never comes
    assert (await metrics_client.post("/tx", data=parked.to_wire(), headers=headers)).status == 202
    arrived = node.mempool.arrived_ms(parked.hash)
    assert arrived is not None
    node.expire_gapped(arrived + GAPPED_TTL_MS - 1)
    assert parked.hash in node.mempool
    node.expire_gapped(arrived + GAPPED_TTL_MS)
    assert parked.hash not in node.mempool
    _, samples = await scrape(metrics_client)
    assert value(samples, "millchain_txs_expired_total") == 1
    assert value(samples, "millchain_mempool_size") == 0
    status = await (await metrics_client.get("/status")).json()
    assert status["counters"]["txs_expired"] == 1


async def test_messages_sent_by_type_count_direct_sends_too(
    metrics_client: Client,
    node: Node,
    setup: Setup,
) -> None:
    # Direct sends answer a lagging replica or a view change: summed over types, the metric
    # must say what /status says in all.
    commit = sign_commit(
        setup.validator_keys[1], CHAIN_ID, view=0, seq=1, block_hash=bytes(32), sender=1
    )
    node._carry_out(Broadcast(message=commit))
    node._carry_out(Send(to=2, message=commit))
    _, samples = await scrape(metrics_client)
    sent = "millchain_consensus_messages_sent_total"
    assert value(samples, sent, type="commit") == 3 + 1
    assert total(samples, sent) == node.status()["counters"]["messages_sent"] == 4


async def test_reports_unreachable_peers_down(
    metrics_client: Client,
    node: Node,
) -> None:
    _, samples = await scrape(metrics_client)
    peers = {dict(labels)["peer"] for (name, labels) in samples if name == "millchain_p2p_peer_up"}
    assert peers == {"node0", "node2", "node3"}
    assert value(samples, "millchain_p2p_peers") == 3
    assert all(value(samples, "millchain_p2p_peer_up", peer=p) == 0 for p in peers)


async def test_block_intervals_come_from_header_timestamps(
    metrics_client: Client,
    node: Node,
) -> None:
    start_ms = 1_700_000_001_000
    commit_empty_blocks(node, [0] * 4, start_ms=start_ms, interval_ms=30)
    _, samples = await scrape(metrics_client)
    histogram = "millchain_consensus_block_interval_seconds"
    # Block 1 has no block before it; 1 -> 2, 2 -> 3 and 3 -> 4 are 30 ms apart.
    assert value(samples, f"{histogram}_count") == 3
    assert value(samples, f"{histogram}_bucket", le="0.025") == 0
    assert value(samples, f"{histogram}_bucket", le="0.05") == 3
    commit_empty_blocks(node, [0, 0], start_ms=start_ms + 90 + 2000, interval_ms=2000)
    _, samples = await scrape(metrics_client)
    assert value(samples, f"{histogram}_count") == 5
    assert value(samples, f"{histogram}_bucket", le="1.0") == 3
    assert value(samples, f"{histogram}_bucket", le="2.5") == 5
    assert value(samples, f"{histogram}_sum") == pytest.approx(4.09)
    assert value(samples, "millchain_consensus_height") == 6


async def test_latency_stages_come_from_the_stage_clock(
    metrics_client: Client,
    node: Node,
) -> None:
    histogram = "millchain_latency_stage_seconds"
    node.stages.pre_prepared(1, BLOCK, at_ms=1_000.0)
    node.stages.prepared(1, BLOCK, at_ms=1_003.0)
    node.stages.committed(1, BLOCK, at_ms=1_010.0)
    node.stages.executed(1, BLOCK, proposed_ms=999, at_ms=1_040.0)
    _, samples = await scrape(metrics_client)
    for stage in ("pre_prepare", "prepare", "commit", "execute"):
        assert value(samples, f"{histogram}_count", stage=stage) == 1, stage
    assert value(samples, f"{histogram}_bucket", stage="execute", le="0.025") == 0
    assert value(samples, f"{histogram}_bucket", stage="execute", le="0.05") == 1
    assert value(samples, f"{histogram}_sum", stage="prepare") == pytest.approx(0.003)
    # What a scrape has seen is not counted again; a negative (skewed) duration counts as zero.
    node.stages.pre_prepared(2, BLOCK, at_ms=2_000.0)
    node.stages.executed(2, BLOCK, proposed_ms=2_005, at_ms=2_001.0)
    _, samples = await scrape(metrics_client)
    assert value(samples, f"{histogram}_count", stage="pre_prepare") == 2
    assert value(samples, f"{histogram}_bucket", stage="pre_prepare", le="0.001") == 2
    assert value(samples, f"{histogram}_count", stage="execute") == 1  # 2 was not committed


async def test_answers_openmetrics_when_asked(
    metrics_client: Client,
) -> None:
    response = await metrics_client.get(
        "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
    )
    assert response.headers["Content-Type"].startswith("application/openmetrics-text")
    assert (await response.text()).rstrip().endswith("# EOF")


async def test_each_node_has_its_own_registry(node: Node) -> None:
    first, second = create_app(node), create_app(node)
    setup_metrics(first)
    setup_metrics(first)  # idempotent: one route, one registry
    setup_metrics(second)
    assert first[METRICS_KEY].registry is not second[METRICS_KEY].registry
    assert len([r for r in first.router.resources() if r.canonical == "/metrics"]) == 1
    assert not [m.name for m in REGISTRY.collect() if m.name.startswith("millchain")]


# -- a real cluster ------------------------------------------------------------------------


async def scrape_url(base: str) -> Samples:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{base}/metrics", timeout=aiohttp.ClientTimeout(total=5)) as response,
    ):
        assert response.status == 200
        return parse(await response.text())[1]


async def submit_receipts(layout: ClusterDir, base: str, count: int) -> list[Transaction]:
    supplier = layout.identity_keys("supplier")
    chain_id = layout.genesis().chain_id
    async with NodeClient(base) as client:
        nonce = await client.next_nonce(supplier.public_key)
        txs = [
            Transaction.create(
                supplier,
                chain_id=chain_id,
                nonce=nonce + i,
                contract="inventory",
                method="receive",
                args={"item": "bolt-m8", "location": "main", "qty": 1 + i},
            )
            for i in range(count)
        ]
        for tx in txs:
            await client.submit(tx.to_wire())
        for tx in txs:
            await client.wait_committed(tx.hash.hex(), 60)
        with pytest.raises(ClientError, match="409"):
            await client.submit(txs[0].to_wire())
    return txs


@pytest.mark.slow
@pytest.mark.integration
def test_counters_follow_load_on_a_four_node_cluster(tmp_path: Path) -> None:
    with explorer_cluster(tmp_path / "cluster", params=Params(block_interval_ms=20)) as layout:
        names = layout.node_names()
        base = url(layout, "node0")

        async def run() -> None:
            before = await scrape_url(base)
            await submit_receipts(layout, base, 12)
            rows = await converged(layout, names, height_min=1, timeout_s=30)
            after = await scrape_url(base)
            for name in (
                "millchain_txs_admitted_total",
                "millchain_consensus_blocks_committed_total",
                "millchain_consensus_block_interval_seconds_count",
            ):
                assert value(after, name) > value(before, name), name
            for stage in ("propose", "pre_prepare", "prepare", "commit", "execute"):
                timed = "millchain_latency_stage_seconds_count"
                assert value(after, timed, stage=stage) > value(before, timed, stage=stage)
            committed = value(after, "millchain_txs_committed_total")
            assert committed - value(before, "millchain_txs_committed_total") >= 12
            assert value(after, "millchain_consensus_height") == rows[0]["height"]
            for name in (
                "millchain_consensus_messages_sent_total",
                "millchain_consensus_messages_received_total",
            ):
                assert total(after, name) > total(before, name), name
            assert value(after, "millchain_txs_rejected_total", reason="duplicate") >= 1
            for peer in ("node1", "node2", "node3"):
                assert value(after, "millchain_p2p_peer_up", peer=peer) == 1
            assert value(after, "millchain_consensus_is_primary") == 1

            # A killed peer is reported down once a batch to it fails.
            result = millchain("cluster", "kill", "node3", "--dir", str(layout.root))
            assert result.returncode == 0, result.stderr
            await submit_receipts(layout, base, 2)
            for _ in range(100):
                down = await scrape_url(base)
                if value(down, "millchain_p2p_peer_up", peer="node3") == 0:
                    break
                await asyncio.sleep(0.1)
            assert value(down, "millchain_p2p_peer_up", peer="node3") == 0
            assert value(down, "millchain_p2p_peers_up") == 2
            failures = "millchain_p2p_peer_send_failures_total"
            assert value(down, failures, peer="node3") >= 1

        asyncio.run(run())
