"""Errors of the node package; `status` is the HTTP status a client API answers with."""

from ledger.errors import MillchainError


class NodeError(MillchainError):
    """Root of the node package's errors."""


class ConfigError(NodeError):
    """A node configuration file that is missing or malformed."""


class ListenError(NodeError):
    """The node cannot listen on its configured address (taken by another process, say)."""


class StorageError(NodeError):
    """The database is inconsistent with what the node expects (wrong chain, gap in heights)."""


class StreamBroken(NodeError):
    """A peer stream closed, or answered a batch with something other than an ack."""


class ProtocolMismatch(NodeError):
    """A peer that speaks another protocol version (node/protocol.py); `theirs` is its version,
    None when it named none that can be read."""

    def __init__(self, message: str, *, theirs: int | None) -> None:
        super().__init__(message)
        self.theirs = theirs


class Rejection(NodeError):
    """A client request refused with an HTTP status and a message saying what was wrong."""

    status = 400

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status


class Paused(Rejection):
    """A peer batch refused because the node is paused (node/pause.py). Answered without a
    Retry-After: the pause lasts until its operator resumes the node, which the node cannot
    foresee, and a made-up wait would only override the sender's back-off."""

    status = 503


class MempoolFull(Rejection):
    status = 503


class MempoolBusy(MempoolFull):
    """A client's transaction refused while the pool keeps its remaining room for what peers
    forward (see Mempool.client_max)."""


class Duplicate(Rejection):
    status = 409
