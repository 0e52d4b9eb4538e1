"""What the bench says a run's commits cost: blocks, transactions a block, node CPU per
committed transaction (cli/bench.py), from the nodes' counters and /proc."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from cli.bench import _costs, cpu_spent, node_cpu_seconds
from cli.layout import init_cluster


def _counters(blocks: int, txs: int) -> dict[str, int]:
    return {"blocks_committed": blocks, "txs_committed": txs}


def test_costs_are_per_block_and_per_transaction_and_node() -> None:
    costs = _costs(
        _counters(10, 1_000),
        _counters(30, 5_000),
        {"node0": (100, 1.0), "node1": (101, 2.0)},
        {"node0": (100, 3.0), "node1": (101, 6.0)},
    )

    assert costs == {
        "blocks_committed": 20,
        "txs_per_block": 200.0,
        # (2 + 4) s over 4,000 transactions and 2 nodes
        "node_cpu_us_per_tx": 750.0,
    }


def test_costs_say_why_the_cpu_was_not_measured() -> None:
    costs = _costs(_counters(0, 0), _counters(0, 0), {"node0": (7, 1.0)}, "node0 (pid 7) is gone")

    assert costs["blocks_committed"] == 0
    assert costs["txs_per_block"] is None
    assert costs["node_cpu_us_per_tx"] is None
    assert costs["node_cpu_not_measured"] == "node0 (pid 7) is gone"


def test_a_node_restarted_between_the_readings_has_no_cpu_figure() -> None:
    spent = cpu_spent(
        {"node0": (7, 1.0), "node1": (8, 1.0)}, {"node0": (7, 2.0), "node1": (9, 0.1)}
    )

    assert spent == "node1 was restarted during the run (pid 8 at its start)"
    assert cpu_spent({"node0": (7, 1.0)}, {"node0": (7, 2.5)}) == {"node0": 1.5}


def test_node_cpu_seconds_reads_running_nodes_and_names_the_missing_one(tmp_path: Path) -> None:
    layout = init_cluster(tmp_path / "cluster", nodes=4)
    missing = node_cpu_seconds(layout)
    assert isinstance(missing, str) and missing.startswith("node0 has no running process")

    for name in layout.node_names():
        layout.pid_file(name).write_text(f"{os.getpid()}\n", encoding="utf-8")
    seconds = node_cpu_seconds(layout)
    assert isinstance(seconds, dict)
    assert set(seconds) == set(layout.node_names())
    assert all(pid == os.getpid() and spent > 0 for pid, spent in seconds.values())

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait(timeout=30)
    layout.pid_file("node2").write_text(f"{gone.pid}\n", encoding="utf-8")
    reason = node_cpu_seconds(layout)
    assert isinstance(reason, str) and "node2" in reason
