"""Catching up: fetch certified history from peers, check it, apply it, tell the caller.

Runs as one background task at a time: started by the replica's `FetchBlocks` action (a
validator that fell behind), at start and when idle, or kept running forever (an observer).

Theory of operation. A certified block (node/sync.py checks its commit certificate and the hash
chain) vouches for its transactions, so their signatures are not checked again; but it does not
vouch for the state they produce, and executing them again costs about 65 us a transaction.
Instead a peer serves, per block, the receipts and net writes it produced (node/history.py),
and this module rebuilds the chained state digest from them (contracts.state.next_digest)
without executing anything. Fetched blocks pile up in a *run* on top of the stored head. The run
is trusted up to height c only once the digest it chains to at c equals the digest of a stable
checkpoint proof for c: 2f+1 validators signed that digest, so at least f+1 honest ones computed
it by executing. Only then is the run up to c applied: its blocks, receipts, events and writes,
in one database transaction (an answer's worth, a few thousand transactions: larger commits
measured no faster). Nothing of a run is written before its check passed, so a run whose digest
does not match is dropped whole (what earlier proofs confirmed stays); the peer that served it
is treated as faulty, and the next peer is asked, from the stored head. While one answer is
checked and applied, the next one is already asked for, so the peer reads and sends it
meanwhile. A peer is asked again only after a full answer (every block asked for, or cut for
size): one that answers with a block at a time, each just within the timeout, would otherwise
keep the node behind for as long as it liked; after a short answer the next peer is asked.
Only the bytes of the blocks and certificates count for the size: receipts and writes are
checked at a proof at the soonest, so a peer could pad a one-block answer with them (or with
the receipts of a block served without a write set, never checked) to have it pass for full.

Which peer is asked first: the caller's order (a validator puts the ones its replica saw ahead
of it first), except that a peer that failed a catch-up comes after the others for DEMOTION_S
(PeerOrder, which the node keeps across catch-ups). Failing is timing out, refusing the
connection, any answer but a 200 with history or a busy one (below), a run that does not check
out, or ending its turn short (or with nothing) of what a later peer in the same catch-up
served: behind, or holding blocks back a few at a time. Timing out is taking the session's whole
timeout for an answer (30 s in the node), or sending no bytes at all for SILENCE_S_MAX while
answering: an honest peer assembles even a full answer in a fraction of that, then sends it in
one go, so a peer that accepts the connection and says nothing costs seconds, not the whole
timeout. First every time, one such peer would cost every catch-up up to an answer timeout;
demoted, it costs one per DEMOTION_S at most. Among the demoted, the one that failed last comes
last. A demoted peer is still asked when the others stop short of a catch-up's target height (it
may be the only one with the blocks), but not by a catch-up without a target (idle, or an
observer's poll) while another peer is left to ask: those learn only whether there is more,
which the others tell as well. A peer that takes a catch-up to its end (to the target, or,
without one, in full answers to its own head) is restored to its place, and a demotion ends
after DEMOTION_S anyway, so none lasts for good: an honest peer that was merely a block behind
loses its place for a while.

A peer that answers 429 (its client rate limit: an observer's reads take tokens) or 503 (paused,
or busy) says "ask me again later", not "I am faulty": it keeps its place, but is not asked
before its Retry-After has passed (whole seconds, capped at node/peers.py's RETRY_AFTER_S_MAX,
BUSY_WAIT_S_DEFAULT without one), in this catch-up or the next ones; the catch-up goes on to the
next peer meanwhile (keeping what the busy one served before it said so), and asks the busy
one again, in its place, once it is free and the others have not finished the catch-up. When
every peer left is busy, the catch-up waits for the first to be free again (rather than end with
nothing, or ask again at once): never longer than that cap at a time, and a peer that answers
busy BUSY_ANSWERS_MAX times is left out of the catch-up (not demoted), so a catch-up that only
busy peers could serve ends within a few such waits, and the next one asks them again. A
catch-up without a target waits so only while no peer has answered it: once one has, it knew
whether there is more, as for the demoted. The memory is one deadline per demoted peer URL and
one per busy peer URL, each dropped once it passes.

Why checkpoint proofs and not the state_digest in a later block header: a header's digest is its
proposer's claim, which backups can check only if they executed that height already; with blocks
pipelined, a faulty primary can get a false claim certified.

Executed instead, as a live commit would be (sound, only slower):
- the blocks above the last checkpoint proof a peer can show, once it has nothing more to serve
  (at most about checkpoint_interval blocks below its head, plus what committed meanwhile): the
  normal end of a catch-up, logged at debug level;
- from the first block a peer kept no write set for (stored by a version that did not keep
  them) to the end of that run;
- a run that grew past RUN_TXS_MAX transactions, or RUN_BYTES_MAX bytes, without a proof (a
  peer that keeps none, or withholds them), which bounds the memory a run holds: by
  transactions alone, a peer padding the receipts of small blocks could have made the node hold
  up to HISTORY_BYTES_MAX an answer for thousands of answers.
These last two are logged as warnings, naming the peer.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import cast

import aiohttp
import msgpack

from contracts.receipt import Receipt
from contracts.state import next_digest
from ledger.genesis import Genesis
from node.history import CheckpointProof, FetchedBlock, verify_history
from node.peers import read_capped, retry_wait_s
from node.protocol import PROTOCOL_HEADER, PROTOCOL_VERSION
from node.slicing import consecutive_slices
from node.storage import BlockRecord, EventRow, Head, Storage
from node.sync import (
    FETCH_BLOCKS_MAX,
    FETCH_BYTES_MAX,
    CertifiedBlock,
    PeerBusy,
    PeerUnavailable,
    SyncError,
)

log = logging.getLogger(__name__)

# A run holding this many transactions without a proof is executed rather than held on to.
RUN_TXS_MAX = 50_000
# An honest /peer/history answer stops at FETCH_BYTES_MAX plus one block with its receipts and
# writes; a peer's answer is read up to this much, and refused beyond it.
HISTORY_BYTES_MAX = 8 * FETCH_BYTES_MAX
# A run holding this many bytes of fetched history without a proof is executed rather than held
# on to. An honest run between two proofs holds a checkpoint interval's blocks (32 of a few
# hundred KiB at full load), and RUN_TXS_MAX transactions about 25 MB (half a KiB each with
# their receipts and writes on the history of scripts/catchup.py): only outsized blocks reach
# this honestly.
RUN_BYTES_MAX = 2 * HISTORY_BYTES_MAX
# How long a peer that failed a catch-up is asked after the others (see the module docstring): a
# peer that fails every time then costs at most one answer timeout (the node's session allows
# 30 s) in this long, while one that failed by chance misses only turns others serve as well.
DEMOTION_S = 600.0
# Statuses by which a peer says "ask me again later" (its rate limit, or paused or busy), with a
# Retry-After: the peer is skipped until then, not demoted.
BUSY_STATUSES = frozenset({429, 503})
# The wait honoured for a busy answer without a Retry-After in whole seconds: our nodes send 1
# at least, and a proxy's 503 may send none (an HTTP date is taken as none, too).
BUSY_WAIT_S_DEFAULT = 1.0
# How many busy answers a peer gives in one catch-up before it is left out of it (not demoted):
# with each wait capped at node/peers.py's RETRY_AFTER_S_MAX, peers that stay busy end a
# catch-up within about this many of them; the next catch-up asks them again.
BUSY_ANSWERS_MAX = 3
# The longest a peer may send no bytes at all while answering (aiohttp's sock_read: it restarts
# at every read) before it is given up on as a peer that timed out. A peer sends nothing while it
# assembles an answer, and sends it all at once: an answer of FETCH_BYTES_MAX took 0.11-0.16 s
# to assemble (history_range and encode_history, on a 2-core machine; blocks of 100 and of 1000
# transactions alike), so a peer serving a few catch-ups at once under load is still well within
# this. The total of the session's timeout (30 s in the node) still bounds a whole answer.
SILENCE_S_MAX = 5.0
# Executed blocks are applied in slices of about this many transactions, one database
# transaction each, yielding to the event loop in between (so the node keeps answering).
EXECUTED_SLICE_TXS = 2_000


@dataclass(frozen=True, slots=True, kw_only=True)
class Transferred:
    """A certified block to apply on top of the stored head: with its `record` built from
    receipts and writes a quorum's checkpoint confirmed (stored as it is), or None to execute
    the block."""

    certified: CertifiedBlock
    record: BlockRecord | None


# Applies blocks in order on top of the stored head (one database transaction) and returns how
# many it applied: 0 when the node takes none now (halted, paused), which ends the catch-up.
Apply = Callable[[Sequence[Transferred]], int]
# The headers that prove to the peer at a URL which validator asks (node/peer_auth.py).
Proof = Callable[[str], Mapping[str, str]]


@dataclass(slots=True)
class TransferStats:
    """What catching up did, for /status and the catch-up benchmark."""

    first_fetch_ms: int | None = None  # wall clock when the first fetched block arrived
    blocks_fetched: int = 0
    blocks_checked: int = 0  # applied from fetched writes, the digest checked
    blocks_executed: int = 0  # applied by executing them
    runs_refused: int = 0  # runs dropped because a peer's history did not check out


class PeerOrder:
    """The order to ask peers in, learned across catch-ups: peers that failed one come after
    the others until their demotion ends, and peers that said they were busy are not asked
    before their Retry-After (see the module docstring). Holds at most one demotion deadline
    and one busy deadline a peer URL, each forgotten once it passes; `clock` is monotonic
    seconds, and `sleep` waits that many of them."""

    def __init__(
        self,
        *,
        demotion_s: float = DEMOTION_S,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._demotion_s = demotion_s
        self._clock = clock
        self._sleep = sleep
        self._demoted_until: dict[str, float] = {}
        self._busy_until: dict[str, float] = {}

    def __len__(self) -> int:
        """How many deadlines it holds, demotions and busy peers (some may be due to be
        forgotten)."""
        return len(self._demoted_until) + len(self._busy_until)

    def arrange(self, urls: Sequence[str]) -> tuple[list[str], list[str]]:
        """`urls` split into the ones to ask first, in the given order, and the demoted ones,
        the one demoted last at the end."""
        now = self._clock()
        self._demoted_until = {
            url: until for url, until in self._demoted_until.items() if until > now
        }
        self._busy_until = {url: until for url, until in self._busy_until.items() if until > now}
        first = [url for url in urls if url not in self._demoted_until]
        demoted = sorted(
            (url for url in urls if url in self._demoted_until), key=self._demoted_until.__getitem__
        )
        return first, demoted

    def demote(self, url: str) -> None:
        """Ask `url` after the others for the next `demotion_s` (counted from now)."""
        self._demoted_until[url] = self._clock() + self._demotion_s

    def restore(self, url: str) -> None:
        """Ask `url` in its place again (it served a catch-up to its end)."""
        self._demoted_until.pop(url, None)

    def hold(self, url: str, wait_s: float) -> None:
        """Ask `url` no sooner than `wait_s` from now (it said it was busy)."""
        self._busy_until[url] = self._clock() + wait_s

    def busy_s(self, url: str) -> float:
        """Seconds until `url` may be asked again after it said it was busy; 0 if it may now."""
        until = self._busy_until.get(url)
        if until is None:
            return 0.0
        left = until - self._clock()
        if left <= 0:
            del self._busy_until[url]
            return 0.0
        return left

    async def until_one_is_free(self, urls: Sequence[str]) -> None:
        """Wait until the first of `urls` to be free again is (at once if one is)."""
        wait_s = min(self.busy_s(url) for url in urls)
        if wait_s > 0:
            await self._sleep(wait_s)


class _Run:
    """Fetched blocks on top of a base (the stored head), each with the digest its writes and
    receipts chain to; None from the first block without a write set on."""

    def __init__(self, base: Head) -> None:
        self.base_height = base.height
        self.tip_height = base.height
        self.tip_hash = base.hash
        self._digest: bytes | None = base.state_digest
        self.items: list[tuple[FetchedBlock, bytes | None]] = []
        self.txs = 0
        self.bytes = 0  # of the fetched history held (FetchedBlock.size)
        self.confirmed = base.height  # the highest height a checkpoint proof confirmed
        self.confirmed_txs = 0  # transactions in the blocks up to there
        self.confirmed_bytes = 0  # and their bytes
        self.proofs: list[CheckpointProof] = []  # the proofs that did, to keep

    @property
    def unchecked(self) -> bool:
        """Whether the run holds a block no digest can be computed for (no write set)."""
        return self._digest is None and bool(self.items)

    def extend(self, blocks: Sequence[FetchedBlock]) -> None:
        for fetched in blocks:
            certified = fetched.certified
            digest = None
            if self._digest is not None and fetched.writes is not None:
                assert fetched.receipts is not None
                encoded = cast("Sequence[Receipt]", [_Encoded(r) for r in fetched.receipts])
                digest = next_digest(self._digest, certified.height, fetched.writes, encoded)
            self._digest = digest
            self.items.append((fetched, digest))
            self.tip_height, self.tip_hash = certified.height, certified.hash
            self.txs += len(certified.tx_ids)
            self.bytes += fetched.size

    def check(self, proofs: Sequence[CheckpointProof]) -> None:
        """Confirm the run up to the last of `proofs` it matches; raise SyncError if one
        contradicts it."""
        for proof in proofs:
            if not self.base_height < proof.seq <= self.tip_height:
                continue
            fetched, digest = self.items[proof.seq - self.base_height - 1]
            if proof.block_hash != fetched.certified.hash:
                raise SyncError(
                    f"the checkpoint proof for {proof.seq} is for another block than the "
                    "certified one"
                )
            if digest is None:
                continue  # no write set to check; those blocks get executed
            if digest != proof.state_digest:
                raise SyncError(
                    f"the writes and receipts served chain to state digest {digest.hex()[:16]} "
                    f"at height {proof.seq}, but a quorum signed {proof.state_digest.hex()[:16]}"
                )
            if proof.seq > self.confirmed:
                newly = self.items[self.confirmed - self.base_height : proof.seq - self.base_height]
                self.confirmed_txs += sum(len(fetched.certified.tx_ids) for fetched, _ in newly)
                self.confirmed_bytes += sum(fetched.size for fetched, _ in newly)
                self.confirmed = proof.seq
                self.proofs.append(proof)

    def take_checked(self) -> tuple[list[Transferred], list[CheckpointProof]]:
        """Remove and return the confirmed blocks, with their records, and the proofs."""
        count = self.confirmed - self.base_height
        taken, self.items = self.items[:count], self.items[count:]
        proofs, self.proofs = self.proofs, []
        self.base_height = self.confirmed
        self.txs -= self.confirmed_txs
        self.confirmed_txs = 0
        self.bytes -= self.confirmed_bytes
        self.confirmed_bytes = 0
        out: list[Transferred] = []
        for fetched, digest in taken:
            assert digest is not None
            out.append(Transferred(certified=fetched.certified, record=_record(fetched, digest)))
        return out, proofs

    def take_all_to_execute(self) -> list[Transferred]:
        """Remove and return every block, to execute (take the confirmed ones first)."""
        assert self.confirmed == self.base_height
        taken, self.items = self.items, []
        self.base_height = self.confirmed = self.tip_height
        self.txs = self.bytes = 0
        return [Transferred(certified=fetched.certified, record=None) for fetched, _ in taken]


class _Encoded:
    """A receipt by its encoding alone. next_digest hashes each receipt's `encoded()` and reads
    nothing else of it (contracts.state), so fetched receipts are chained as the bytes they
    came in, without building Receipt objects for them (a good part of a transaction's cost)."""

    __slots__ = ("_raw",)

    def __init__(self, raw: bytes) -> None:
        self._raw = raw

    def encoded(self) -> bytes:
        return self._raw


def _record(fetched: FetchedBlock, digest: bytes) -> BlockRecord:
    """The stored form of a block whose receipts and writes chained to a digest a quorum
    signed, read only for the events the store indexes.

    The digest hashes the receipts' encodings joined, so it vouches for the joined bytes, not
    for where a peer cut them: [r0 + r1, b""] chains like [r0, r1]. Msgpack values delimit
    themselves, so once each piece is exactly one value the cuts are the honest ones, and the
    pieces the very bytes honest validators produced.
    """
    certified = fetched.certified
    assert fetched.receipts is not None and fetched.writes is not None
    events: list[EventRow] = []
    for index, (tx_id, raw) in enumerate(zip(certified.tx_ids, fetched.receipts, strict=True)):
        try:
            receipt = msgpack.unpackb(raw)
        except (ValueError, msgpack.UnpackException) as exc:
            raise SyncError(
                f"receipt {index} of block {certified.height} is not one msgpack value: {exc}"
            ) from exc
        for event in receipt["events"]:
            data = msgpack.packb(event["data"])  # canonical as it came: keys already sorted
            events.append((tx_id, event["contract"], event["kind"], event["subject"], data))
    return BlockRecord(
        height=certified.height,
        hash=certified.hash,
        wire=certified.wire,
        certificate=certified.certificate.to_wire(),
        timestamp_ms=certified.header.timestamp_ms,
        state_digest=digest,
        receipts=list(zip(certified.tx_ids, fetched.receipts, strict=True)),
        events=events,
        writes=fetched.writes,
    )


class _Peer:
    """Catching up from one peer (see the module docstring)."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        genesis: Genesis,
        storage: Storage,
        url: str,
        *,
        apply: Apply,
        stats: TransferStats,
        timeout: aiohttp.ClientTimeout,
        proof: Proof | None = None,
    ) -> None:
        self._session = session
        self._proof = proof
        self._timeout = timeout
        self._genesis = genesis
        self._storage = storage
        self._url = url
        self._apply = apply
        self._stats = stats
        self.applied = 0
        self.refused = False  # the node took nothing (halted or paused)
        self.short = False  # its turn ended on an answer that was not full (see _full)

    async def run(self, to_height: int | None) -> None:
        run = _Run(self._storage.head())
        ahead: asyncio.Future[tuple[bytes, int]] | None = None  # the next answer, asked ahead
        try:
            while to_height is None or run.tip_height < to_height:
                raw, asked = await (ahead or self._ask_after(run, to_height))
                ahead = None
                head = self._storage.head()
                if head.height != run.base_height:
                    # The node committed blocks by itself while we waited: go on from there.
                    log.debug("head moved to %d during catch-up; fetching on from it", head.height)
                    run = _Run(head)
                    continue
                answer = verify_history(
                    self._genesis, raw, expect_height=run.tip_height + 1, prev_hash=run.tip_hash
                )
                if not answer.blocks:
                    break
                self._note_fetched(len(answer.blocks))
                run.extend(answer.blocks)
                full = _full(len(answer.blocks), answer.certified_bytes, asked)
                if full and (to_height is None or run.tip_height < to_height):
                    # The peer reads and sends the next answer while we check and apply this.
                    ahead = asyncio.ensure_future(self._ask_after(run, to_height))
                    await asyncio.sleep(0)
                await self._apply_run(run, answer.proofs)
                if self.refused:
                    return
                if not full:
                    # All it says it has. Asked again, a peer that feeds a block at a time
                    # could keep the node behind for good: the next peer is asked instead.
                    self.short = True
                    break
                head = self._storage.head()
                if head.height != run.base_height:
                    run = _Run(head)  # it moved on meanwhile: see _commit
                    _cancel(ahead)
                    ahead = None
                elif not run.items:
                    run = _Run(head)  # chain digests on from what is stored (maybe executed)
        except (SyncError, PeerUnavailable):
            await self._commit(*run.take_checked())  # what was confirmed before it went wrong
            raise
        finally:
            _cancel(ahead)
        await self._commit(*run.take_checked())
        if run.items and not self.refused:
            log.debug(
                "executing blocks %d..%d: %s has no checkpoint proof above %d",
                run.base_height + 1,
                run.tip_height,
                self._url,
                run.base_height,
            )
            await self._commit(run.take_all_to_execute(), [])

    async def _ask_after(self, run: _Run, to_height: int | None) -> tuple[bytes, int]:
        """The answer for the blocks above the run, and how many blocks a full one holds."""
        start = run.tip_height + 1
        upper = start + FETCH_BLOCKS_MAX - 1
        if to_height is not None:
            upper = min(upper, to_height)
        return await self._get(start, upper), upper - start + 1

    async def _apply_run(self, run: _Run, proofs: Sequence[CheckpointProof]) -> None:
        """Check the run against `proofs` and apply what they confirmed; execute the run if it
        cannot be confirmed."""
        run.check(proofs)
        await self._commit(*run.take_checked())
        if run.unchecked or run.txs > RUN_TXS_MAX or run.bytes > RUN_BYTES_MAX:
            self._warn_unchecked(run)
            await self._commit(*run.take_checked())
            await self._commit(run.take_all_to_execute(), [])

    async def _get(self, start: int, end: int) -> bytes:
        try:
            async with self._session.get(
                f"{self._url}/peer/history",
                params={"from": start, "to": end},
                # A peer of another protocol version answers 409, which fails the catch-up.
                headers={
                    PROTOCOL_HEADER: str(PROTOCOL_VERSION),
                    **({} if self._proof is None else self._proof(self._url)),
                },
                timeout=self._timeout,
            ) as response:
                raw = await read_capped(response, HISTORY_BYTES_MAX)
                if response.status in BUSY_STATUSES:
                    retry_after = response.headers.get("Retry-After")
                    raise PeerBusy(
                        f"/peer/history answered {response.status} with Retry-After "
                        f"{retry_after!r}: {raw[:200]!r}",
                        wait_s=busy_wait_s(retry_after),
                    )
                if response.status != 200:
                    raise PeerUnavailable(
                        f"/peer/history answered {response.status}: {raw[:200]!r}"
                    )
                return raw
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise PeerUnavailable(f"cannot fetch history: {exc or type(exc).__name__}") from exc

    def _note_fetched(self, count: int) -> None:
        if self._stats.first_fetch_ms is None:
            self._stats.first_fetch_ms = int(time.time() * 1000)
        self._stats.blocks_fetched += count

    def _warn_unchecked(self, run: _Run) -> None:
        if run.unchecked:
            reason = "kept no write set for some of them"
        else:
            reason = (
                f"has no checkpoint proof within {run.txs} transactions ({run.bytes} bytes "
                "of history)"
            )
        log.warning(
            "executing blocks %d..%d: %s %s",
            run.base_height + 1,
            run.tip_height,
            self._url,
            reason,
        )

    async def _commit(self, items: list[Transferred], proofs: Sequence[CheckpointProof]) -> None:
        """Apply `items` (checked ones at once, executed ones in slices), keeping the proofs
        that vouched for them. Stops early when the node takes nothing (`refused`), or when its
        head moved on by itself while we yielded (the rest is dropped; the caller fetches on
        from the head)."""
        if not items:
            return
        checked = items[0].record is not None
        parts = [items] if checked else consecutive_slices(items, _tx_count, EXECUTED_SLICE_TXS)
        for part in parts:
            if self._storage.head().hash != part[0].certified.header.prev_hash:
                return
            low, high = part[0].certified.height, part[-1].certified.height
            with self._storage.batch():
                count = self._apply(part)
                if count:
                    for proof in proofs:
                        if low <= proof.seq <= high:
                            self._storage.put_checkpoint_proof(proof.seq, proof.raw)
            if not count:
                self.refused = True
                return
            self.applied += count
            if checked:
                self._stats.blocks_checked += count
            else:
                self._stats.blocks_executed += count
            await asyncio.sleep(0)


def busy_wait_s(retry_after: str | None) -> float:
    """Seconds to leave a busy peer alone, from its Retry-After header: whole seconds, capped
    as node/peers.py caps a stream's (retry_wait_s); BUSY_WAIT_S_DEFAULT without one in whole
    seconds (a peer must not park itself out of reach, nor be asked again at once)."""
    if retry_after is None or not re.fullmatch(r"[0-9]{1,9}", retry_after.strip()):
        return BUSY_WAIT_S_DEFAULT
    wait_s = retry_wait_s(int(retry_after.strip()))
    assert wait_s is not None
    return wait_s


def _full(blocks: int, certified_bytes: int, asked: int) -> bool:
    """Whether an answer is as large as an honest peer's answer is unless the peer has no more:
    every block asked for, or cut for size. A peer stops at FETCH_BYTES_MAX, before the block
    that would pass it, so a cut answer holds at least half of it unless blocks come larger; of
    that, blocks and certificates (`certified_bytes`, the part a peer cannot pad) are about
    half (49 % on the history of scripts/catchup.py), so a quarter leaves a margin of two."""
    return blocks >= asked or certified_bytes >= FETCH_BYTES_MAX // 4


def _cancel(task: asyncio.Future[tuple[bytes, int]] | None) -> None:
    """Drop an answer asked for in advance (and its failure, if it failed already)."""
    if task is None:
        return
    if task.done():
        if not task.cancelled():
            task.exception()
    else:
        task.cancel()


async def catch_up(
    session: aiohttp.ClientSession,
    genesis: Genesis,
    storage: Storage,
    urls: Sequence[str],
    *,
    to_height: int | None,
    apply: Apply,
    stats: TransferStats,
    order: PeerOrder,
    proof: Proof | None = None,
    silence_s_max: float = SILENCE_S_MAX,
) -> int:
    """Fetch and apply blocks above the stored head up to `to_height` (None: as far as peers
    have); returns how many were applied. Asks the peers in turn, as `order` arranges `urls`
    (and tells it how each did), moving on when one fails, serves history that does not check
    out, has nothing at all above the head, or answers short of a full answer (all it has now:
    see _full); and when one is busy, asking it again after its Retry-After if the others did
    not finish the catch-up meanwhile. `proof`: the headers that prove to the peer at a URL
    which validator asks (a validator's reads are not under the client limit). A peer that
    sends nothing for `silence_s_max` while it answers has timed out, whatever the session's
    total timeout leaves."""
    if not silence_s_max > 0:  # aiohttp takes a sock_read of 0 for none at all
        raise ValueError(f"silence_s_max must be a positive number of seconds, got {silence_s_max}")
    total = session.timeout
    timeout = aiohttp.ClientTimeout(
        total=total.total,
        connect=total.connect,
        sock_connect=total.sock_connect,
        sock_read=silence_s_max,
        ceil_threshold=total.ceil_threshold,
    )
    with storage.large_cache():
        return await _catch_up(
            session, genesis, storage, urls, to_height, apply, stats, order, proof, timeout
        )


async def _catch_up(
    session: aiohttp.ClientSession,
    genesis: Genesis,
    storage: Storage,
    urls: Sequence[str],
    to_height: int | None,
    apply: Apply,
    stats: TransferStats,
    order: PeerOrder,
    proof: Proof | None,
    timeout: aiohttp.ClientTimeout,
) -> int:
    first, demoted = order.arrange(urls)
    if to_height is None and first:
        demoted = []  # without a target, the others tell whether there is more as well
    left = [*first, *demoted]  # the peers still to take a turn, in the order to ask them
    busy_answers: Counter[str] = Counter()
    answered = False  # whether a peer took its turn without failing or being busy
    applied = 0
    fell_short: list[str] = []  # peers whose turn ended short, without failing
    while left:
        url = next((url for url in left if not order.busy_s(url)), None)
        if url is None:  # every peer left is busy
            if to_height is None and answered:
                break  # one told whether there is more already
            await order.until_one_is_free(left)
            continue
        peer = _Peer(
            session, genesis, storage, url, apply=apply, stats=stats, proof=proof, timeout=timeout
        )
        turn = await _take_turn(peer, url, to_height, stats, storage, order)
        if peer.applied:
            for behind in fell_short:  # this peer had more than they served
                log.debug("peer %s served less than %s; asking it last for a while", behind, url)
                order.demote(behind)
            fell_short.clear()
        applied += peer.applied
        reached = to_height is not None and storage.head().height >= to_height
        if turn is _Turn.BUSY:
            busy_answers[url] += 1
            if busy_answers[url] >= BUSY_ANSWERS_MAX:
                left.remove(url)  # still busy: the next catch-up asks it again
        else:
            left.remove(url)
            answered = answered or turn is _Turn.ENDED
        if turn is _Turn.FAILED:
            order.demote(url)
        elif turn is _Turn.BUSY or peer.refused:
            pass  # says nothing of the peer's history, or the node took nothing
        elif peer.applied and not peer.short and (to_height is None or reached):
            order.restore(url)
            if to_height is None:
                return applied  # it served up to its head, which it said
        else:
            fell_short.append(url)
        if peer.refused or reached:
            break
    return applied


class _Turn(enum.Enum):
    """How a peer's turn in a catch-up ended."""

    ENDED = "ended"  # it served what it had (maybe nothing, or short: see _catch_up)
    FAILED = "failed"  # unavailable or lying: demoted
    BUSY = "busy"  # it said to ask again later: held until its Retry-After


async def _take_turn(
    peer: _Peer,
    url: str,
    to_height: int | None,
    stats: TransferStats,
    storage: Storage,
    order: PeerOrder,
) -> _Turn:
    """Catch up from one peer; a busy one is held in `order` until its Retry-After."""
    try:
        await peer.run(to_height)
    except PeerBusy as exc:
        log.debug(
            "peer %s is busy: %s; asking it again in %g s at the soonest", url, exc, exc.wait_s
        )
        order.hold(url, exc.wait_s)
        return _Turn.BUSY
    except PeerUnavailable as exc:
        log.debug("peer %s: %s", url, exc)
        return _Turn.FAILED
    except SyncError as exc:
        stats.runs_refused += 1
        log.warning(
            "peer %s served history that does not check out: %s; dropped what it served "
            "above height %d, asking another peer",
            url,
            exc,
            storage.head().height,
        )
        return _Turn.FAILED
    return _Turn.ENDED


async def follow(
    session: aiohttp.ClientSession,
    genesis: Genesis,
    storage: Storage,
    urls: Sequence[str],
    *,
    apply: Apply,
    stats: TransferStats,
    order: PeerOrder | None = None,
    interval_s: float = 0.1,
    silence_s_max: float = SILENCE_S_MAX,
) -> None:
    """Follow the chain forever (an observer): poll peers for blocks above the head, each poll
    a catch-up in the order `order` (by default one of its own) learns across them."""
    order = PeerOrder() if order is None else order
    while True:
        applied = await catch_up(
            session,
            genesis,
            storage,
            urls,
            to_height=None,
            apply=apply,
            stats=stats,
            order=order,
            silence_s_max=silence_s_max,
        )
        if not applied:
            await asyncio.sleep(interval_s)


def _tx_count(item: Transferred) -> int:
    return len(item.certified.tx_ids)
