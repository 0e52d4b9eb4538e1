"""Commit certificates and quorum arithmetic."""

from __future__ import annotations

from itertools import combinations
from typing import Any

import pytest

from ledger.certificate import CommitCertificate, commit_payload, max_faulty, quorum_size
from ledger.crypto import Domain, KeyPair
from ledger.encoding import encode
from ledger.errors import EncodingError, SignatureError, ValidationError
from ledger.hashing import sha256

CHAIN = "test-chain"
HEIGHT = 9
VIEW = 2
BLOCK_HASH = sha256(b"block 9")


def validator_keys(n: int) -> list[KeyPair]:
    return [KeyPair.from_seed(bytes([index + 1]) * 32) for index in range(n)]


def commit_signature(
    keys: KeyPair,
    *,
    domain: Domain = Domain.COMMIT,
    chain_id: str = CHAIN,
    view: int = VIEW,
    seq: int = HEIGHT,
    block_hash: bytes = BLOCK_HASH,
) -> bytes:
    return keys.sign(domain, chain_id, commit_payload(view=view, seq=seq, block_hash=block_hash))


def certificate(commits: list[tuple[int, bytes]]) -> CommitCertificate:
    return CommitCertificate(
        height=HEIGHT, view=VIEW, block_hash=BLOCK_HASH, commits=tuple(sorted(commits))
    )


def quorum_certificate(keys: list[KeyPair], signers: list[int] | None = None) -> CommitCertificate:
    if signers is None:
        signers = list(range(quorum_size(len(keys))))
    return certificate([(index, commit_signature(keys[index])) for index in signers])


def public_keys(keys: list[KeyPair]) -> list[bytes]:
    return [item.public_key for item in keys]


# --- quorum arithmetic --------------------------------------------------------------------------

QUORUM_TABLE = [
    # n, f, quorum
    (4, 1, 3),
    (5, 1, 4),
    (6, 1, 5),
    (7, 2, 5),
    (8, 2, 6),
    (9, 2, 7),
    (10, 3, 7),
    (11, 3, 8),
    (12, 3, 9),
    (13, 4, 9),
]


@pytest.mark.parametrize(("n", "f", "quorum"), QUORUM_TABLE)
def test_quorum_size_and_max_faulty_table(n: int, f: int, quorum: int) -> None:
    assert max_faulty(n) == f
    assert quorum_size(n) == quorum


@pytest.mark.parametrize("f", range(1, 12))
def test_quorum_is_2f_plus_1_when_n_is_3f_plus_1(f: int) -> None:
    assert max_faulty(3 * f + 1) == f
    assert quorum_size(3 * f + 1) == 2 * f + 1


@pytest.mark.parametrize("n", range(4, 60))
def test_any_two_quorums_share_an_honest_validator(n: int) -> None:
    f, quorum = max_faulty(n), quorum_size(n)
    assert 2 * quorum - n >= f + 1  # overlap of two quorums exceeds the faulty ones
    assert quorum <= n - f  # the honest validators alone can form a quorum
    assert 3 * quorum > 2 * n  # more than two thirds


# --- verify accepts -----------------------------------------------------------------------------


@pytest.mark.parametrize("n", [4, 7, 10])
def test_quorum_of_commit_signatures_verifies(n: int) -> None:
    keys = validator_keys(n)
    quorum_certificate(keys).verify(chain_id=CHAIN, validators=public_keys(keys))


@pytest.mark.parametrize("n", [4, 7])
def test_any_quorum_of_signers_verifies(n: int) -> None:
    keys = validator_keys(n)
    for signers in combinations(range(n), quorum_size(n)):
        quorum_certificate(keys, list(signers)).verify(chain_id=CHAIN, validators=public_keys(keys))


@pytest.mark.parametrize("n", [4, 7, 10])
def test_more_than_a_quorum_verifies(n: int) -> None:
    keys = validator_keys(n)
    quorum_certificate(keys, list(range(n))).verify(chain_id=CHAIN, validators=public_keys(keys))


# --- verify rejects -----------------------------------------------------------------------------


@pytest.mark.parametrize("n", [4, 7, 10])
def test_fewer_than_quorum_is_rejected(n: int) -> None:
    keys = validator_keys(n)
    cert = quorum_certificate(keys, list(range(quorum_size(n) - 1)))
    with pytest.raises(ValidationError, match=f"needs {quorum_size(n)} of {n}"):
        cert.verify(chain_id=CHAIN, validators=public_keys(keys))


def test_empty_certificate_is_rejected() -> None:
    keys = validator_keys(4)
    with pytest.raises(ValidationError):
        certificate([]).verify(chain_id=CHAIN, validators=public_keys(keys))


@pytest.mark.parametrize("n", [4, 7, 10])
def test_duplicate_validator_is_rejected(n: int) -> None:
    keys = validator_keys(n)
    signers = list(range(quorum_size(n) - 1))
    commits = [(index, commit_signature(keys[index])) for index in signers]
    commits.append(commits[0])  # enough entries, one validator short
    with pytest.raises(ValidationError, match="twice"):
        certificate(commits).verify(chain_id=CHAIN, validators=public_keys(keys))


def test_duplicate_validator_with_a_full_quorum_besides_is_rejected() -> None:
    keys = validator_keys(4)
    commits = [(index, commit_signature(keys[index])) for index in range(4)]
    commits.append(commits[0])
    with pytest.raises(ValidationError, match="twice"):
        certificate(commits).verify(chain_id=CHAIN, validators=public_keys(keys))


