"""The deterministic state machine that executes transactions: the runtime and built-in contracts.

Nothing here performs IO, reads a clock or draws randomness: time comes from the block header and
every node that executes the same blocks from the same genesis computes the same state and digest.
Start at `contracts.runtime.Runtime`.
"""
