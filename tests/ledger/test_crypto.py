"""Keys, domain-separated signatures and key files."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import ed25519_zebra
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from ledger.crypto import (
    PUBLIC_KEY_BYTES,
    SIGNATURE_BYTES,
    SMALL_ORDER_KEYS,
    Domain,
    KeyPair,
    is_valid_signature,
    read_key_file,
    signature_holds,
    verify,
    write_key_file,
)
from ledger.errors import KeyFileError, SignatureError

CHAIN = "test-chain"
PAYLOAD = b"payload"


@pytest.fixture
def keys() -> KeyPair:
    return KeyPair.from_seed(bytes(range(32)))


@pytest.fixture
def other_keys() -> KeyPair:
    return KeyPair.from_seed(bytes(range(1, 33)))


# --- keys and signatures ------------------------------------------------------------------------


def test_from_seed_is_deterministic(keys: KeyPair) -> None:
    again = KeyPair.from_seed(keys.seed)
    assert again.public_key == keys.public_key
    assert len(keys.public_key) == PUBLIC_KEY_BYTES


@pytest.mark.parametrize("length", [0, 31, 33, 64])
def test_from_seed_rejects_wrong_length(length: int) -> None:
    with pytest.raises(KeyFileError, match="32 bytes"):
        KeyPair.from_seed(bytes(length))


def test_generate_gives_distinct_keys() -> None:
    assert KeyPair.generate().public_key != KeyPair.generate().public_key


def test_signature_verifies(keys: KeyPair) -> None:
    signature = keys.sign(Domain.TRANSACTION, CHAIN, PAYLOAD)
    assert len(signature) == SIGNATURE_BYTES
    verify(keys.public_key, Domain.TRANSACTION, CHAIN, PAYLOAD, signature)
    assert is_valid_signature(keys.public_key, Domain.TRANSACTION, CHAIN, PAYLOAD, signature)


def test_signature_is_deterministic(keys: KeyPair) -> None:
    assert keys.sign(Domain.COMMIT, CHAIN, PAYLOAD) == keys.sign(Domain.COMMIT, CHAIN, PAYLOAD)


@pytest.mark.parametrize("signed_for", list(Domain))
def test_signature_for_one_domain_never_verifies_for_another(
    keys: KeyPair, signed_for: Domain
) -> None:
    signature = keys.sign(signed_for, CHAIN, PAYLOAD)
    for domain in Domain:
        assert is_valid_signature(keys.public_key, domain, CHAIN, PAYLOAD, signature) == (
            domain is signed_for
        )


@pytest.mark.parametrize("other_chain", ["test-chain-2", "Test-chain", "", "test-chain\x00"])
def test_signature_for_one_chain_id_never_verifies_for_another(
    keys: KeyPair, other_chain: str
) -> None:
    signature = keys.sign(Domain.PREPARE, CHAIN, PAYLOAD)
    with pytest.raises(SignatureError):
        verify(keys.public_key, Domain.PREPARE, other_chain, PAYLOAD, signature)


def test_chain_id_and_payload_cannot_trade_bytes(keys: KeyPair) -> None:
    # Naive concatenation would make ("ab", "c") and ("a", "bc") sign the same bytes.
    signature = keys.sign(Domain.COMMIT, "ab", b"c")
    assert not is_valid_signature(keys.public_key, Domain.COMMIT, "a", b"bc", signature)


def test_tampered_payload_fails(keys: KeyPair) -> None:
    signature = keys.sign(Domain.TRANSACTION, CHAIN, PAYLOAD)
    with pytest.raises(SignatureError, match="bad transaction signature"):
        verify(keys.public_key, Domain.TRANSACTION, CHAIN, PAYLOAD + b"!", signature)


def test_tampered_signature_fails(keys: KeyPair) -> None:
    signature = bytearray(keys.sign(Domain.TRANSACTION, CHAIN, PAYLOAD))
    signature[10] ^= 1
    with pytest.raises(SignatureError):
        verify(keys.public_key, Domain.TRANSACTION, CHAIN, PAYLOAD, bytes(signature))


def test_wrong_key_raises_signature_error(keys: KeyPair, other_keys: KeyPair) -> None:
    signature = keys.sign(Domain.TRANSACTION, CHAIN, PAYLOAD)
    with pytest.raises(SignatureError):
        verify(other_keys.public_key, Domain.TRANSACTION, CHAIN, PAYLOAD, signature)
    assert not is_valid_signature(
        other_keys.public_key, Domain.TRANSACTION, CHAIN, PAYLOAD, signature
    )


@pytest.mark.parametrize("length", [0, 31, 33])
def test_wrong_length_key_raises_signature_error(keys: KeyPair, length: int) -> None:
    signature = keys.sign(Domain.TRANSACTION, CHAIN, PAYLOAD)
    with pytest.raises(SignatureError, match="public key is"):
        verify(bytes(length), Domain.TRANSACTION, CHAIN, PAYLOAD, signature)


@pytest.mark.parametrize("length", [0, 63, 65])
def test_wrong_length_signature_raises_signature_error(keys: KeyPair, length: int) -> None:
    with pytest.raises(SignatureError, match="signature is"):
        verify(keys.public_key, Domain.TRANSACTION, CHAIN, PAYLOAD, bytes(length))


@pytest.mark.parametrize(
    "garbage",
    [bytes(32), b"\xff" * 32, b"\x01" + bytes(31)],  # all-zero, non-canonical, small-order
)
def test_garbage_key_raises_signature_error(keys: KeyPair, garbage: bytes) -> None:
    signature = keys.sign(Domain.TRANSACTION, CHAIN, PAYLOAD)
    with pytest.raises(SignatureError):
        verify(garbage, Domain.TRANSACTION, CHAIN, PAYLOAD, signature)


@pytest.mark.parametrize("key", [None, "0" * 32, bytearray(32), 7])
def test_non_bytes_key_raises_signature_error(keys: KeyPair, key: Any) -> None:
    signature = keys.sign(Domain.TRANSACTION, CHAIN, PAYLOAD)
    with pytest.raises(SignatureError, match="must be bytes"):
        verify(key, Domain.TRANSACTION, CHAIN, PAYLOAD, signature)
    assert not is_valid_signature(key, Domain.TRANSACTION, CHAIN, PAYLOAD, signature)


def test_non_bytes_signature_raises_signature_error(keys: KeyPair) -> None:
    with pytest.raises(SignatureError, match="must be bytes"):
        verify(keys.public_key, Domain.TRANSACTION, CHAIN, PAYLOAD, "x" * 64)  # type: ignore[arg-type]


# --- the verification rule: ZIP 215 without small-order keys -----------------------------------

P = 2**255 - 19
D = -121665 * pow(121666, -1, P) % P
GROUP_ORDER = 2**252 + 27742317777372353535851937790883648493
Point = tuple[int, int]
IDENTITY: Point = (0, 1)


def _add(a: Point, b: Point) -> Point:
    """The twisted Edwards sum on ed25519 (-x^2 + y^2 = 1 + d x^2 y^2), in affine coordinates."""
    (x1, y1), (x2, y2) = a, b
    t = D * x1 * x2 * y1 * y2 % P
    return (
        (x1 * y2 + y1 * x2) * pow(1 + t, -1, P) % P,
        (y1 * y2 + x1 * x2) * pow(1 - t, -1, P) % P,
    )


def _times(k: int, point: Point) -> Point:
    result = IDENTITY
    while k:
        if k & 1:
            result = _add(result, point)
        point = _add(point, point)
        k >>= 1
    return result


def _point_with_y(y: int) -> Point | None:
    x2 = (y * y - 1) * pow(D * y * y + 1, -1, P) % P
    x = pow(x2, (P + 3) // 8, P)
    if x * x % P != x2:
        x = x * pow(2, (P - 1) // 4, P) % P
    return (x, y) if x * x % P == x2 else None


def _torsion() -> set[Point]:
    """The eight points of small order, found from the curve: the group has order 8 L, so L times
    a point whose torsion part has order 8 generates them."""
    for y in range(2, 1000):
        point = _point_with_y(y)
        if point is None:
            continue
        generator = _times(GROUP_ORDER, point)
        if _times(4, generator) != IDENTITY:
            return {_times(k, generator) for k in range(8)}
    raise AssertionError("no point with a torsion part of order 8 below y = 1000")


def test_small_order_keys_are_every_encoding_of_every_point_of_small_order() -> None:
    points = _torsion()
    assert len(points) == 8
    assert all(_times(8, point) == IDENTITY for point in points)
    encodings = {
        (encoded_y | sign << 255).to_bytes(32, "little")
        for _, y in points
        for encoded_y in (y, y + P)
        if encoded_y < 2**255
        for sign in (0, 1)
    }
    assert encodings == SMALL_ORDER_KEYS
    assert len(encodings) == 14


@pytest.mark.parametrize("key", sorted(SMALL_ORDER_KEYS), ids=lambda key: key.hex()[:8])
def test_a_small_order_key_is_refused_though_its_forgery_passes_zip_215(key: bytes) -> None:
    # The identity as R and s = 0: [8](sB - kA - R) is the identity for every message.
    forged = (1).to_bytes(32, "little") + bytes(32)
    message = b"any message at all"
    assert ed25519_zebra.ed_verify(forged, message, key)
    assert signature_holds(key, message, forged)
    with pytest.raises(SignatureError, match="small order"):
        verify(key, Domain.TRANSACTION, CHAIN, PAYLOAD, forged)
    assert not is_valid_signature(key, Domain.TRANSACTION, CHAIN, PAYLOAD, forged)


def _libsodium_accepts(public_key: bytes, message: bytes, signature: bytes) -> bool:
    try:
        VerifyKey(public_key).verify(message, signature)
    except BadSignatureError:
        return False
    return True


@settings(max_examples=200, deadline=None)
@given(
    seed=st.binary(min_size=32, max_size=32),
    message=st.binary(max_size=300),
    flip=st.integers(min_value=-1, max_value=8 * 64 - 1),
)
def test_the_rule_agrees_with_libsodium_on_what_signers_make(
    seed: bytes, message: bytes, flip: int
) -> None:
    """Signatures made by PyNaCl pass, and one flipped bit (flip >= 0) fails, under both."""
    keys = KeyPair.from_seed(seed)
    signature = bytearray(keys.signing_key.sign(message).signature)
    if flip >= 0:
        signature[flip // 8] ^= 1 << flip % 8
    holds = signature_holds(keys.public_key, message, bytes(signature))
    assert holds == (flip < 0)
    assert holds == _libsodium_accepts(keys.public_key, message, bytes(signature))


@settings(max_examples=500, deadline=None)
@given(
    public_key=st.one_of(
        st.binary(min_size=32, max_size=32), st.sampled_from(sorted(SMALL_ORDER_KEYS))
    ),
    r=st.one_of(st.binary(min_size=32, max_size=32), st.sampled_from(sorted(SMALL_ORDER_KEYS))),
    s=st.one_of(st.binary(min_size=32, max_size=32), st.just(b"\xff" * 32)),
    message=st.binary(max_size=300),
)
def test_any_key_and_signature_bytes_get_an_answer_not_an_exception(
    public_key: bytes, r: bytes, s: bytes, message: bytes
) -> None:
    """What a client sends reaches the check after its lengths: it must say yes or no (a panic
    in the extension would end the node's admission)."""
    holds = signature_holds(public_key, message, r + s)
    assert holds is True or holds is False
    assert is_valid_signature(public_key, Domain.TRANSACTION, CHAIN, message, r + s) in (
        True,
        False,
    )


# --- key files ----------------------------------------------------------------------------------


def test_key_file_is_created_owner_only(tmp_path: Path, keys: KeyPair) -> None:
    path = tmp_path / "keys" / "node0.json"
    write_key_file(path, keys, name="node0")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_key_file_is_owner_only_even_with_a_permissive_umask(tmp_path: Path, keys: KeyPair) -> None:
    previous = os.umask(0)
    try:
        write_key_file(tmp_path / "k.json", keys, name="k")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "k.json").stat().st_mode) == 0o600


