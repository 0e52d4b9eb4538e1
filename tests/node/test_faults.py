"""Per-peer fault injection: the rules, the seeded decisions, the links that obey them (against a
fake peer on 127.0.0.1), the admin API and the CLI's partition plan."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import click
import pytest

from cli.faults_cmd import parse_partition, partition_plan
from node.faults import FaultInjector, FaultSpecError, LinkFaults
from node.peers import PeerLink, Peers
from node.service import Node
from tests.node.conftest import Client
from tests.node.fake_peer import FakePeer, serving


def test_rules_are_checked_for_range_and_type() -> None:
    for bad in ({"loss": 1.5}, {"delay_ms": -1}, {"delay_ms": 2.5}, {"blocked": "yes"}):
        with pytest.raises(FaultSpecError):
            LinkFaults.from_json(bad)
    with pytest.raises(FaultSpecError, match="unknown fault field"):
        LinkFaults.from_json({"latency": 5})


def test_same_seed_same_decisions() -> None:
    def run(seed: int) -> list[tuple[bool, int, int]]:
        faults = FaultInjector(seed=seed)
        faults.set("b", LinkFaults(delay_ms=20, jitter_ms=10, loss=0.3, duplicate=0.3))
        return [(v.blocked, v.delay_ms, v.copies) for v in (faults.decide("b") for _ in range(200))]

    assert run(5) == run(5)
    assert run(5) != run(6)


def test_decisions_follow_the_rule() -> None:
    faults = FaultInjector(seed=1)
    faults.set("b", LinkFaults(delay_ms=20, jitter_ms=10, loss=0.25, duplicate=0.5))
    verdicts = [faults.decide("b") for _ in range(2000)]
    assert all(10 <= v.delay_ms <= 30 for v in verdicts)
    lost = sum(v.copies == 0 for v in verdicts) / len(verdicts)
    doubled = sum(v.copies == 2 for v in verdicts) / len(verdicts)
    assert 0.2 < lost < 0.3
    assert 0.33 < doubled < 0.42  # half of the batches not lost
    assert faults.decide("c").copies == 1  # no rule, no fault
    faults.set("c", LinkFaults(blocked=True))
    assert faults.decide("c").blocked and faults.is_blocked("c")
    faults.clear()
    assert not faults.rules and not faults.is_blocked("c")


@pytest.fixture
async def fake_peer() -> AsyncIterator[tuple[FakePeer, str]]:
    peer = FakePeer()
    async with serving(peer) as url:
        yield peer, url


async def _peers(url: str, rule: LinkFaults) -> Peers:
    faults = FaultInjector(seed=3)
    faults.set("b", rule)
    peers = Peers(self_index=0, links=[PeerLink(index=1, name="b", url=url)], faults=faults)
    await peers.start()
    return peers


async def _until(check: Any, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_a_blocked_link_delivers_nothing_and_counts_the_peer_down(
    fake_peer: tuple[FakePeer, str],
) -> None:
    peer, url = fake_peer
    peers = await _peers(url, LinkFaults(blocked=True))
    try:
        peers.send(1, b"m1")
        link = peers.links[1]
        await _until(lambda: link.failures >= 2)
        assert not link.up and peer.batches == []
        assert link.status()["queued"] == 1  # kept for when the link heals
        peers.faults.clear()
        await _until(lambda: peer.batches)
        assert peer.batches[0]["messages"] == [b"m1"]
    finally:
        await peers.stop()


async def test_lost_batches_vanish_and_duplicated_ones_arrive_twice(
    fake_peer: tuple[FakePeer, str],
) -> None:
    peer, url = fake_peer
    peers = await _peers(url, LinkFaults(loss=1.0))
    try:
        peers.send(1, b"lost")
        await _until(lambda: "b" in peers.faults.counters and peers.faults.counters["b"].lost == 1)
        peers.faults.set("b", LinkFaults(duplicate=1.0))
        peers.send(1, b"twice")
        await _until(lambda: len(peer.batches) == 2)
        assert [b["messages"] for b in peer.batches] == [[b"twice"], [b"twice"]]
    finally:
        await peers.stop()


async def test_delayed_batches_arrive_no_sooner_than_the_delay(
    fake_peer: tuple[FakePeer, str],
) -> None:
    peer, url = fake_peer
    peers = await _peers(url, LinkFaults(delay_ms=200))
    try:
        sent = time.monotonic()
        peers.send(1, b"late")
        await _until(lambda: peer.batches)
        assert peer.arrivals[0][0] - sent >= 0.2
    finally:
        await peers.stop()


async def test_admin_api_sets_shows_and_clears_rules(
    node: Node,
    client: Client,
) -> None:
    response = await client.post(
        "/admin/faults", json={"peer": "node2", "delay_ms": 50, "jitter_ms": 5, "loss": 0.1}
    )
    assert response.status == 200, await response.text()
    state = await (await client.get("/admin/faults")).json()
    assert state["peers"]["node2"]["delay_ms"] == 50
    assert state["peers"]["node2"]["loss"] == 0.1
    assert state["peers"]["node0"]["delay_ms"] == 0
    await client.post("/admin/faults", json={"peer": "*", "blocked": True, "seed": 9})
    assert all(node.faults.is_blocked(name) for name in ("node0", "node2", "node3"))
    assert node.faults.seed == 9
    await client.post("/admin/faults", json={"clear": True})
    assert node.faults.rules == {}


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"peer": "node9", "blocked": True}, "peer must be one of"),
        ({"peer": "node2", "loss": 2}, "probability"),
        ({"peer": "node2", "lag": 1}, "unknown fault field"),
        ({"clear": True, "loss": 0.5}, "clear takes no fault fields"),
    ],
)
async def test_admin_api_refuses_bad_rules(
    node: Node,
    client: Client,
    body: dict[str, Any],
    problem: str,
) -> None:
    response = await client.post("/admin/faults", json=body)
    assert response.status == 400
    assert problem in (await response.json())["error"]
    assert node.faults.rules == {}


def test_partition_plan_cuts_every_link_between_groups() -> None:
    names = ["node0", "node1", "node2", "node3"]
    groups = parse_partition("node0,node1/node2,node3", names)
    plan = partition_plan(groups)
    assert plan == {
        "node0": ["node2", "node3"],
        "node1": ["node2", "node3"],
        "node2": ["node0", "node1"],
        "node3": ["node0", "node1"],
    }
    assert partition_plan(parse_partition("node0/node1,node2,node3", names))["node0"] == names[1:]
    for bad in ("node0,node1", "node0/node1", "node0/node0,node1,node2,node3", "node0/nodeX"):
        with pytest.raises(click.BadParameter):
            parse_partition(bad, names)
