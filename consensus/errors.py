"""Errors of the consensus package.

Two kinds, as in h11: `InvalidMessage` and `InvalidBlock` mean a peer broke the protocol (the
message is dropped and costs the sender); `LocalProtocolError` means our own caller asked for
something the protocol forbids (a bug in the node or the harness).
"""

from __future__ import annotations

from ledger.errors import MillchainError


class ConsensusError(MillchainError):
    """Root of the consensus package's errors."""


class InvalidMessage(ConsensusError):
    """A peer's message that is malformed, wrongly signed, or breaks a protocol rule."""


class StaleMessage(InvalidMessage):
    """A message too old to matter (below the low watermark, or for an earlier view)."""


class InvalidBlock(InvalidMessage):
    """A proposed block that is well formed but must not be ordered (raised by a BlockValidator)."""


class ConfigError(ConsensusError):
    """A replica configuration or starting point that cannot work."""


class LocalProtocolError(ConsensusError):
    """Our own caller broke the protocol: proposing when not allowed, executing out of order."""


class SafetyViolation(ConsensusError):
    """Committed history forked or regressed: raised by the simulator's checker."""


class LivenessViolation(ConsensusError):
    """An accepted request was not committed everywhere in time after the network healed."""