def test_key_file_reads_back_the_same_key(tmp_path: Path, keys: KeyPair) -> None:
    path = tmp_path / "k.json"
    write_key_file(path, keys, name="alice")
    loaded = read_key_file(path)
    assert loaded.seed == keys.seed
    assert loaded.public_key == keys.public_key
    document = json.loads(path.read_text())
    assert document == {
        "name": "alice",
        "public_key": keys.public_key.hex(),
        "seed": keys.seed.hex(),
    }


def test_write_key_file_refuses_to_overwrite(
    tmp_path: Path, keys: KeyPair, other_keys: KeyPair
) -> None:
    path = tmp_path / "k.json"
    write_key_file(path, keys, name="first")
    with pytest.raises(FileExistsError):
        write_key_file(path, other_keys, name="second")
    assert read_key_file(path).public_key == keys.public_key


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620, 0o602, 0o644, 0o666])
def test_read_key_file_refuses_group_or_other_access(
    tmp_path: Path, keys: KeyPair, mode: int
) -> None:
    path = tmp_path / "k.json"
    write_key_file(path, keys, name="k")
    path.chmod(mode)
    with pytest.raises(KeyFileError, match="expected 600"):
        read_key_file(path)


def test_read_key_file_refuses_missing_file(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="does not exist"):
        read_key_file(tmp_path / "missing.json")


