"""`millchain oracle register` changes nothing in the cluster directory unless the registration
goes through: not with a bad artifact, not when no node answers, not when the node refuses the
transaction or its receipt says it failed. Only a registration that may still commit (the node
went silent mid-request) keeps the artifact in DIR/models, and says so.

A stand-in on node0's port answers as a node would at each step; the other nodes are down."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from cli.layout import ClusterDir, init_cluster
from cli.main import main
from oracle.model.artifact import save_model
from oracle.model.training import train
from oracle.telemetry.simulator import simulate_fleet

TX_HASH = "ab" * 32


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("model") / "model.skops"
    save_model(train(simulate_fleet(machines=3, operations=1000, seed=11), seed=5), path)
    return path


def _snapshot(root: Path) -> dict[str, bytes | None]:
    return {
        str(p.relative_to(root)): None if p.is_dir() else p.read_bytes() for p in root.rglob("*")
    }


def _register(layout: ClusterDir, model: Path) -> Result:
    return CliRunner().invoke(main, ["oracle", "register", str(model), "--dir", str(layout.root)])


def test_a_cluster_that_does_not_answer_leaves_the_directory_as_it_was(
    tmp_path: Path, model_file: Path
) -> None:
    layout = init_cluster(tmp_path / "cluster", nodes=4)
    before = _snapshot(layout.root)
    result = _register(layout, model_file)
    assert result.exit_code == 1, result.output
    assert "no node answered" in result.output
    assert _snapshot(layout.root) == before


def test_a_file_that_is_no_model_leaves_the_directory_as_it_was(tmp_path: Path) -> None:
    layout = init_cluster(tmp_path / "cluster", nodes=4)
    bogus = tmp_path / "bogus.skops"
    bogus.write_bytes(b"not a model")
    before = _snapshot(layout.root)
    result = _register(layout, bogus)
    assert result.exit_code == 1, result.output
    assert _snapshot(layout.root) == before


class StandIn(BaseHTTPRequestHandler):
    """Answers /status and the admin's nonce; then takes the transaction as `submit` says
    ("refuse": 400, "drop": closes the connection unanswered, "take": its hash) and reports it
    committed with a failed receipt (unsettled, so a later block may still run it, if
    `settled` is False)."""

    submit = "take"
    settled: bool | None = None  # None: an answer without the flag (settled)

    def do_GET(self) -> None:
        if self.path == "/status":
            self._answer(200, {"name": "node0", "height": 1})
        elif self.path.startswith("/accounts/"):
            self._answer(200, {"next_nonce": 0})
        elif self.path.startswith("/tx/"):
            receipt = {"ok": False, "error": "register_model: features do not match"}
            answer = {"status": "committed", "height": 2, "receipt": receipt}
            self._answer(200, answer if self.settled is None else {**answer, "settled": False})
        else:
            self._answer(404, {"error": "no such route"})

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        if self.submit == "refuse":
            self._answer(400, {"error": "nonce 0 already used"})
        elif self.submit == "drop":
            self.close_connection = True
        else:
            self._answer(200, {"hash": TX_HASH})

    def _answer(self, code: int, document: dict[str, object]) -> None:
        body = json.dumps(document).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def node0_stand_in(tmp_path: Path) -> Iterator[tuple[ClusterDir, type[StandIn]]]:
    layout = init_cluster(tmp_path / "cluster", nodes=4)
    config = layout.config("node0")
    handler = type("Handler", (StandIn,), {})
    server = ThreadingHTTPServer((config.host, config.port), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield layout, handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.mark.parametrize(
    ("submit", "says"),
    [("refuse", "400: nonce 0 already used"), ("take", "registration failed: register_model")],
)
def test_a_refused_or_failed_registration_takes_the_copy_back(
    node0_stand_in: tuple[ClusterDir, type[StandIn]], model_file: Path, submit: str, says: str
) -> None:
    layout, handler = node0_stand_in
    handler.submit = submit
    before = _snapshot(layout.root)
    result = _register(layout, model_file)
    assert result.exit_code == 1, result.output
    assert says in result.output
    assert _snapshot(layout.root) == before


@pytest.mark.parametrize("outcome", ["dropped", "unsettled"])
def test_a_registration_that_may_still_commit_keeps_the_copy_and_says_so(
    node0_stand_in: tuple[ClusterDir, type[StandIn]],
    model_file: Path,
    outcome: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    layout, handler = node0_stand_in
    if outcome == "dropped":
        handler.submit = "drop"
    else:
        handler.settled = False  # returned as it stands at the deadline
        monkeypatch.setattr("cli.oracle_chain_cmd.REGISTER_COMMIT_TIMEOUT_S", 1.0)
    result = _register(layout, model_file)
    assert result.exit_code == 1, result.output
    assert "the registration may still commit" in result.output
    kept = list(layout.models_dir.iterdir())
    assert len(kept) == 1 and kept[0].read_bytes() == model_file.read_bytes()
