import pytest

from ledger.cache import FifoCache


def test_forgets_the_oldest_entry_once_full() -> None:
    cache: FifoCache[str, int] = FifoCache(2)
    cache.remember("a", 1)
    cache.remember("b", 2)
    cache.remember("c", 3)
    assert dict(cache) == {"b": 2, "c": 3}


def test_remembering_a_known_key_again_forgets_nothing() -> None:
    cache: FifoCache[str, int] = FifoCache(2)
    cache.remember("a", 1)
    cache.remember("b", 2)
    cache.remember("a", 10)
    assert dict(cache) == {"a": 10, "b": 2}


def test_entries_removed_by_key_leave_room() -> None:
    cache: FifoCache[str, int] = FifoCache(2)
    cache.remember("a", 1)
    cache.remember("b", 2)
    del cache["a"]
    cache.remember("c", 3)
    assert dict(cache) == {"b": 2, "c": 3}


def test_stays_bounded_over_many_evictions() -> None:
    cache: FifoCache[int, int] = FifoCache(100)
    for key in range(10_000):
        cache.remember(key, key)
    assert list(cache) == list(range(9_900, 10_000))


def test_refuses_a_size_below_one() -> None:
    with pytest.raises(ValueError, match="at least one entry"):
        FifoCache(0)