def write_private(path: Path, text: str) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    return path


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("{not json", id="bad-json"),
        pytest.param("", id="empty"),
        pytest.param("[]", id="list"),
        pytest.param('"seed"', id="string"),
        pytest.param('{"public_key": "00"}', id="no-seed"),
        pytest.param('{"seed": "' + "00" * 32 + '"}', id="no-public-key"),
        pytest.param('{"seed": "zz", "public_key": "00"}', id="bad-hex"),
        pytest.param('{"seed": 5, "public_key": "00"}', id="seed-not-str"),
        pytest.param('{"seed": "' + "00" * 31 + '", "public_key": "00"}', id="short-seed"),
    ],
)
def test_read_key_file_refuses_malformed_json(tmp_path: Path, text: str) -> None:
    path = write_private(tmp_path / "k.json", text)
    with pytest.raises(KeyFileError):
        read_key_file(path)


def test_read_key_file_refuses_non_utf8(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    path.write_bytes(b"\xff\xfe{")
    path.chmod(0o600)
    with pytest.raises(KeyFileError, match="malformed"):
        read_key_file(path)


def test_read_key_file_refuses_mismatched_public_key(
    tmp_path: Path, keys: KeyPair, other_keys: KeyPair
) -> None:
    document = {"name": "k", "public_key": other_keys.public_key.hex(), "seed": keys.seed.hex()}
    path = write_private(tmp_path / "k.json", json.dumps(document))
    with pytest.raises(KeyFileError, match="does not match"):
        read_key_file(path)
