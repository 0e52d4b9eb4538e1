"""`init --hosts`: each validator at its own address, for clusters spread over namespaces or
machines."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.layout import LayoutError, init_cluster

HOSTS = ["10.77.0.1", "10.77.0.2", "10.77.0.3", "10.77.0.4"]


def test_each_validator_binds_and_is_addressed_at_its_own_host(tmp_path: Path) -> None:
    layout = init_cluster(tmp_path / "c", nodes=4, hosts=HOSTS, port=26600)
    genesis = layout.genesis()
    assert [v.url for v in genesis.validators] == [f"http://{h}:26600" for h in HOSTS]
    assert [layout.config(n).host for n in layout.node_names()] == HOSTS


@pytest.mark.parametrize(
    ("hosts", "port", "problem"),
    [
        (HOSTS[:3], 26600, "3 hosts for 4 validators"),
        (None, 26600, "--port needs --hosts"),
        (["127.0.0.1"] * 4, 26600, "its own host"),
        (HOSTS, None, "pass --port"),  # not addresses of this machine: no port to probe
    ],
)
def test_inconsistent_hosts_and_ports_are_refused_before_anything_is_written(
    tmp_path: Path, hosts: list[str] | None, port: int | None, problem: str
) -> None:
    root = tmp_path / "c"
    with pytest.raises(LayoutError, match=problem):
        init_cluster(root, nodes=4, hosts=hosts, port=port)
    assert not (root / "genesis.json").exists()
    assert not (root / "nodes").exists()


def test_local_hosts_without_a_port_get_free_ports(tmp_path: Path) -> None:
    layout = init_cluster(tmp_path / "c", nodes=4, hosts=["127.0.0.1"] * 4)
    ports = [v.port for v in layout.genesis().validators]
    assert len(set(ports)) == 4
