"""ed25519 keys and domain-separated signatures.

Every signature covers a domain tag and the chain id before the payload, so a signature made for
one purpose (a transaction, a prepare, a commit...) or one chain never verifies for another.

Keys and signatures are made with PyNaCl (libsodium) and checked with ed25519-zebra, which
verifies about a third faster here and whose rule is ZIP 215: the cofactored equation, point
encodings taken modulo p, and `s` below the group order. Every signature RFC 8032 signers make
passes it, and every node applies the same rule, so nodes agree on what is valid. ZIP 215 accepts
any signature under a public key of small order (one whose multiple by 8 is the identity: the
equation holds whatever the message), so such keys are refused before the check.
"""

from __future__ import annotations

import enum
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from ed25519_zebra import ed_verify
from nacl.signing import SigningKey

from ledger.encoding import encode
from ledger.errors import KeyFileError, SignatureError

PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64
SEED_BYTES = 32
VERIFIER = "ed25519-zebra, ZIP 215"  # what checks signatures, as reports name it

_P = 2**255 - 19  # the field's prime
# The y coordinates of the eight points of small order (1, 2, 4 and 8): the identity, its
# negation (0, -1), the two points of order 4 (y = 0) and the four of order 8, which share two
# y values summing to p; tests/ledger/test_crypto.py derives them from the curve.
_SMALL_ORDER_Y = (
    1,
    _P - 1,
    0,
    2707385501144840649318225287225658788936804267575313519463743609750303402022,
    55188659117513257062467267217118295137698188065244968500265048394206261417927,
)
# Every encoding that decodes to one of them under ZIP 215: y below 2**255 (so y + p where that
# fits) and either sign bit.
SMALL_ORDER_KEYS = frozenset(
    (encoded_y | sign << 255).to_bytes(PUBLIC_KEY_BYTES, "little")
    for y in _SMALL_ORDER_Y
    for encoded_y in (y, y + _P)
    if encoded_y < 2**255
    for sign in (0, 1)
)


class Domain(enum.StrEnum):
    """What a signature is for; part of every signed message."""

    TRANSACTION = "millchain/tx/v1"
    PRE_PREPARE = "millchain/pre-prepare/v1"
    PREPARE = "millchain/prepare/v1"
    COMMIT = "millchain/commit/v1"
    CHECKPOINT = "millchain/checkpoint/v1"
    VIEW_CHANGE = "millchain/view-change/v1"
    NEW_VIEW = "millchain/new-view/v1"
    PEER_LINK = "millchain/peer-link/v1"  # a validator opening a link (node/peer_auth.py)


def signing_message(domain: Domain, chain_id: str, payload: bytes) -> bytes:
    return encode([str(domain), chain_id, payload])


@dataclass(frozen=True, slots=True)
class KeyPair:
    """A private signing key and its public key."""

    signing_key: SigningKey

    @classmethod
    def generate(cls) -> KeyPair:
        return cls(SigningKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> KeyPair:
        if len(seed) != SEED_BYTES:
            raise KeyFileError(f"a key seed is {SEED_BYTES} bytes, got {len(seed)}")
        return cls(SigningKey(seed))

    @property
    def public_key(self) -> bytes:
        return bytes(self.signing_key.verify_key)

    @property
    def seed(self) -> bytes:
        return bytes(self.signing_key)

    def sign(self, domain: Domain, chain_id: str, payload: bytes) -> bytes:
        signed = self.signing_key.sign(signing_message(domain, chain_id, payload))
        return bytes(signed.signature)


def verify(
    public_key: bytes, domain: Domain, chain_id: str, payload: bytes, signature: bytes
) -> None:
    """Raise SignatureError unless `signature` is `public_key`'s over (domain, chain, payload)."""
    if not isinstance(public_key, bytes) or not isinstance(signature, bytes):
        raise SignatureError(
            f"public key and signature must be bytes, got {type(public_key).__name__} "
            f"and {type(signature).__name__}"
        )
    if len(public_key) != PUBLIC_KEY_BYTES:
        raise SignatureError(f"public key is {len(public_key)} bytes, expected {PUBLIC_KEY_BYTES}")
    if len(signature) != SIGNATURE_BYTES:
        raise SignatureError(f"signature is {len(signature)} bytes, expected {SIGNATURE_BYTES}")
    if public_key in SMALL_ORDER_KEYS:
        raise SignatureError("public key is a point of small order, which anyone can sign for")
    if not signature_holds(public_key, signing_message(domain, chain_id, payload), signature):
        raise SignatureError(f"bad {domain.name.lower()} signature")


def signature_holds(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """The bare ed25519 check (ZIP 215) of a 32-byte key and a 64-byte signature over `message`;
    False also for a key that is no curve point. `verify` adds the checks around it."""
    holds: bool = ed_verify(signature, message, public_key)
    return holds


def is_valid_signature(
    public_key: bytes, domain: Domain, chain_id: str, payload: bytes, signature: bytes
) -> bool:
    try:
        verify(public_key, domain, chain_id, payload, signature)
    except SignatureError:
        return False
    return True


def write_key_file(path: Path, keys: KeyPair, *, name: str) -> None:
    """Write a key file readable and writable by its owner only (created 0600, never widened)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {"name": name, "public_key": keys.public_key.hex(), "seed": keys.seed.hex()}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(document, handle, indent=2)
        handle.write("\n")


def read_key_file(path: Path) -> KeyPair:
    """Read a key file; refuse one that others may read, or whose public key does not match."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError as exc:
        raise KeyFileError(f"key file {path} does not exist") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(
            f"key file {path} has mode {stat.S_IMODE(mode):o}; expected 600 (owner only)"
        )
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        keys = KeyPair.from_seed(bytes.fromhex(document["seed"]))
        public_key = bytes.fromhex(document["public_key"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise KeyFileError(f"key file {path} is malformed: {exc}") from exc
    if keys.public_key != public_key:
        raise KeyFileError(f"key file {path}: public key does not match the seed")
    return keys
