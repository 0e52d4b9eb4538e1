"""Starting a node: what must be right before it opens its database or takes part."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import pytest

from node.config import NodeConfig
from node.errors import ConfigError, ListenError, Rejection, StorageError
from node.main import run
from node.service import Node
from node.storage import Storage
from tests.node.conftest import make_setup


def test_a_node_holding_another_validators_key_is_refused(tmp_path: Path) -> None:
    # Two processes signing with one validator's key would equivocate as that validator.
    setup = make_setup()
    with pytest.raises(Rejection, match="node node1 holds the key of validator node2"):
        Node(
            name="node1",
            genesis=setup.genesis,
            keys=setup.validator_keys[2],
            storage=Storage(tmp_path / "chain.sqlite"),
        )


def test_a_second_process_for_a_running_node_stops_before_it_opens_the_database(
    tmp_path: Path,
) -> None:
    with socket.socket() as running:
        running.bind(("127.0.0.1", 0))
        running.listen()
        port = running.getsockname()[1]
        config = NodeConfig(
            name="node0",
            genesis_file=tmp_path / "genesis.json",  # never read: the port comes first
            key_file=tmp_path / "validator.key.json",
            data_dir=tmp_path / "data",
            host="127.0.0.1",
            port=port,
            log_file=tmp_path / "node.log",
        )
        with pytest.raises(ListenError, match=f"cannot listen on 127.0.0.1:{port}"):
            asyncio.run(run(config))
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("port", [0, 70_000, -1])
def test_a_port_outside_the_tcp_range_is_refused(tmp_path: Path, port: int) -> None:
    with pytest.raises(ConfigError, match=f"port must be 1 to 65535, got {port}"):
        NodeConfig(
            name="node0",
            genesis_file=tmp_path / "genesis.json",
            key_file=tmp_path / "validator.key.json",
            data_dir=tmp_path / "data",
            host="127.0.0.1",
            port=port,
            log_file=tmp_path / "node.log",
        )


def test_a_corrupt_database_is_refused_saying_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "chain.sqlite"
    Storage(path).close()
    data = bytearray(path.read_bytes())
    data[4096:] = os.urandom(len(data) - 4096)  # every page but the first
    path.write_bytes(bytes(data))
    with pytest.raises(StorageError, match=r"malformed\. Restore it from a copy, or delete"):
        Storage(path)
