"""`millchain cluster status` shows what a node answered when it answers with an error rather
than its status, and gives every node in `--json` the same keys, down or not.

A stand-in on node1's port answers as a rate-limited node would (429 and a JSON error); the
other nodes are not running."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.layout import ClusterDir, init_cluster
from cli.main import main


class RateLimited(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"error": "rate limit exceeded, retry after 1 s"}).encode()
        self.send_response(429)
        self.send_header("Content-Type", "application/json")
        self.send_header("Retry-After", "1")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[ClusterDir]:
    layout = init_cluster(tmp_path / "cluster", nodes=4)
    config = layout.config("node1")
    server = ThreadingHTTPServer((config.host, config.port), RateLimited)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield layout
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_status_shows_the_error_a_node_answers_with(cluster: ClusterDir) -> None:
    result = CliRunner().invoke(main, ["cluster", "status", "--dir", str(cluster.root)])
    assert result.exit_code == 0, result.output
    assert result.exception is None
    assert "│ ERROR" in result.output
    assert "node1: status 429: rate limit exceeded, retry after 1 s" in result.output
    assert result.output.count("DOWN") == 3


def test_status_json_gives_every_node_the_same_keys(cluster: ClusterDir) -> None:
    result = CliRunner().invoke(main, ["cluster", "status", "--dir", str(cluster.root), "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    keys = {"name", "url", "pid", "alive", "error", "height", "head", "state_digest", "view"}
    keys |= {"primary", "mempool", "halted", "role"}
    assert all(set(row) == keys for row in rows.values()), rows
    assert rows["node1"]["alive"] is False
    assert rows["node1"]["error"] == "status 429: rate limit exceeded, retry after 1 s"
    assert rows["node0"]["error"] is None and rows["node0"]["alive"] is False
    assert {rows["node0"][key] for key in ("mempool", "halted", "role", "height")} == {None}
