"""Block headers, blocks and Merkle roots."""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Any

import pytest

from ledger.block import ZERO_HASH, Block, BlockHeader, tx_root
from ledger.crypto import KeyPair
from ledger.encoding import decode, encode
from ledger.errors import EncodingError, ValidationError
from ledger.hashing import EMPTY_ROOT, HASH_BYTES, merkle_root, sha256
from ledger.tx import Transaction

CHAIN = "test-chain"
KEYS = KeyPair.from_seed(bytes(range(32)))


def make_tx(nonce: int, chain_id: str = CHAIN) -> Transaction:
    return Transaction.create(
        KEYS, chain_id=chain_id, nonce=nonce, contract="orders", method="place", args={"n": nonce}
    )


def make_block(txs: list[Transaction] | None = None, **changes: Any) -> Block:
    arguments: dict[str, Any] = {
        "chain_id": CHAIN,
        "height": 5,
        "prev_hash": sha256(b"parent"),
        "state_height": 3,
        "state_digest": sha256(b"state"),
        "proposer": 1,
        "view": 0,
        "timestamp_ms": 1_700_000_000_000,
        "txs": [make_tx(nonce) for nonce in range(3)] if txs is None else txs,
    }
    arguments.update(changes)
    return Block.build(**arguments)


def block_wire(header: dict[str, Any], txs: list[bytes]) -> bytes:
    return encode({"header": header, "txs": txs})


# --- build and wire -----------------------------------------------------------------------------


def test_build_and_from_wire_round_trip() -> None:
    block = make_block()
    again = Block.from_wire(block.to_wire())
    assert again == block
    assert again.hash == block.hash
    assert again.height == 5
    assert again.to_wire() == block.to_wire()


def test_empty_block_round_trips() -> None:
    block = make_block(txs=[])
    assert block.header.tx_root == EMPTY_ROOT
    assert Block.from_wire(block.to_wire()) == block


def test_first_block_may_name_state_height_zero() -> None:
    block = make_block(height=1, state_height=0, prev_hash=ZERO_HASH, state_digest=ZERO_HASH)
    assert Block.from_wire(block.to_wire()).height == 1


def test_header_hash_is_sha256_of_its_canonical_map() -> None:
    header = make_block().header
    assert header.hash == sha256(encode(header.to_map()))
    assert len(header.hash) == HASH_BYTES


def test_header_hash_is_stable() -> None:
    assert make_block().hash == make_block().hash


def test_header_hash_ignores_a_hash_passed_in() -> None:
    header = make_block().header
    arguments = {item.name: getattr(header, item.name) for item in fields(header)}
    arguments["hash"] = b"\x00" * 32
    assert BlockHeader(**arguments).hash == header.hash


HEADER_CHANGES: dict[str, Any] = {
    "chain_id": "other-chain",
    "height": 6,
    "prev_hash": sha256(b"other parent"),
    "tx_root": sha256(b"other root"),
    "state_height": 4,
    "state_digest": sha256(b"other state"),
    "proposer": 2,
    "view": 1,
    "timestamp_ms": 1_700_000_000_001,
}


def test_header_changes_cover_every_field() -> None:
    assert set(HEADER_CHANGES) == {item.name for item in fields(BlockHeader)} - {"hash"}


@pytest.mark.parametrize("name", sorted(HEADER_CHANGES))
def test_hash_changes_with_any_header_field(name: str) -> None:
    header = make_block().header
    changed = replace(header, **{name: HEADER_CHANGES[name]})
    assert changed.hash != header.hash
    assert changed != header


def test_hash_changes_with_the_transactions() -> None:
    assert make_block().hash != make_block(txs=[make_tx(0), make_tx(1)]).hash


def test_summary_is_hex() -> None:
    summary = make_block().header.summary()
    assert summary["hash"] == make_block().hash.hex()
    assert summary["height"] == 5


# --- check_shape and from_wire rejects ----------------------------------------------------------


def test_check_shape_rejects_tx_root_mismatch() -> None:
    block = make_block()
    tampered = Block(header=block.header, txs=block.txs[:2])
    with pytest.raises(ValidationError, match="tx_root"):
        tampered.check_shape()


