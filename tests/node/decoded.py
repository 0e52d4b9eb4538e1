"""What decoding bytes from outside may cost in memory: shared by the tests of the decoders'
container budgets (ledger.encoding.container_budget)."""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

LISTS = 200_000  # 200 KB of empty lists: some 13 MB decoded without a budget


def empty_lists(count: int = LISTS) -> list[list[Any]]:
    return [[] for _ in range(count)]


@contextmanager
def peak_under(limit: int) -> Iterator[None]:
    """Fail unless what the block allocates at its peak stays under `limit` bytes."""
    tracemalloc.start()
    try:
        yield
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < limit, f"peak {peak >> 10} KiB, limit {limit >> 10} KiB"


def bounded(raw: bytes) -> int:
    """The bound the tests hold decoding to: a few times the input, some memory for the rest."""
    return 4 * len(raw) + (256 << 10)
