"""A real-process cluster whose nodes serve the explorer and /metrics.

Each node runs `millchain node run` through a small launcher that adds the explorer and the
metrics to the app `node.api.create_app` builds. Once create_app calls `setup_explorer` and
`setup_metrics` itself, the launcher changes nothing (both are idempotent) and
`tests.clusters.running_cluster` does the same job. Nodes get pid files in the usual place, so
`millchain cluster kill/down/status` work on them.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from cli.layout import ClusterDir, init_cluster
from ledger.genesis import Params
from tests.clusters import kill_all, millchain

LAUNCHER = """
import sys
from node import api
from node.explorer import setup_explorer
from node.metrics import setup_metrics

_create_app = api.create_app

def create_app(node, *args, **kwargs):
    app = _create_app(node, *args, **kwargs)
    setup_explorer(app)
    setup_metrics(app)
    return app

api.create_app = create_app
from cli.main import main
main(prog_name="millchain")
"""


def start_observed_node(layout: ClusterDir, name: str) -> int:
    node_dir = layout.node_dir(name)
    with open(node_dir / "stdout.log", "ab") as output:
        process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                LAUNCHER,
                "node",
                "run",
                "--config",
                str(layout.config_file(name).resolve()),
            ],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=node_dir,
        )
    layout.pid_file(name).write_text(f"{process.pid}\n", encoding="utf-8")
    return process.pid


def wait_answering(urls: list[str], timeout_s: float) -> None:
    """Poll each node's /status (synchronously, so async tests may call it too)."""
    deadline = time.monotonic() + timeout_s
    for url in urls:
        while True:
            try:
                with urllib.request.urlopen(f"{url}/status", timeout=2) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"{url} not answering after {timeout_s} s")
            time.sleep(0.1)


@contextlib.contextmanager
def explorer_cluster(
    root: Path, *, nodes: int = 4, params: Params | None = None
) -> Iterator[ClusterDir]:
    """Start `nodes` validators serving the explorer and metrics; stop them all at the end."""
    layout = init_cluster(root.resolve(), nodes=nodes, params=params)
    try:
        for name in layout.node_names():
            start_observed_node(layout, name)
        wait_answering([layout.config(name).url for name in layout.node_names()], 60)
        yield layout
    finally:
        millchain("cluster", "down", "--dir", str(layout.root), timeout_s=60)
        kill_all(layout)
