"""`millchain bench` end to end: a short run on a cluster it launches counts every submitted
transaction as committed, times them from the commit feed, reports the nodes' stage times, and
writes its JSON and plot."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from ledger.crypto import VERIFIER, KeyPair, write_key_file
from tests.clusters import millchain, running_cluster

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def test_a_short_bench_commits_what_it_offers_and_reports_it(tmp_path: Path) -> None:
    figures_file, plot = tmp_path / "bench.json", tmp_path / "bench.png"
    result = millchain(
        "bench",
        "--nodes",
        "4",
        "--duration",
        "3",
        # Paced well below what a loaded CI machine commits, so everything offered commits
        # within the bench's wait: unpaced, the queue may hold more than that wait drains.
        "--rate",
        "400",
        "--json",
        str(figures_file),
        "--plot",
        str(plot),
        timeout_s=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    figures = json.loads(figures_file.read_text())
    assert figures["submitted"] > 100
    assert figures["offered_tx_per_s"] == 400
    assert figures["committed"] == figures["submitted"]
    assert figures["rejected"] == 0
    assert figures["fsync"] is False  # the launched cluster's nodes, read before it went
    assert 0 < figures["latency_ms_p50"] <= figures["latency_ms_p99"]
    assert 0 < figures["fraction_of_bound"] < 1
    # The bound is taken from the verification rate before and after the load, both reported,
    # of the check the nodes make.
    assert figures["verifier"] == VERIFIER
    before, after = figures["verify_per_s_before"], figures["verify_per_s_after"]
    assert before > 0 and after > 0
    assert abs(figures["verify_per_s"] - (before + after) / 2) <= 1
    bound = figures["cores"] * figures["verify_per_s"] / figures["nodes"]
    assert abs(figures["signature_bound_tx_per_s"] - bound) <= figures["cores"]
    # What the commits cost: at least a block, and CPU on every node.
    assert figures["blocks_committed"] > 0
    assert figures["txs_per_block"] >= 1
    assert figures["node_cpu_us_per_tx"] > 0
    assert "node_cpu_not_measured" not in figures
    stages = figures["stages_ms_p50"]
    assert set(stages) == {"admission", "propose", "pre_prepare", "prepare", "commit", "execute"}
    assert all(ms is not None and ms >= 0 for ms in stages.values()), stages
    assert stages["execute"] > 0 and stages["admission"] > 0
    assert plot.stat().st_size > 0


def test_a_bench_on_a_running_cluster_registers_its_senders_once(tmp_path: Path) -> None:
    root = tmp_path / "cluster"
    with running_cluster(root) as layout:
        args = ("bench", "--dir", str(root), "--duration", "2", "--rate", "200")

        def run(name: str) -> subprocess.CompletedProcess[str]:
            """A run whose figures and plot go to `name`.json and .png in tmp_path."""
            written = (
                "--json",
                str(tmp_path / f"{name}.json"),
                "--plot",
                str(tmp_path / f"{name}.png"),
            )
            return millchain(*args, *written, timeout_s=180)

        first = run("first")
        assert first.returncode == 0, first.stdout + first.stderr
        assert "registering 32 bench senders" in first.stdout
        figures = json.loads((tmp_path / "first.json").read_text())
        assert figures["submitted"] > 50
        assert figures["committed"] == figures["submitted"] and figures["rejected"] == 0

        # The second run sends from the same identities, registered already.
        second = run("second")
        assert second.returncode == 0, second.stdout + second.stderr
        assert "registering" not in second.stdout
        assert json.loads((tmp_path / "second.json").read_text())["committed"] > 50

        # A key file that no longer matches its identity on the chain is named, not used.
        key_file = layout.identity_key_file("bench7")
        key_file.unlink()
        write_key_file(key_file, KeyPair.generate(), name="bench7")
        third = millchain(*args, timeout_s=180)
        assert third.returncode == 1
        assert "identity bench7 on the chain has another key" in third.stderr
