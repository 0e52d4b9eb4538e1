"""Errors of the ledger package. Every message says what was wrong and what was expected."""


class MillchainError(Exception):
    """Root of every error millchain raises on purpose."""


class LedgerError(MillchainError):
    """Root of the ledger package's errors."""


class EncodingError(LedgerError):
    """Bytes that are not the canonical encoding of an allowed value."""


class SignatureError(LedgerError):
    """A signature that does not verify, or a key of the wrong shape."""


class ValidationError(LedgerError):
    """A well-encoded value whose fields break a rule (type, range, membership)."""


class KeyFileError(LedgerError):
    """A key file that is missing, unreadable, malformed or readable by others."""


class GenesisError(LedgerError):
    """A genesis document that is malformed or inconsistent."""
