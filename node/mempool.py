"""The mempool: admitted transactions waiting for a block.

Transactions are deduplicated by hash and kept per sender in nonce order. Only a run of
consecutive nonces starting at the sender's next nonce is ready to be cut into a block; a
transaction with a gap waits for the one before it. Senders are served round-robin in order of
arrival, so one busy sender cannot starve the others.

Gaps happen: a full pool (or a full admission queue) refuses part of a forwarded batch and takes
the rest later, so a node can hold a sender's later nonces without an earlier one. Two rules keep
that from stalling the chain. Transactions that would wait behind a missing nonce may fill the
pool only up to `capacity - gap_reserve`, so the ones that fill the gaps always find room. And
`stalled` names the senders that have not moved on for a while although this node holds their
next transaction: the node asks the primary how far it holds each one's run, and sends it what it
lacks.

Under sustained overload the pools would fill up, and then refuse forwarded transactions: every
refusal at the primary opens a gap, the primary's pool fills with transactions it cannot propose,
blocks shrink and the backups spend their time resending. So a node takes clients' transactions
only while its pool is less than `client_max` full (CLIENT_SHARE of its capacity), and keeps the
rest for what peers forward. Every admitted transaction is forwarded to every validator, so the
pools hold much the same transactions, and what one node admitted from a client finds room at
the others.

A committed transaction normally leaves the pool with its block. One that failed a gate of the
runtime without using its nonce (a faulty primary proposed it before its turn) stays, as long as
admission would take the same bytes now (`remove_committed`): it is then proposed when its turn
comes. One whose sender admission now refuses (suspended, removed) goes; one still waiting
behind a missing nonce expires like any other.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable

from ledger.block import TX_ENTRY_BYTES
from ledger.tx import Transaction
from node.errors import Duplicate, MempoolBusy, MempoolFull

NONCE_AHEAD_MAX = 1024
# Clients' transactions of one sender that may wait here behind a nonce this node lacks. Honest
# clients send a sender's nonces in order, so theirs never wait long; without a bound one sender
# could park NONCE_AHEAD_MAX of them and fill the clients' share of the pool for everybody.
GAPPED_FROM_CLIENT_MAX = 64
# A transaction waiting behind a missing nonce this long after it arrived is dropped (see
# `expire_gapped`): commits fill every gap an honest sender leaves within seconds, so one still
# open after ten minutes is a nonce the sender withheld or lost, and nothing else would ever
# take its later transactions out of the pool.
GAPPED_TTL_MS = 600_000
# The share of the pool kept for transactions that extend a sender's ready run.
GAP_RESERVE_FRACTION = 0.1
# The share of the pool that clients' transactions may fill; the rest is room for forwards.
CLIENT_SHARE = 0.5
STALL_BACKOFF_MAX = 8
PENDING_QUERY_MAX = 1024  # senders in one /peer/pending query (node/api.py)


class Mempool:
    def __init__(self, *, capacity: int, committed_nonce: Callable[[bytes], int]) -> None:
        self.capacity = capacity
        self.gap_reserve = max(1, int(capacity * GAP_RESERVE_FRACTION))
        self.client_max = max(1, int(capacity * CLIENT_SHARE))
        self._load_nonce = committed_nonce
        self._committed: dict[bytes, int] = {}  # cache of committed next nonces, per sender
        self._by_hash: dict[bytes, Transaction] = {}
        self._by_sender: OrderedDict[bytes, dict[int, Transaction]] = OrderedDict()
        self._next: dict[bytes, int] = {}  # next nonce to cut per sender (past in-flight ones)
        self._in_flight: dict[bytes, Transaction] = {}
        # The block bytes (see _cost) of all held transactions, and of those in flight.
        self._bytes = 0
        self._in_flight_bytes = 0
        self._arrived_ms: dict[bytes, float] = {}  # when each one reached this node
        # When this node last sent one to the primary itself (forwarded or resent), where later
        # than its arrival: see `sent_ms`.
        self._sent_ms: dict[bytes, float] = {}
        # Per sender with pending transactions: the first nonce missing from the consecutive
        # run that starts at its committed nonce (every nonce below it, from there, is pending).
        self._run_end: dict[bytes, int] = {}
        # Per sender: its committed nonce when last seen, since when, and how long to wait
        # before naming it (again) as stalled (see `stalled`).
        self._seen: dict[bytes, tuple[int, float, float]] = {}
        # Per sender `stalled` named in this view: its committed nonce then, since when, and how
        # many blocks had committed by then (see `starved_since`).
        self._starved: dict[bytes, tuple[int, float, int]] = {}
        self._blocks_committed = 0  # blocks remove_committed was given

    def _committed_nonce(self, sender: bytes) -> int:
        nonce = self._committed.get(sender)
        if nonce is None:
            nonce = self._load_nonce(sender)
            # Cached only for senders in the pool (remove_committed keeps those current): asking
            # about any other key, as clients and peers may, must neither grow the cache nor
            # leave an entry that blocks going stale.
            if sender in self._by_sender:
                self._committed[sender] = nonce
        return nonce

    def _ready_end(self, sender: bytes) -> int:
        end = self._run_end.get(sender)
        return self._committed_nonce(sender) if end is None else end

    def _extend_run(self, sender: bytes, pending: dict[int, Transaction], start: int) -> None:
        end = start
        while end in pending:
            end += 1
        self._run_end[sender] = end

    def has_ready(self) -> bool:
        """Whether some sender's next transaction is waiting (a block could be cut)."""
        return any(
            self._next.get(sender, self._committed_nonce(sender)) in pending
            for sender, pending in self._by_sender.items()
        )

    def __len__(self) -> int:
        return len(self._by_hash)

    def __contains__(self, tx_hash: bytes) -> bool:
        return tx_hash in self._by_hash

    def get(self, tx_hash: bytes) -> Transaction | None:
        return self._by_hash.get(tx_hash)

    def add(self, tx: Transaction, arrived_ms: float | None = None) -> None:
        """Admit a verified transaction or raise a Rejection saying why not (`arrived_ms`: when
        it reached this node, for the latency stages)."""
        self.check_room(tx)
        if arrived_ms is not None:
            self._arrived_ms[tx.hash] = arrived_ms
        pending = self._by_sender.get(tx.sender)
        if pending is None:
            pending = self._by_sender[tx.sender] = {}
        pending[tx.nonce] = tx
        self._by_hash[tx.hash] = tx
        self._bytes += _cost(tx)
        end = self._ready_end(tx.sender)
        if tx.nonce == end:
            self._extend_run(tx.sender, pending, end + 1)
        else:
            self._run_end[tx.sender] = end

    def check_room(self, tx: Transaction, *, from_client: bool = False) -> None:
        """Raise the Rejection `add` would raise, without adding: the node asks before it spends
        a signature check on a transaction the pool would refuse anyway. `from_client`: a
        client's transaction, refused (MempoolBusy) once the pool holds `client_max`."""
        if tx.hash in self._by_hash:
            raise Duplicate(f"transaction {tx.hash.hex()} is already pending")
        committed = self._committed_nonce(tx.sender)
        if tx.nonce < committed:
            raise Duplicate(
                f"nonce {tx.nonce} of sender {tx.sender.hex()[:16]} is already used "
                f"(next is {committed})"
            )
        if tx.nonce >= committed + NONCE_AHEAD_MAX:
            # Per-sender back-pressure: the sender may retry once earlier nonces commit.
            raise MempoolFull(
                f"nonce {tx.nonce} is {NONCE_AHEAD_MAX} or more ahead of the committed nonce "
                f"{committed}; retry once earlier transactions commit"
            )
        pending = self._by_sender.get(tx.sender)
        if pending is not None and tx.nonce in pending:
            raise Duplicate(f"nonce {tx.nonce} of this sender is already pending in another tx")
        if from_client and pending is not None:
            missing = self._ready_end(tx.sender)
            waiting = len(pending) - (missing - committed)  # the sender's behind the gap
            if tx.nonce > missing and waiting >= GAPPED_FROM_CLIENT_MAX:
                raise MempoolBusy(
                    f"{waiting} transactions of this sender already wait for nonce {missing}, "
                    "which this node does not hold; send that one first"
                )
        size = len(self._by_hash)
        if from_client and size >= self.client_max:
            raise MempoolBusy(
                f"mempool holds {size} transactions: this node takes clients' transactions "
                f"while it holds fewer than {self.client_max} (the rest of its {self.capacity} "
                "is room for what peers forward); retry later"
            )
        if size >= self.capacity:
            raise MempoolFull(f"mempool is full ({self.capacity} transactions); retry later")
        if size >= self.capacity - self.gap_reserve:
            missing = self._ready_end(tx.sender)
            if tx.nonce > missing:
                raise MempoolFull(
                    f"mempool is nearly full and nonce {tx.nonce} would wait behind nonce "
                    f"{missing}, which this node does not hold; send that one first"
                )

    def pending_count(self, sender: bytes) -> int:
        """How many of `sender`'s transactions wait here (in flight ones included)."""
        return len(self._by_sender.get(sender, ()))

    def next_nonce(self, sender: bytes) -> int:
        """The nonce a client should use next: past every consecutive pending one."""
        return self._ready_end(sender)

    def arrived_ms(self, tx_hash: bytes) -> float | None:
        return self._arrived_ms.get(tx_hash)

    def mark_sent(self, tx_hashes: Iterable[bytes], at_ms: float) -> None:
        """This node sent these pending transactions to the primary at `at_ms`: it forwarded a
        client's ones after admitting them, or resent them."""
        for tx_hash in tx_hashes:
            if tx_hash in self._by_hash:
                self._sent_ms[tx_hash] = at_ms

    def sent_ms(self, tx_hash: bytes) -> float | None:
        """When the primary was last sent this transaction, as far as this node knows: when this
        node forwarded or resent it, else when it arrived here (a peer that forwarded it here
        sent it to the primary at the same time)."""
        sent = self._sent_ms.get(tx_hash)
        return self._arrived_ms.get(tx_hash) if sent is None else sent

    def ready_count_at_least(self, count: int) -> bool:
        """Whether `count` transactions may be ready: an upper bound, counting those behind a
        gap too, so the cutter may cut a block early rather than wait for it to fill. Counting
        exactly (each sender's run past those in flight) walks the senders on every call; at
        n = 7 under unpaced load it changed neither blocks nor throughput beyond the noise."""
        return len(self._by_hash) - len(self._in_flight) >= count

    def ready_bytes_at_least(self, size: int) -> bool:
        """Whether transactions of `size` block bytes (len(wire) + TX_ENTRY_BYTES each) may be
        ready: an upper bound, as `ready_count_at_least` is. A block is full by its bytes long
        before its count when transactions are large, or blocks small (see
        ledger.genesis.block_bytes_limit)."""
        return self._bytes - self._in_flight_bytes >= size

    def cut(self, txs_max: int, bytes_max: int | None = None) -> list[Transaction]:
        """Take up to `txs_max` ready transactions (they stay pending until committed), and
        with `bytes_max` no more than fit in that many bytes of a block (each its wire and
        TX_ENTRY_BYTES), though always one."""
        batch: list[Transaction] = []
        budget = bytes_max
        full = False
        for sender in list(self._by_sender):
            pending = self._by_sender[sender]
            nonce = self._next.get(sender)
            if nonce is None:
                nonce = self._committed_nonce(sender)
            while nonce in pending and len(batch) < txs_max:
                tx = pending[nonce]
                if budget is not None:
                    cost = _cost(tx)
                    if batch and cost > budget:
                        full = True
                        break
                    budget -= cost
                batch.append(tx)
                if tx.hash not in self._in_flight:
                    self._in_flight_bytes += _cost(tx)
                self._in_flight[tx.hash] = tx
                nonce += 1
            self._next[sender] = nonce
            if full or len(batch) >= txs_max:
                # Serve this sender last next time: round-robin fairness.
                self._by_sender.move_to_end(sender)
                break
        return batch

    def remove_committed(
        self,
        txs: Iterable[Transaction],
        still_admissible: Callable[[Transaction], bool] | None = None,
    ) -> None:
        """Drop committed transactions and any pending one their nonces made stale.

        A committed transaction whose nonce is still unused failed one of the runtime's gates
        and changed nothing (a faulty primary took it before its turn, say). It stays pending if
        `still_admissible` says admission would take the same bytes now, so that it is proposed
        when its turn comes as if that block had not touched it; else (and without the check) it
        goes. Its nonce is used if and only if it is below the sender's committed one, which is
        read here anyway: a block whose transactions all used theirs costs nothing more."""
        self._blocks_committed += 1
        committed_nonces: dict[bytes, int] = {}
        unused: list[Transaction] = []
        for tx in txs:
            committed = committed_nonces.get(tx.sender)
            if committed is None:
                committed = committed_nonces[tx.sender] = self._load_nonce(tx.sender)
            if tx.nonce < committed or still_admissible is None or tx.hash not in self._by_hash:
                self._drop(tx)
            else:
                unused.append(tx)
        if unused and still_admissible is not None:
            self._keep_admissible(unused, still_admissible)
        for sender, committed in committed_nonces.items():
            self._committed[sender] = committed
            pending = self._by_sender.get(sender)
            if pending is not None:
                for nonce in [n for n in pending if n < committed]:
                    self._drop(pending[nonce])
            if self._next.get(sender, committed) < committed:
                self._next[sender] = committed
            if pending is not None and sender in self._by_sender:
                self._extend_run(sender, pending, max(self._ready_end(sender), committed))
            if sender not in self._by_sender:
                self._committed.pop(sender, None)  # keep the cache as small as the pool

    def _keep_admissible(
        self, unused: list[Transaction], still_admissible: Callable[[Transaction], bool]
    ) -> None:
        """Keep pending the committed transactions in `unused` (their nonces unused) that
        admission would take now, and drop the rest.

        A kept one is no longer in flight, and the sender's cut restarts at its nonce if it had
        passed it. Only this node's own block can have taken it from this node's cut (a primary
        cuts nothing until the blocks before its view's first are executed: node/service.py,
        `_propose_after_height`), and then what it cut after it would wait for it forever (its
        sender suspended and reinstated in that block, say). Should it also wait in a block
        still being agreed, it is cut once more and one inclusion fails on the used nonce: a
        wasted place in a block, never a lost transaction."""
        for tx in unused:
            if not still_admissible(tx):
                self._drop(tx)
                continue
            if self._in_flight.pop(tx.hash, None) is not None:
                self._in_flight_bytes -= _cost(tx)
            if self._next.get(tx.sender, tx.nonce) > tx.nonce:
                self._next[tx.sender] = tx.nonce

    def stalled(self, now_ms: float, after_ms: float, senders_max: int) -> list[bytes]:
        """Senders whose committed nonce has not moved for `after_ms` while this pool held their
        next transaction. A sender still stuck is named again after twice the previous wait, up
        to STALL_BACKOFF_MAX times `after_ms`; progress starts it over.

        Under load a sender's turn comes round every few blocks and the primary may simply not
        have reached it; but a primary that lacks the sender's next transaction will never
        propose the ones after it. The node asks the primary how far it holds each stalled
        sender's run and sends what it lacks (`run_from`)."""
        senders: list[bytes] = []
        for sender, pending in self._by_sender.items():
            if len(senders) >= senders_max:
                break  # the rest keep their clocks for the next call
            committed = self._committed_nonce(sender)
            if committed not in pending:
                self._seen.pop(sender, None)
                continue
            seen = self._seen.get(sender)
            if seen is None or seen[0] != committed:
                self._seen[sender] = (committed, now_ms, after_ms)
                continue
            _, since, wait_ms = seen
            if now_ms - since < wait_ms:
                continue
            self._seen[sender] = (committed, now_ms, min(wait_ms * 2, after_ms * STALL_BACKOFF_MAX))
            starved = self._starved.get(sender)
            if starved is None or starved[0] != committed:
                self._starved[sender] = (committed, now_ms, self._blocks_committed)
            senders.append(sender)
        return senders

    def starved_since(self, blocks_min: int) -> float | None:
        """Since when the longest-waiting sender has stood still although `stalled` named it
        (so its next transaction was sent to the primary again) and at least `blocks_min`
        blocks committed meanwhile; None if no sender has.

        The view-change deadline is pushed back by every commit, so a primary that commits
        other senders' transactions and leaves one sender's out would never be replaced:
        PBFT's timer runs per request. A per-request clock alone would replace sound primaries
        under load, though, where a transaction may wait seconds for its turn. Blocks tell the
        two apart: a primary serves the senders it holds round robin (`cut`), so every one of
        them gets a turn within about as many blocks as there are senders waiting."""
        oldest: float | None = None
        for sender, (nonce, since, blocks) in list(self._starved.items()):
            pending = self._by_sender.get(sender)
            if pending is None or nonce not in pending or self._committed_nonce(sender) != nonce:
                del self._starved[sender]  # it moved on, or has nothing waiting any more
                continue
            if self._blocks_committed - blocks >= blocks_min and (oldest is None or since < oldest):
                oldest = since
        return oldest

    @property
    def senders(self) -> int:
        """How many senders have transactions here."""
        return len(self._by_sender)

    def ready_run(self, sender: bytes, txs_max: int) -> list[Transaction]:
        """Up to `txs_max` of the sender's pending transactions from its committed nonce on."""
        return self.run_from(sender, self._committed_nonce(sender), txs_max)

    def run_from(self, sender: bytes, nonce: int, txs_max: int) -> list[Transaction]:
        """Up to `txs_max` of the sender's pending transactions with consecutive nonces from
        `nonce` (none if that one is not pending)."""
        pending = self._by_sender.get(sender, {})
        run: list[Transaction] = []
        while nonce in pending and len(run) < txs_max:
            run.append(pending[nonce])
            nonce += 1
        return run

    def expire_gapped(self, now_ms: float, ttl_ms: float) -> list[Transaction]:
        """Drop the transactions that still wait behind a missing nonce `ttl_ms` after they
        arrived, and return them (one the node added without an arrival time never expires).
        The sender may send them again once it has sent the one they waited for."""
        expired = [
            tx
            for sender, pending in self._by_sender.items()
            for tx in self._behind_gap(sender, pending)
            if now_ms - self._arrived_ms.get(tx.hash, now_ms) >= ttl_ms
        ]
        for tx in expired:
            self._drop(tx)
        return expired

    def drop_refused(self, still_admissible: Callable[[Transaction], bool]) -> list[Transaction]:
        """Drop, sender by sender from its lowest pending nonce, the transactions admission
        refuses now, up to the first one it takes; return them. A block that suspends or removes
        a sender (or takes a role from it) makes its pending transactions ones no primary admits:
        a backup holding them, its primary lacking them, would keep them ready for ever (never
        behind a gap, so never expiring), resend them in vain and time its primary out."""
        refused: list[Transaction] = []
        for pending in list(self._by_sender.values()):
            for nonce in sorted(pending):
                if still_admissible(pending[nonce]):
                    break
                refused.append(pending[nonce])
        for tx in refused:
            self._drop(tx)
        return refused

    def _behind_gap(self, sender: bytes, pending: dict[int, Transaction]) -> list[Transaction]:
        gap = self._ready_end(sender)
        return [tx for nonce, tx in pending.items() if nonce > gap]

    def return_in_flight(self) -> None:
        """Forget what was cut but not committed (after a view change) so it can be cut again,
        and which senders stood still: a new primary gets its own time."""
        self._in_flight.clear()
        self._in_flight_bytes = 0
        self._next.clear()
        self._starved.clear()

    def _drop(self, tx: Transaction) -> None:
        if self._in_flight.pop(tx.hash, None) is not None:
            self._in_flight_bytes -= _cost(tx)
        self._arrived_ms.pop(tx.hash, None)
        self._sent_ms.pop(tx.hash, None)
        if self._by_hash.pop(tx.hash, None) is None:
            return
        self._bytes -= _cost(tx)
        pending = self._by_sender.get(tx.sender)
        if pending is not None:
            pending.pop(tx.nonce, None)
            end = self._run_end.get(tx.sender)
            if end is not None and tx.nonce < end:
                # A committed transaction whose nonce was not used (a failed receipt) leaves a
                # hole in the run; remove_committed extends it again from the committed nonce.
                self._run_end[tx.sender] = tx.nonce
            if not pending:
                del self._by_sender[tx.sender]
                # Cached only while the sender is pending (see _committed_nonce): blocks stored
                # while it is not (fetched ones, into an empty pool) do not update the cache.
                self._committed.pop(tx.sender, None)
                self._next.pop(tx.sender, None)
                self._run_end.pop(tx.sender, None)
                self._seen.pop(tx.sender, None)
                self._starved.pop(tx.sender, None)


def _cost(tx: Transaction) -> int:
    """What `tx` adds to a block's bytes (ledger.block.block_bytes)."""
    return len(tx.wire) + TX_ENTRY_BYTES
