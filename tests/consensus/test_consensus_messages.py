"""The message codec and signatures: one canonical encoding, shape errors, domain separation."""

from __future__ import annotations

import dataclasses

import pytest

from consensus import messages as m
from consensus.errors import InvalidMessage
from ledger.certificate import CommitCertificate
from ledger.encoding import decode, encode
from ledger.tx import TX_BYTES_MAX_DEFAULT
from tests.consensus.pbft_bench import CHAIN_ID, Bench


@pytest.fixture
def bench() -> Bench:
    return Bench()


def all_kinds(bench: Bench) -> list[m.Message]:
    block = bench.block(1)
    return [
        bench.pre_prepare(block),
        bench.prepare(block, 2),
        bench.commit(block, 3),
        bench.checkpoint(10, block.hash, b"\x07" * 32, 1),
    ]


def test_every_kind_round_trips_through_the_codec(bench: Bench) -> None:
    for message in all_kinds(bench):
        data = m.encode_message(message)
        assert m.decode_message(data, tx_bytes_max=TX_BYTES_MAX_DEFAULT) == message
        assert decode(data)["kind"] == str(m.kind_of(message))


def test_decoded_messages_verify_against_the_validator_set(bench: Bench) -> None:
    for message in all_kinds(bench):
        decoded = m.decode_message(m.encode_message(message), tx_bytes_max=TX_BYTES_MAX_DEFAULT)
        m.verify_signature(decoded, CHAIN_ID, bench.validators)


def test_unknown_kind_is_invalid(bench: Bench) -> None:
    fields = m.to_map(bench.prepare(bench.block(1), 2))
    fields["kind"] = "view-change-ish"
    with pytest.raises(InvalidMessage, match="unknown message kind"):
        m.decode_message(encode(fields), tx_bytes_max=TX_BYTES_MAX_DEFAULT)


@pytest.mark.parametrize(
    ("field", "value", "complaint"),
    [
        ("seq", 0, "seq must be between"),
        ("seq", "1", "seq must be an integer"),
        ("view", True, "view must be an integer"),
        ("block_hash", b"short", "block_hash must be 32 bytes"),
        ("signature", b"\x00" * 10, "signature must be 64 bytes"),
        ("sender", -1, "sender must be between"),
    ],
)
def test_wrong_field_types_are_invalid(
    bench: Bench, field: str, value: object, complaint: str
) -> None:
    fields = m.to_map(bench.prepare(bench.block(1), 2))
    fields[field] = value
    with pytest.raises(InvalidMessage, match=complaint):
        m.decode_message(encode(fields), tx_bytes_max=TX_BYTES_MAX_DEFAULT)


def test_missing_and_extra_fields_are_invalid(bench: Bench) -> None:
    fields = m.to_map(bench.commit(bench.block(1), 2))
    del fields["view"]
    with pytest.raises(InvalidMessage, match="missing field"):
        m.decode_message(encode(fields), tx_bytes_max=TX_BYTES_MAX_DEFAULT)
    fields = m.to_map(bench.commit(bench.block(1), 2))
    fields["extra"] = 1
    with pytest.raises(InvalidMessage, match="unknown field"):
        m.decode_message(encode(fields), tx_bytes_max=TX_BYTES_MAX_DEFAULT)


def test_non_map_and_garbage_bytes_are_invalid(bench: Bench) -> None:
    with pytest.raises(InvalidMessage, match="is a map"):
        m.decode_message(encode([1, 2]), tx_bytes_max=TX_BYTES_MAX_DEFAULT)
    data = m.encode_message(bench.prepare(bench.block(1), 2))
    with pytest.raises(InvalidMessage, match="malformed"):
        m.decode_message(data + b"\x00", tx_bytes_max=TX_BYTES_MAX_DEFAULT)
    with pytest.raises(InvalidMessage, match="limit"):
        m.decode_message(data, tx_bytes_max=TX_BYTES_MAX_DEFAULT, bytes_max=10)


def test_pre_prepare_with_tx_root_mismatch_does_not_decode(bench: Bench) -> None:
    block = bench.block(1)
    other = bench.block(2)
    forged = dataclasses.replace(block, txs=other.txs)
    data = m.encode_message(bench.pre_prepare(forged))
    with pytest.raises(InvalidMessage, match="tx_root"):
        m.decode_message(data, tx_bytes_max=TX_BYTES_MAX_DEFAULT)


def test_oversized_transactions_in_a_pre_prepare_are_invalid(bench: Bench) -> None:
    data = m.encode_message(bench.pre_prepare(bench.block(1)))
    with pytest.raises(InvalidMessage):
        m.decode_message(data, tx_bytes_max=16)


def test_signature_from_unknown_sender_is_invalid(bench: Bench) -> None:
    prepare = dataclasses.replace(bench.prepare(bench.block(1), 2), sender=9)
    with pytest.raises(InvalidMessage, match="unknown sender 9"):
        m.verify_signature(prepare, CHAIN_ID, bench.validators)


def test_signature_by_another_validator_is_invalid(bench: Bench) -> None:
    prepare = dataclasses.replace(bench.prepare(bench.block(1), 2), sender=3)
    with pytest.raises(InvalidMessage, match="validator 3"):
        m.verify_signature(prepare, CHAIN_ID, bench.validators)


def test_prepare_signature_does_not_verify_as_commit(bench: Bench) -> None:
    prepare = bench.prepare(bench.block(1), 2)
    commit = m.Commit(
        view=prepare.view,
        seq=prepare.seq,
        block_hash=prepare.block_hash,
        sender=prepare.sender,
        signature=prepare.signature,
    )
    with pytest.raises(InvalidMessage):
        m.verify_signature(commit, CHAIN_ID, bench.validators)


def test_signature_for_another_chain_is_invalid(bench: Bench) -> None:
    prepare = bench.prepare(bench.block(1), 2)
    with pytest.raises(InvalidMessage):
        m.verify_signature(prepare, "other-chain", bench.validators)


def test_commit_signatures_form_a_commit_certificate(bench: Bench) -> None:
    block = bench.block(1)
    commits = [bench.commit(block, sender) for sender in (0, 1, 3)]
    certificate = CommitCertificate(
        height=1,
        view=0,
        block_hash=block.hash,
        commits=tuple((c.sender, c.signature) for c in commits),
    )
    certificate.verify(chain_id=CHAIN_ID, validators=bench.validators)
