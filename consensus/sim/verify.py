"""Signature checks for the simulator, cached per exact (key, domain, chain, payload, signature):
a broadcast is checked once, not once per receiver. The replica itself never caches."""

from __future__ import annotations

from ledger import crypto
from ledger.crypto import Domain


class CachingVerifier:
    def __init__(self) -> None:
        self._known: dict[tuple[bytes, str, str, bytes, bytes], bool] = {}
        self.checked = 0

    def __call__(
        self, public_key: bytes, domain: Domain, chain_id: str, payload: bytes, signature: bytes
    ) -> bool:
        key = (public_key, str(domain), chain_id, payload, signature)
        found = self._known.get(key)
        if found is None:
            self.checked += 1
            found = self._known[key] = crypto.is_valid_signature(
                public_key, domain, chain_id, payload, signature
            )
        return found
