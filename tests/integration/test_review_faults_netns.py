"""scripts/netns.py used as the README says (`up --nodes N --tag T`, then the other commands with
`--tag T` alone): `up` never tears down a lab already there under its tag, an interrupted `up`
leaves nothing behind, the later commands act on every node of the lab whatever its size, and a
node number outside the lab is refused before any rule changes. And `millchain cluster faults`
works on a cluster whose nodes have their own addresses there. Skipped, saying why, where
namespaces are not available (as tests/integration/test_netns_partitions.py)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli.layout import ClusterDir, init_cluster
from cli.process import start_node
from node.client import wait_until_up
from scripts.netns import CHAIN, Lab, free_subnet, main, new_tag, unavailable_reason
from tests.clusters import millchain
from tests.hostile import stop_all

pytestmark = [pytest.mark.slow, pytest.mark.integration]

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def namespaces_available() -> None:
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)


@pytest.fixture
def lab(namespaces_available: None) -> Iterator[Lab]:
    """A 5-node lab (one more than the commands' old default), removed afterwards."""
    made = Lab(tag=new_tag(), nodes=5, subnet=free_subnet())
    try:
        made.up()
        yield made
    finally:
        assert made.down() == []


def _namespaces(tag: str) -> list[str]:
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    return sorted(name for name in listed.stdout.split() if name.startswith(f"mc{tag}-"))


def _links(tag: str) -> list[str]:
    listed = subprocess.run(
        ["ip", "-o", "link", "show"], capture_output=True, text=True, check=True
    )
    return [line for line in listed.stdout.splitlines() if f" mc{tag}-" in line]


def _rules(lab: Lab, i: int) -> list[str]:
    shown = subprocess.run(
        [*lab.exec_prefix(i), "iptables", "-S", CHAIN], capture_output=True, text=True, check=True
    )
    return [line for line in shown.stdout.splitlines() if line.startswith("-A")]


def test_up_with_a_tag_in_use_leaves_that_lab_alone(lab: Lab) -> None:
    before = _namespaces(lab.tag)
    assert main(["up", "--tag", lab.tag, "--nodes", "2"]) == 1
    assert _namespaces(lab.tag) == before  # it had deleted n0, n1 and the bridge
    assert any(f" {lab.bridge}:" in line for line in _links(lab.tag))


def test_isolate_heal_and_down_without_nodes_cover_every_node_of_the_lab(lab: Lab) -> None:
    assert main(["isolate", "--tag", lab.tag, "0"]) == 0
    assert f"-A {CHAIN} -d {lab.address(4)}/32 -j DROP" in _rules(lab, 0)  # 4 was left reachable
    assert _rules(lab, 4), "node 4 kept its link to the isolated node"
    assert main(["heal", "--tag", lab.tag]) == 0
    assert [_rules(lab, i) for i in range(lab.nodes)] == [[]] * lab.nodes
    assert main(["down", "--tag", lab.tag]) == 0
    assert _namespaces(lab.tag) == [] and _links(lab.tag) == []


def test_a_node_outside_the_lab_is_refused_and_changes_nothing(lab: Lab) -> None:
    assert main(["cut", "--tag", lab.tag, "1", "7"]) == 1
    assert main(["loss", "--tag", lab.tag, "--node", "0", "--node", "9", "0.1"]) == 1
    assert main(["cut", "--tag", lab.tag, "2", "2"]) == 1
    assert [_rules(lab, i) for i in range(lab.nodes)] == [[]] * lab.nodes


def test_an_interrupted_up_leaves_no_namespace_or_link_behind(namespaces_available: None) -> None:
    tag = new_tag()
    nodes = 60  # long enough to be interrupted half-way
    process = subprocess.Popen(
        [sys.executable, "scripts/netns.py", "up", "--tag", tag, "--nodes", str(nodes)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while len(_namespaces(tag)) < 2:
            assert process.poll() is None, process.stderr and process.stderr.read()
            assert time.monotonic() < deadline, "up made no namespace"
            time.sleep(0.02)
        os.kill(process.pid, signal.SIGINT)  # Ctrl-C
        process.wait(timeout=120)
        assert _namespaces(tag) == [] and _links(tag) == []
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        Lab(tag=tag, nodes=nodes).down()


def test_cluster_faults_reaches_nodes_on_their_own_addresses_with_their_admin_token(
    tmp_path: Path, namespaces_available: None
) -> None:
    """Latency in a namespace lab comes from the fault layer (README), set by `cluster faults`.
    Those nodes see the CLI come from the bridge, not loopback, so they want the admin token
    their node.json sets: the CLI must send it."""
    lab = Lab(tag=new_tag(), nodes=4, subnet=free_subnet())
    layout: ClusterDir | None = None
    try:
        lab.up()
        layout = init_cluster(tmp_path / "cluster", nodes=4, hosts=lab.addresses, port=26600)
        for name in layout.node_names():
            path = layout.config_file(name)
            document = json.loads(path.read_text(encoding="utf-8"))
            document["admin_token"] = f"{name}-token-{'x' * 16}"
            path.write_text(json.dumps(document), encoding="utf-8")
        for i, name in enumerate(layout.node_names()):
            start_node(layout, name, prefix=tuple(lab.exec_prefix(i)))
        asyncio.run(wait_until_up([layout.config(n).url for n in layout.node_names()], 60))

        root = str(layout.root)
        result = millchain("cluster", "faults", "--dir", root, "--delay-ms", "50", "--json")
        assert result.returncode == 0, result.stdout + result.stderr
        delays = {
            (name, peer): link["delay_ms"]
            for name, state in json.loads(result.stdout).items()
            for peer, link in state["peers"].items()
        }
        assert set(delays.values()) == {50} and len(delays) == 12, delays
        healed = millchain("cluster", "faults", "--dir", root, "--heal")
        assert healed.returncode == 0, healed.stdout + healed.stderr
    finally:
        if layout is not None:
            stop_all(layout)
        assert lab.down() == []
