import pytest

from ledger import tx as tx_module
from ledger.cache import FifoCache, WeighedFifoCache
from ledger.crypto import KeyPair
from ledger.tx import Transaction


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


def test_a_weighed_cache_forgets_the_oldest_until_the_newest_fits() -> None:
    cache: WeighedFifoCache[bytes, int] = WeighedFifoCache(10, weight_max=10, weigh=len)
    for key in (b"aaaa", b"bbbb", b"cc"):
        cache.remember(key, len(key))
    assert (list(cache), cache.weight) == ([b"aaaa", b"bbbb", b"cc"], 10)
    cache.remember(b"ddddd", 5)
    assert (list(cache), cache.weight) == ([b"cc", b"ddddd"], 7)
    cache.remember(b"cc", 20)  # known: replaced, nothing forgotten
    assert (dict(cache), cache.weight) == ({b"cc": 20, b"ddddd": 5}, 7)
    cache.remember(b"x" * 11, 0)  # heavier than the whole cache: not kept
    assert (list(cache), cache.weight) == ([b"cc", b"ddddd"], 7)


def test_a_weighed_cache_still_keeps_at_most_size_max_entries() -> None:
    cache: WeighedFifoCache[int, int] = WeighedFifoCache(3, weight_max=100, weigh=lambda _: 1)
    for key in range(10):
        cache.remember(key, key)
    assert (list(cache), cache.weight) == ([7, 8, 9], 3)


def test_decoded_transactions_pin_at_most_their_byte_budget() -> None:
    # Refused or not, every decoded transaction used to be kept: 16,384 of 16 KiB each.
    keys = KeyPair.from_seed(bytes(32))
    for nonce in range(40):
        tx = Transaction.create(
            keys, chain_id="c", nonce=nonce, contract="x", method="y", args={"pad": bytes(1 << 20)}
        )
        Transaction.from_wire(bytes(bytearray(tx.wire)), bytes_max=2 << 20)
    assert 0 < tx_module._decoded.weight <= tx_module.DECODED_CACHE_BYTES_MAX
