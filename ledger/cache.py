"""A bounded map that forgets its oldest entries: the memo the hot paths keep of decoded,
validated and verified things.

A plain dict evicting with `d.pop(next(iter(d)))` is not O(1): deleted entries stay as holes at
the front of its entry table until the next resize, and `iter` walks over every one of them, so
at 16,384 entries an eviction costs about 7 us and at 200,000 about 30 (once per transaction on
the paths that use these memos). An OrderedDict unlinks its oldest entry in constant time.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")


class FifoCache(OrderedDict[K, V]):
    """A dict of at most `size_max` entries; adding a new key to a full one drops the oldest."""

    def __init__(self, size_max: int) -> None:
        if size_max < 1:
            raise ValueError(f"a cache holds at least one entry, got size_max={size_max}")
        super().__init__()
        self.size_max = size_max

    def remember(self, key: K, value: V) -> None:
        if key not in self and len(self) >= self.size_max:
            self.popitem(last=False)
        self[key] = value


class WeighedFifoCache(FifoCache[K, V]):
    """A FifoCache that also holds at most `weight_max` in all, an entry weighing `weigh(key)`
    (the bytes a decoded form was decoded from, say): what bounds its memory when entries can
    be large. Entries leave only as the oldest, to make room."""

    def __init__(self, size_max: int, *, weight_max: int, weigh: Callable[[K], int]) -> None:
        super().__init__(size_max)
        if weight_max < 1:
            raise ValueError(f"a cache holds a weight of at least 1, got weight_max={weight_max}")
        self.weight_max = weight_max
        self.weight = 0
        self._weigh = weigh

    def remember(self, key: K, value: V) -> None:
        if key in self:
            self[key] = value
            return
        weight = self._weigh(key)
        if weight > self.weight_max:
            return  # larger than the whole cache: not kept
        while self and (len(self) >= self.size_max or self.weight + weight > self.weight_max):
            oldest, _ = self.popitem(last=False)
            self.weight -= self._weigh(oldest)
        self[key] = value
        self.weight += weight
