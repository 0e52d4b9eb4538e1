"""Certified blocks from peers (node/sync.py): a block is read through its certificate, and a
transaction that does not match the certified header is refused."""

from __future__ import annotations

import pytest

from ledger.block import Block
from ledger.certificate import CommitCertificate
from ledger.encoding import decode, encode
from node.storage import Storage
from node.sync import SyncError, decode_certified_block, verify_entry
from tests.node.transfer.chain import SETUP, source_chain


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Storage:
    return source_chain(SETUP, tmp_path_factory.mktemp("sync") / "chain.sqlite")


def _entry(source: Storage, height: int) -> tuple[bytes, bytes]:
    ((_, block, certificate),) = source.block_range(height, height)
    return block, certificate


def test_a_certified_block_reads_as_the_full_decoder_reads_it(source: Storage) -> None:
    block_raw, certificate_raw = _entry(source, 3)
    certificate = CommitCertificate.from_wire(certificate_raw)

    certified = decode_certified_block(block_raw, certificate)

    assert certified.block() == Block.from_wire(block_raw)
    assert certified.wire == block_raw
    assert certified.tx_ids == tuple(tx.hash for tx in Block.from_wire(block_raw).txs)


def test_a_changed_transaction_body_is_refused(source: Storage) -> None:
    block_raw, certificate_raw = _entry(source, 2)
    block = decode(block_raw)
    wire = decode(block["txs"][0])
    body = decode(wire["body"])
    body["nonce"] += 1
    wire["body"] = encode(body)
    block["txs"][0] = encode(wire)

    with pytest.raises(SyncError, match="do not match its tx_root"):
        verify_entry(SETUP.genesis, encode(block), certificate_raw, expect_height=2, prev_hash=b"")


def test_a_non_canonical_transaction_wire_is_refused(source: Storage) -> None:
    block_raw, certificate_raw = _entry(source, 2)
    block = decode(block_raw)
    wire = decode(block["txs"][0])
    # The same map with its keys in the wrong order: same body, same id, not canonical.
    block["txs"][0] = (
        b"\x82\xa9signature\xc4\x40" + wire["signature"] + b"\xa4body" + (encode(wire["body"]))
    )

    with pytest.raises(SyncError, match="not a canonical wire map"):
        decode_certified_block(encode(block), CommitCertificate.from_wire(certificate_raw))


def test_a_block_another_certificate_is_for_is_refused(source: Storage) -> None:
    block_raw, _ = _entry(source, 2)
    _, other_certificate = _entry(source, 3)

    with pytest.raises(SyncError, match="another block"):
        decode_certified_block(block_raw, CommitCertificate.from_wire(other_certificate))
