"""State: MemoryState, Overlay reads through pending writes, nested overlays, stored maps."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contracts.errors import StateError
from contracts.state import MemoryState, Overlay, read_map, write_map
from ledger.encoding import encode
from node.storage import Storage


@pytest.fixture
def base() -> MemoryState:
    return MemoryState({b"a/1": b"one", b"a/3": b"three", b"b/1": b"bee"})


def test_memory_state_scan_is_sorted_and_limited_to_the_prefix(base: MemoryState) -> None:
    base.apply({b"a/0": b"zero", b"a/2": b"two"})
    assert [key for key, _ in base.scan(b"a/")] == [b"a/0", b"a/1", b"a/2", b"a/3"]


def test_memory_state_apply_none_deletes(base: MemoryState) -> None:
    base.apply({b"a/1": None, b"missing": None})
    assert base.get(b"a/1") is None
    assert len(base) == 2


def test_overlay_reads_its_own_writes_and_leaves_the_base_alone(base: MemoryState) -> None:
    overlay = Overlay(base)
    overlay.put(b"a/1", b"uno")
    overlay.delete(b"a/3")
    assert overlay.get(b"a/1") == b"uno"
    assert overlay.get(b"a/3") is None
    assert overlay.get(b"b/1") == b"bee"
    assert base.get(b"a/1") == b"one"
    assert overlay.writes == {b"a/1": b"uno", b"a/3": None}


def test_overlay_scan_merges_pending_writes_in_key_order_and_hides_deletions(
    base: MemoryState,
) -> None:
    overlay = Overlay(base)
    overlay.put(b"a/2", b"two")
    overlay.put(b"a/0", b"zero")
    overlay.put(b"a/9", b"nine")
    overlay.put(b"a/1", b"uno")
    overlay.delete(b"a/3")
    overlay.put(b"c/1", b"sea")
    assert list(overlay.scan(b"a/")) == [
        (b"a/0", b"zero"),
        (b"a/1", b"uno"),
        (b"a/2", b"two"),
        (b"a/9", b"nine"),
    ]


def test_child_overlay_merges_into_parent_only_when_applied(base: MemoryState) -> None:
    block = Overlay(base)
    block.put(b"x", b"1")
    child = block.child()
    child.put(b"y", b"2")
    child.delete(b"x")
    assert child.get(b"x") is None and block.get(b"x") == b"1"
    block.apply(child.writes)
    assert block.writes == {b"x": None, b"y": b"2"}
    discarded = block.child()
    discarded.put(b"z", b"3")
    assert block.get(b"z") is None


def test_writes_is_a_copy(base: MemoryState) -> None:
    overlay = Overlay(base)
    overlay.writes[b"sneaky"] = b"1"
    assert overlay.writes == {}


def test_overlay_refuses_non_bytes() -> None:
    overlay = Overlay(MemoryState())
    with pytest.raises(TypeError):
        overlay.put("key", b"v")  # type: ignore[arg-type]


def test_read_map_decodes_and_rejects_corrupt_values() -> None:
    overlay = Overlay(MemoryState())
    write_map(overlay, b"k", {"b": 1, "a": [b"x"]})
    assert read_map(overlay, b"k") == {"a": [b"x"], "b": 1}
    assert read_map(overlay, b"none") is None
    overlay.put(b"list", encode([1]))
    overlay.put(b"junk", b"\xc1")
    with pytest.raises(StateError, match="expected a map"):
        read_map(overlay, b"list")
    with pytest.raises(StateError, match="not canonical"):
        read_map(overlay, b"junk")


_keys = st.binary(min_size=1, max_size=3)


@given(
    base_items=st.dictionaries(_keys, st.binary(max_size=2)),
    writes=st.dictionaries(_keys, st.none() | st.binary(max_size=2)),
    prefix=st.binary(max_size=1),
)
def test_overlay_scan_equals_scanning_the_applied_state(
    base_items: dict[bytes, bytes], writes: dict[bytes, bytes | None], prefix: bytes
) -> None:
    overlay = Overlay(MemoryState(base_items))
    overlay.apply(writes)
    applied = MemoryState(base_items)
    applied.apply(writes)
    assert list(overlay.scan(prefix)) == list(applied.scan(prefix))


_KEYS = st.sampled_from([b"a", b"a/", b"a/1", b"a/2", b"a/3", b"a/30", b"a\xff", b"b/1", b"\xff"])


@given(
    base_items=st.dictionaries(_KEYS, st.binary(max_size=3), max_size=8),
    pending=st.dictionaries(_KEYS, st.none() | st.binary(max_size=3), max_size=6),
    nested=st.dictionaries(_KEYS, st.none() | st.binary(max_size=3), max_size=4),
    prefix=st.sampled_from([b"", b"a", b"a/", b"a/3", b"\xff", b"c"]),
    limit=st.integers(min_value=0, max_value=10),
)
def test_scan_last_is_the_end_of_the_scan_on_every_store(
    tmp_path_factory: pytest.TempPathFactory,
    base_items: dict[bytes, bytes],
    pending: dict[bytes, bytes | None],
    nested: dict[bytes, bytes | None],
    prefix: bytes,
    limit: int,
) -> None:
    storage = Storage(tmp_path_factory.mktemp("state") / "chain.sqlite")
    try:
        storage.initialise(genesis_hash=bytes(32), writes=base_items, digest=bytes(32), time_ms=0)
        for base in (MemoryState(base_items), storage):
            overlay = Overlay(base)
            overlay.apply(pending)
            child = overlay.child()
            child.apply(nested)
            for state in (base, overlay, child):
                expected = list(state.scan(prefix))
                assert state.scan_last(prefix, limit) == (expected[-limit:] if limit else [])
    finally:
        storage.close()


@given(
    base_items=st.dictionaries(_KEYS, st.binary(max_size=3), max_size=8),
    pending=st.dictionaries(_KEYS, st.none() | st.binary(max_size=3), max_size=6),
    nested=st.dictionaries(_KEYS, st.none() | st.binary(max_size=3), max_size=4),
    prefix=st.sampled_from([b"", b"a", b"a/", b"a/3", b"\xff", b"c"]),
    after=st.sampled_from([b"", b"a", b"a/1", b"a/25", b"a/3", b"a\xff", b"\xff\xff"]),
    limit=st.integers(min_value=0, max_value=10),
)
def test_scan_after_is_the_part_of_the_scan_past_the_cursor_on_every_store(
    tmp_path_factory: pytest.TempPathFactory,
    base_items: dict[bytes, bytes],
    pending: dict[bytes, bytes | None],
    nested: dict[bytes, bytes | None],
    prefix: bytes,
    after: bytes,
    limit: int,
) -> None:
    storage = Storage(tmp_path_factory.mktemp("state") / "chain.sqlite")
    try:
        storage.initialise(genesis_hash=bytes(32), writes=base_items, digest=bytes(32), time_ms=0)
        for base in (MemoryState(base_items), storage):
            overlay = Overlay(base)
            overlay.apply(pending)
            child = overlay.child()
            child.apply(nested)
            for state in (base, overlay, child):
                expected = [item for item in state.scan(prefix) if item[0] > after]
                assert state.scan_after(prefix, after, limit) == expected[:limit]
    finally:
        storage.close()
