"""Errors of the oracle package. Every message says what was wrong and what was expected."""

from ledger.errors import MillchainError


class OracleError(MillchainError):
    """Root of the oracle package's errors."""


class TelemetryError(OracleError):
    """A reading or a telemetry file that breaks the AI4I layout or a field's range."""


class TrainingError(OracleError):
    """Training data or options that cannot produce a model (no failures, unknown model name)."""


class ArtifactError(OracleError):
    """A model artifact that is missing, tampered with, or holds types that are not trusted."""