def test_check_shape_rejects_reordered_txs() -> None:
    block = make_block()
    tampered = Block(header=block.header, txs=tuple(reversed(block.txs)))
    with pytest.raises(ValidationError, match="tx_root"):
        tampered.check_shape()


def test_check_shape_rejects_duplicate_tx() -> None:
    tx = make_tx(0)
    block = make_block(txs=[tx, make_tx(1), tx])
    with pytest.raises(ValidationError, match="twice"):
        block.check_shape()


def test_check_shape_rejects_chain_id_mismatch() -> None:
    block = make_block(txs=[make_tx(0), make_tx(1, chain_id="other-chain")])
    with pytest.raises(ValidationError, match="other-chain"):
        block.check_shape()


@pytest.mark.parametrize("state_height", [5, 6])
def test_check_shape_rejects_state_height_at_or_above_height(state_height: int) -> None:
    block = make_block(state_height=state_height)
    with pytest.raises(ValidationError, match="state_height"):
        block.check_shape()


def test_check_shape_accepts_a_well_formed_block() -> None:
    make_block().check_shape()


def test_a_block_that_passed_check_shape_is_not_walked_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    roots: list[int] = []

    def counting_root(txs: Any) -> bytes:
        roots.append(len(txs))
        return tx_root(txs)

    wire = make_block().to_wire()
    monkeypatch.setattr("ledger.block.tx_root", counting_root)
    block = Block.from_wire(wire)  # decoding checks the shape
    block.check_shape()  # as a replica admitting its pre-prepare does
    assert roots == [3]
    assert replace(block, txs=block.txs[:2]) != block  # a changed copy is a new block...
    with pytest.raises(ValidationError, match="tx_root"):
        replace(block, txs=block.txs[:2]).check_shape()  # ...checked afresh
    bad = replace(block, txs=block.txs[::-1])
    for _ in range(2):  # a failed check is not remembered as a pass
        with pytest.raises(ValidationError, match="tx_root"):
            bad.check_shape()


@pytest.mark.parametrize("state_height", [5, 6])
def test_from_wire_rejects_state_height_at_or_above_height(state_height: int) -> None:
    header = make_block(txs=[]).header.to_map() | {"state_height": state_height}
    with pytest.raises(ValidationError, match="state_height"):
        Block.from_wire(block_wire(header, []))


def test_from_wire_rejects_tx_root_mismatch() -> None:
    block = make_block()
    with pytest.raises(ValidationError, match="tx_root"):
        Block.from_wire(block_wire(block.header.to_map(), [tx.to_wire() for tx in block.txs[1:]]))


def test_from_wire_rejects_duplicate_tx() -> None:
    tx = make_tx(0)
    header = make_block(txs=[tx, tx]).header.to_map()
    with pytest.raises(ValidationError, match="twice"):
        Block.from_wire(block_wire(header, [tx.to_wire(), tx.to_wire()]))


def test_from_wire_rejects_chain_id_mismatch() -> None:
    txs = [make_tx(0, chain_id="other-chain")]
    header = make_block(txs=txs).header.to_map()
    with pytest.raises(ValidationError, match="chain"):
        Block.from_wire(block_wire(header, [tx.to_wire() for tx in txs]))


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"height": 0, "state_height": 0}, id="height-zero"),
        pytest.param({"height": True}, id="bool-height"),
        pytest.param({"state_height": -1}, id="negative-state-height"),
        pytest.param({"prev_hash": b"\x00" * 31}, id="short-prev-hash"),
        pytest.param({"tx_root": "00" * 32}, id="str-tx-root"),
        pytest.param({"state_digest": None}, id="none-state-digest"),
        pytest.param({"proposer": -1}, id="negative-proposer"),
        pytest.param({"view": "0"}, id="str-view"),
        pytest.param({"timestamp_ms": -5}, id="negative-timestamp"),
        pytest.param({"chain_id": "c" * 65}, id="long-chain-id"),
    ],
)
def test_from_wire_rejects_bad_header_fields(changes: dict[str, Any]) -> None:
    header = make_block(txs=[]).header.to_map() | changes
    with pytest.raises(ValidationError):
        Block.from_wire(block_wire(header, []))


