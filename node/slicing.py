"""Cutting a sequence into consecutive slices under a weight budget (transactions a database
transaction, bytes a signed transaction)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


def consecutive_slices(
    items: Sequence[T],
    weight: Callable[[T], int],
    weight_max: int,
    *,
    count_max: int | None = None,
) -> list[list[T]]:
    """`items` in order, cut into slices of at most `weight_max` total weight and `count_max`
    items. Every slice holds at least one item: one heavier than `weight_max` goes alone."""
    slices: list[list[T]] = []
    current: list[T] = []
    total = 0
    for item in items:
        heft = weight(item)
        full = count_max is not None and len(current) == count_max
        if current and (full or total + heft > weight_max):
            slices.append(current)
            current, total = [], 0
        current.append(item)
        total += heft
    if current:
        slices.append(current)
    return slices
