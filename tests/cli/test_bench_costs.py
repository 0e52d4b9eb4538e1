"""What the bench says a run's commits cost: blocks, transactions a block, node CPU per
committed transaction (cli/bench.py), from the nodes' counters and their CPU readings."""

from __future__ import annotations

from cli.bench import _costs


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
