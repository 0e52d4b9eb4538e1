"""Errors of the contracts package.

`ExecutionError` and its subclasses are the expected failures of a transaction: the runtime turns
them into a failing receipt carrying the message and discards the transaction's writes. Every other
error here signals a bug or corrupt state and is allowed to propagate, because executing on would
let nodes diverge silently.
"""

from ledger.errors import MillchainError


class ContractError(MillchainError):
    """Root of the contracts package's errors."""


class DefinitionError(ContractError):
    """A contract or method declared wrongly (found when the class or the registry is built)."""


class StateError(ContractError):
    """A stored value that is not the record its key promises: corrupt or foreign state."""


class QueryError(ContractError):
    """A read-only query for an unknown path or a record that does not exist."""


class QueryParameterError(QueryError):
    """A query parameter that the query does not take, or a value it cannot take (a malformed
    cursor): a bad request, where a QueryError names something that is not there."""


class ExecutionError(ContractError):
    """A transaction that fails: its message goes into the receipt and its writes are dropped."""


class RejectedError(ExecutionError):
    """The runtime refused to run the method: unknown contract or method, or a missing role."""


class ArgumentError(ExecutionError):
    """Arguments that do not match the method's schema (missing, extra, mistyped, out of range)."""


class NotFoundError(ExecutionError):
    """The transaction names something (an identity, a stock record) that does not exist."""


class ConflictError(ExecutionError):
    """The transaction conflicts with current state (already exists, last admin, a limit)."""


class InsufficientStockError(ExecutionError):
    """Not enough available or reserved stock for the requested quantity."""
