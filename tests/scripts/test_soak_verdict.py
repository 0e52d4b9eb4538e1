"""The soak's final judgement (scripts/soak.py `judge`) on hand-made chains: what counts as
lost, duplicated, moved or divergent, and what a node that fell behind is not blamed for."""

from __future__ import annotations

from scripts.soak import Chain, judge


def _chain(name: str, blocks: dict[int, list[str]], *, fork_at: int | None = None) -> Chain:
    chain = Chain(name=name, height=max(blocks, default=0))
    for height, txs in sorted(blocks.items()):
        chain.block_hashes[height] = f"fork{height}" if height == fork_at else f"block{height}"
        for tx in txs:
            chain.tx_heights.setdefault(tx, []).append(height)
    return chain


def test_agreeing_chains_holding_every_acknowledged_transaction_pass() -> None:
    blocks = {1: ["a", "b"], 2: ["c"]}
    verdict = judge([_chain("n0", blocks), _chain("n1", blocks)], {"a": 1, "c": 2}, {"b"})
    assert (verdict.lost, verdict.duplicated, verdict.moved) == ({}, {}, {})
    assert verdict.divergent_heights == []
    assert verdict.unacked_committed == 1


def test_a_transaction_in_two_blocks_is_a_duplicate_on_each_node_holding_both() -> None:
    blocks = {1: ["a", "b"], 2: ["a", "c"]}
    verdict = judge([_chain("n0", blocks), _chain("n1", blocks)], {"a": 1}, set())
    assert list(verdict.duplicated) == ["a"]
    assert len(verdict.duplicated["a"]) == 2


def test_an_acknowledged_transaction_missing_on_one_node_is_lost() -> None:
    verdict = judge(
        [_chain("n0", {1: ["a"], 2: ["b"]}), _chain("n1", {1: ["a"], 2: []})],
        {"b": 2},
        set(),
    )
    assert verdict.lost == {"b": ["n1, told 2"]}
    assert verdict.divergent_heights == []  # same hashes by construction of the helper


def test_a_transaction_at_another_height_than_told_is_moved() -> None:
    verdict = judge([_chain("n0", {1: [], 2: ["a"]})], {"a": 1}, set())
    assert verdict.moved == {"a": ["n0 at [2], told 1"]}


def test_a_node_behind_is_not_blamed_for_blocks_it_does_not_hold() -> None:
    verdict = judge(
        [_chain("n0", {1: ["a"], 2: ["b"]}), _chain("n1", {1: ["a"]})], {"a": 1, "b": 2}, set()
    )
    assert verdict.lost == {}
    assert verdict.divergent_heights == []


def test_different_block_hashes_at_a_height_are_a_divergence() -> None:
    blocks = {1: ["a"], 2: ["b"]}
    verdict = judge([_chain("n0", blocks), _chain("n1", blocks, fork_at=2)], {}, set())
    assert verdict.divergent_heights == [2]
