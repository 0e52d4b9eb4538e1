"""The commit feed keeps the newest blocks only, bounded by blocks and by transaction hashes."""

from __future__ import annotations

from node.commits import CommitFeed


def _hashes(count: int, tag: int) -> list[bytes]:
    return [bytes([tag]) * 32 for _ in range(count)]


def test_the_feed_drops_the_oldest_blocks_past_its_hash_bound() -> None:
    feed = CommitFeed(blocks_max=100, hashes_max=10)
    for height in range(1, 6):
        feed.record(height, 1000 + height, _hashes(4, height))
    held = feed.since(1)
    assert [block.height for block in held] == [4, 5]  # 8 hashes; a third block would be 12
    assert held[0].tx_hashes == bytes([4]) * 32 * 4


def test_the_feed_drops_the_oldest_blocks_past_its_block_bound() -> None:
    feed = CommitFeed(blocks_max=3, hashes_max=1000)
    for height in range(1, 6):
        feed.record(height, 0, _hashes(1, height))
    assert [block.height for block in feed.since(0)] == [3, 4, 5]
    feed.record(6, 0, _hashes(2, 6))
    assert [block.height for block in feed.since(0)] == [4, 5, 6]


def test_a_block_larger_than_the_hash_bound_is_still_kept() -> None:
    feed = CommitFeed(blocks_max=10, hashes_max=3)
    feed.record(1, 0, _hashes(5, 1))
    assert [block.height for block in feed.since(1)] == [1]
