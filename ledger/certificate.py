"""Commit certificates: 2f+1 validators' signed commits for one block, checkable offline.

The payload a validator signs when it commits is defined here, and consensus signs exactly this,
so a certificate is the commit messages themselves, stripped to (validator index, signature).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ledger import crypto
from ledger.crypto import Domain
from ledger.encoding import decode, encode
from ledger.errors import SignatureError, ValidationError
from ledger.fields import expect_bytes, expect_int, expect_list, expect_map
from ledger.hashing import HASH_BYTES

_CERT_KEYS = frozenset({"height", "view", "block_hash", "commits"})
COMMITS_MAX = 1024  # one per validator at most (consensus.messages.VALIDATORS_MAX)


def commit_payload(*, view: int, seq: int, block_hash: bytes) -> bytes:
    """The bytes a validator signs (under Domain.COMMIT) to commit `block_hash` at `seq`."""
    return encode({"view": view, "seq": seq, "block_hash": block_hash})


@dataclass(frozen=True, slots=True, kw_only=True)
class CommitCertificate:
    height: int
    view: int
    block_hash: bytes
    commits: tuple[tuple[int, bytes], ...]  # (validator index, signature), sorted by index

    def to_map(self) -> dict[str, Any]:
        return {
            "height": self.height,
            "view": self.view,
            "block_hash": self.block_hash,
            "commits": [[index, signature] for index, signature in self.commits],
        }

    def to_wire(self) -> bytes:
        return encode(self.to_map())

    @classmethod
    def from_map(cls, value: Any) -> CommitCertificate:
        fields = expect_map(value, "commit certificate", _CERT_KEYS)
        commits = []
        for item in expect_list(fields["commits"], "certificate commits", length_max=COMMITS_MAX):
            pair = expect_list(item, "certificate commit", length_max=2)
            if len(pair) != 2:
                raise ValidationError("a certificate commit is [validator index, signature]")
            commits.append(
                (
                    expect_int(pair[0], "validator index"),
                    expect_bytes(pair[1], "commit signature", length=crypto.SIGNATURE_BYTES),
                )
            )
        return cls(
            height=expect_int(fields["height"], "certificate height", minimum=1),
            view=expect_int(fields["view"], "certificate view"),
            block_hash=expect_bytes(
                fields["block_hash"], "certificate block_hash", length=HASH_BYTES
            ),
            commits=tuple(commits),
        )

    @classmethod
    def from_wire(cls, data: bytes) -> CommitCertificate:
        # The map, its list of commits and a pair for each, one more than the most allowed so
        # that from_map names a list too long: nothing more is built.
        return cls.from_map(decode(data, containers_max=3 + COMMITS_MAX))

    def verify(self, *, chain_id: str, validators: Sequence[bytes]) -> None:
        """Raise unless 2f+1 distinct validators of `validators` signed this commit."""
        n = len(validators)
        quorum = quorum_size(n)
        indices = [index for index, _ in self.commits]
        if len(set(indices)) != len(indices):
            raise ValidationError("certificate names a validator twice")
        if len(indices) < quorum:
            raise ValidationError(f"certificate has {len(indices)} commits, needs {quorum} of {n}")
        payload = commit_payload(view=self.view, seq=self.height, block_hash=self.block_hash)
        for index, signature in self.commits:
            if not 0 <= index < n:
                raise ValidationError(f"certificate names validator {index}, there are {n}")
            try:
                crypto.verify(validators[index], Domain.COMMIT, chain_id, payload, signature)
            except SignatureError as exc:
                raise SignatureError(f"certificate commit of validator {index}: {exc}") from exc

    def summary(self) -> dict[str, Any]:
        return {
            "height": self.height,
            "view": self.view,
            "block_hash": self.block_hash.hex(),
            "commits": [{"validator": i, "signature": s.hex()} for i, s in self.commits],
        }


def max_faulty(n: int) -> int:
    """f, the number of faulty validators n = 3f+1 (or more) tolerates."""
    return (n - 1) // 3


def quorum_size(n: int) -> int:
    """2f+1 for n = 3f+1; in general n - f, which is more than two thirds of n.

    Any two sets of n - f validators share at least f+1, so at least one honest one (safety), and
    the n - f honest validators can form one on their own (liveness). For n = 3f+1 it is also the
    smallest such size; for other n a smaller one can exist (4 for n = 6), but n - f is the
    conventional "more than 2/3" rule and what every node must agree on.
    """
    return n - max_faulty(n)