def test_from_wire_rejects_missing_and_extra_header_fields() -> None:
    header = make_block(txs=[]).header.to_map()
    with pytest.raises(ValidationError, match="missing"):
        Block.from_wire(block_wire({k: v for k, v in header.items() if k != "view"}, []))
    with pytest.raises(ValidationError, match="unknown"):
        Block.from_wire(block_wire(header | {"extra": 1}, []))


def test_from_wire_rejects_txs_that_are_not_a_list_of_bytes() -> None:
    header = make_block(txs=[]).header.to_map()
    with pytest.raises(ValidationError):
        Block.from_wire(encode({"header": header, "txs": {"a": 1}}))
    with pytest.raises(ValidationError):
        Block.from_wire(encode({"header": header, "txs": [[1]]}))


def test_from_wire_applies_the_tx_size_limit() -> None:
    txs = [make_tx(0)]
    data = make_block(txs=txs).to_wire()
    with pytest.raises(EncodingError, match="limit"):
        Block.from_wire(data, tx_bytes_max=len(txs[0].to_wire()) - 1)


def test_from_wire_rejects_non_canonical_bytes() -> None:
    with pytest.raises(EncodingError):
        Block.from_wire(make_block().to_wire() + b"\x00")


def test_block_wire_holds_transactions_as_their_wire_bytes() -> None:
    block = make_block()
    assert decode(block.to_wire())["txs"] == [tx.to_wire() for tx in block.txs]


# --- Merkle roots -------------------------------------------------------------------------------


def leaves(count: int) -> list[bytes]:
    return [sha256(bytes([index])) for index in range(count)]


def test_merkle_root_of_no_leaves_is_the_empty_root() -> None:
    assert merkle_root([]) == EMPTY_ROOT
    assert tx_root([]) == EMPTY_ROOT


def test_merkle_root_of_one_leaf_is_not_the_leaf_itself() -> None:
    leaf = leaves(1)[0]
    assert merkle_root([leaf]) != leaf
    assert len(merkle_root([leaf])) == HASH_BYTES


def test_merkle_roots_differ_for_every_leaf_count() -> None:
    roots = [merkle_root(leaves(count)) for count in range(0, 18)]
    assert len(set(roots)) == len(roots)


@pytest.mark.parametrize("count", [2, 3, 4, 5, 8])
def test_merkle_root_order_matters(count: int) -> None:
    items = leaves(count)
    assert merkle_root(items) != merkle_root(list(reversed(items)))
    swapped = [items[1], items[0], *items[2:]]
    assert merkle_root(items) != merkle_root(swapped)


@pytest.mark.parametrize("count", [1, 2, 3, 4, 7])
def test_merkle_root_changes_with_any_leaf(count: int) -> None:
    items = leaves(count)
    root = merkle_root(items)
    for index in range(count):
        changed = list(items)
        changed[index] = sha256(b"other")
        assert merkle_root(changed) != root


@pytest.mark.parametrize("count", [3, 5, 7])
def test_merkle_root_of_odd_count_differs_from_duplicated_last_leaf(count: int) -> None:
    # The Bitcoin CVE-2012-2459 shape: [a, b, c] must not share a root with [a, b, c, c].
    items = leaves(count)
    assert merkle_root(items) != merkle_root([*items, items[-1]])


def test_merkle_root_separates_leaves_from_inner_nodes() -> None:
    # A two-leaf tree's inner node, offered as a single leaf, must not reproduce the root.
    a, b = leaves(2)
    inner_as_leaf = sha256(b"\x01" + sha256(b"\x00" + a) + sha256(b"\x00" + b))
    assert merkle_root([a, b]) != merkle_root([inner_as_leaf])


def test_merkle_root_of_known_shapes() -> None:
    def leaf(x: bytes) -> bytes:
        return sha256(b"\x00" + x)

    def node(x: bytes, y: bytes) -> bytes:
        return sha256(b"\x01" + x + y)

    a, b, c = leaves(3)
    assert merkle_root([a]) == leaf(a)
    assert merkle_root([a, b]) == node(leaf(a), leaf(b))
    assert merkle_root([a, b, c]) == node(node(leaf(a), leaf(b)), leaf(c))


def test_tx_root_is_the_merkle_root_of_tx_hashes() -> None:
    txs = [make_tx(nonce) for nonce in range(4)]
    assert tx_root(txs) == merkle_root([tx.hash for tx in txs])
