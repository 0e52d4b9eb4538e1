"""The latency-stage histogram counts every duration the stage clock timed, however many were
timed between two scrapes (node/metrics.py, node/stages.py)."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from node.metrics import NodeMetrics
from node.service import Node
from node.stages import RECENT_MAX

HISTOGRAM = "millchain_latency_stage_seconds"


def _counts(body: bytes) -> dict[str, float]:
    """The histogram's _count sample by stage."""
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            if sample.name == f"{HISTOGRAM}_count":
                counts[sample.labels["stage"]] = sample.value
    return counts


def _time_blocks(node: Node, first: int, count: int) -> None:
    """Blocks first..first+count-1 go through every stage of a backup, a few ms each."""
    for seq in range(first, first + count):
        block_hash = seq.to_bytes(32, "big")
        at_ms = 1_000_000.0 + seq * 100
        node.stages.pre_prepared(seq, block_hash, at_ms=at_ms)
        node.stages.prepared(seq, block_hash, at_ms=at_ms + 3)
        node.stages.committed(seq, block_hash, at_ms=at_ms + 6)
        node.stages.executed(seq, block_hash, proposed_ms=int(at_ms) - 1, at_ms=at_ms + 9)


async def test_blocks_timed_between_two_scrapes_are_all_counted(node: Node) -> None:
    metrics = NodeMetrics(node)
    _time_blocks(node, 1, 10)
    assert _counts(metrics.exposition("")[0])["execute"] == 10
    # A minute between scrapes at 50 blocks a second (a block interval of 20 ms): more
    # durations than the stage clock's summaries keep.
    blocks = 3 * RECENT_MAX
    _time_blocks(node, 11, blocks)
    counts = _counts(metrics.exposition("")[0])
    for stage in ("pre_prepare", "prepare", "commit", "execute"):
        assert counts[stage] == 10 + blocks, stage