@pytest.mark.parametrize("bad_index", [4, 5, -1, 1000])
def test_index_out_of_range_is_rejected(bad_index: int) -> None:
    keys = validator_keys(4)
    extra = validator_keys(6)
    signer = extra[bad_index] if 0 <= bad_index < 6 else keys[0]
    commits = [(0, commit_signature(keys[0])), (1, commit_signature(keys[1]))]
    commits.append((bad_index, commit_signature(signer)))
    with pytest.raises(ValidationError, match=f"validator {bad_index}, there are 4"):
        certificate(commits).verify(chain_id=CHAIN, validators=public_keys(keys))


@pytest.mark.parametrize(
    "wrong",
    [
        pytest.param({"block_hash": sha256(b"another block")}, id="other-block-hash"),
        pytest.param({"view": VIEW + 1}, id="other-view"),
        pytest.param({"seq": HEIGHT + 1}, id="other-height"),
        pytest.param({"domain": Domain.PREPARE}, id="prepare-not-commit"),
        pytest.param({"domain": Domain.CHECKPOINT}, id="checkpoint-not-commit"),
        pytest.param({"chain_id": "other-chain"}, id="other-chain"),
    ],
)
@pytest.mark.parametrize("n", [4, 7, 10])
def test_one_wrong_signature_is_rejected(n: int, wrong: dict[str, Any]) -> None:
    keys = validator_keys(n)
    signers = list(range(quorum_size(n)))
    commits = [(index, commit_signature(keys[index])) for index in signers[:-1]]
    commits.append((signers[-1], commit_signature(keys[signers[-1]], **wrong)))
    with pytest.raises(SignatureError, match=f"validator {signers[-1]}"):
        certificate(commits).verify(chain_id=CHAIN, validators=public_keys(keys))


def test_signature_by_the_wrong_validator_is_rejected() -> None:
    keys = validator_keys(4)
    commits = [(0, commit_signature(keys[0])), (1, commit_signature(keys[1]))]
    commits.append((2, commit_signature(keys[3])))  # validator 3 signs under index 2
    with pytest.raises(SignatureError):
        certificate(commits).verify(chain_id=CHAIN, validators=public_keys(keys))


def test_certificate_does_not_verify_on_another_chain() -> None:
    keys = validator_keys(4)
    with pytest.raises(SignatureError):
        quorum_certificate(keys).verify(chain_id="other-chain", validators=public_keys(keys))


def test_certificate_does_not_verify_against_another_validator_set() -> None:
    keys = validator_keys(4)
    strangers = [KeyPair.from_seed(bytes([100 + index]) * 32) for index in range(4)]
    with pytest.raises(SignatureError):
        quorum_certificate(keys).verify(chain_id=CHAIN, validators=public_keys(strangers))


def test_commit_payload_binds_every_field() -> None:
    payloads = {
        commit_payload(view=VIEW, seq=HEIGHT, block_hash=BLOCK_HASH),
        commit_payload(view=VIEW + 1, seq=HEIGHT, block_hash=BLOCK_HASH),
        commit_payload(view=VIEW, seq=HEIGHT + 1, block_hash=BLOCK_HASH),
        commit_payload(view=VIEW, seq=HEIGHT, block_hash=sha256(b"x")),
        commit_payload(view=HEIGHT, seq=VIEW, block_hash=BLOCK_HASH),
    }
    assert len(payloads) == 5


# --- wire ---------------------------------------------------------------------------------------


def test_wire_round_trip() -> None:
    keys = validator_keys(7)
    cert = quorum_certificate(keys)
    again = CommitCertificate.from_wire(cert.to_wire())
    assert again == cert
    assert again.to_wire() == cert.to_wire()
    again.verify(chain_id=CHAIN, validators=public_keys(keys))


def test_summary_is_hex() -> None:
    keys = validator_keys(4)
    summary = quorum_certificate(keys).summary()
    assert summary["block_hash"] == BLOCK_HASH.hex()
    assert [item["validator"] for item in summary["commits"]] == [0, 1, 2]


def cert_map(**changes: Any) -> dict[str, Any]:
    keys = validator_keys(4)
    return quorum_certificate(keys).to_map() | changes


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(cert_map(height=0), id="height-zero"),
        pytest.param(cert_map(view=-1), id="negative-view"),
        pytest.param(cert_map(view=True), id="bool-view"),
        pytest.param(cert_map(block_hash=b"\x00" * 31), id="short-block-hash"),
        pytest.param(cert_map(commits={"0": b""}), id="commits-not-a-list"),
        pytest.param(cert_map(commits=[[0]]), id="commit-without-signature"),
        pytest.param(cert_map(commits=[[0, bytes(64), 1]]), id="commit-with-three-items"),
        pytest.param(cert_map(commits=[[-1, bytes(64)]]), id="negative-index"),
        pytest.param(cert_map(commits=[["0", bytes(64)]]), id="str-index"),
        pytest.param(cert_map(commits=[[0, bytes(63)]]), id="short-signature"),
        pytest.param(cert_map(commits=[[0, bytes(64)]] * 1025), id="too-many-commits"),
        pytest.param({"height": 1}, id="missing-fields"),
        pytest.param(cert_map(extra=1), id="extra-field"),
        pytest.param([1, 2], id="not-a-map"),
    ],
)
def test_from_wire_rejects_malformed_certificates(value: Any) -> None:
    with pytest.raises(ValidationError):
        CommitCertificate.from_wire(encode(value))


def test_from_wire_rejects_non_canonical_bytes() -> None:
    with pytest.raises(EncodingError):
        CommitCertificate.from_wire(quorum_certificate(validator_keys(4)).to_wire() + b"\x00")
