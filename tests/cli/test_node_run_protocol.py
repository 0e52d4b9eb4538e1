"""`millchain node run` on a data directory written under a later protocol version
(node/protocol.py) stops with the storage's message, as other start-up errors do: one line on
stderr, exit code 1, no traceback, the database left as it was."""

from __future__ import annotations

from pathlib import Path

from cli.layout import init_cluster
from ledger.encoding import encode
from node.config import NodeConfig
from node.protocol import PROTOCOL_VERSION
from tests.clusters import millchain
from tests.node.test_storage_protocol import record_version, stored_version, written_chain


def test_a_node_run_on_a_directory_of_another_version_says_what_to_do(tmp_path: Path) -> None:
    layout = init_cluster(tmp_path / "cluster", nodes=4)
    config_file = layout.config_file("node0")
    database = NodeConfig.load(config_file).data_dir / "chain.sqlite"
    written_chain(layout.genesis(), database)
    later = encode(PROTOCOL_VERSION + 1)
    record_version(database, later)  # as a newer millchain would have written it

    result = millchain("node", "run", "--config", str(config_file))

    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    assert f"written under protocol {PROTOCOL_VERSION + 1}" in result.stderr, result.stderr
    assert f"delete the node's data directory ({database.parent})" in result.stderr, result.stderr
    assert stored_version(database) == later
    assert not layout.pid_file("node0").exists()
