"""Consecutive slices under a weight budget."""

from __future__ import annotations

from node.slicing import consecutive_slices


def test_slices_keep_order_and_stay_within_weight_and_count() -> None:
    assert consecutive_slices([3, 3, 3, 1], int, 6) == [[3, 3], [3, 1]]
    assert consecutive_slices([1] * 5, int, 100, count_max=2) == [[1, 1], [1, 1], [1]]
    assert consecutive_slices([], int, 6) == []


def test_an_item_heavier_than_the_budget_goes_alone() -> None:
    assert consecutive_slices([2, 9, 2], int, 5) == [[2], [9], [2]]
