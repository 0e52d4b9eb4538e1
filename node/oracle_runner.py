"""The oracle beside consensus: evaluate the registered fault model on committed readings and
submit this validator's signed reports.

Committed blocks hand their accepted `machines.report` readings to the runner (cheap, in the
event loop); a background task batches everything that arrived (while other transactions wait
at the node, and after the node refused a report as busy, at most one batch every
REPORT_INTERVAL_S: under load blocks commit every few milliseconds, and a report per block would
cost every validator a signed transaction and an inference call per block; an idle node reports
at once), loads the registered model when its hash changes (from the node's models directory,
refused unless its sha256 matches the one registered on-chain), runs inference in a worker
thread so consensus never waits for it, and submits one `oracle.report` transaction per batch,
signed with the validator's oracle key, through the node's own admission path. Nothing learned
or random is computed inside consensus: the chain only sees the signed numbers, and anyone can
recompute them with `millchain oracle verify`.

What it still owes is read from the chain, not only remembered: a prediction needs a quorum of
reports made with the registered model, so a validator that started again (its batch was lost),
caught up (catch-up stores blocks without handing them here) or saw the model replaced (reports
with the old one no longer count, and those still in flight fail) looks, at its start, at its
first block, after a gap in heights and after loading a model, for the newest readings of each
machine that are undecided and carry no report of its own with the registered model (see
`_owed`). Without that, one validator down for a moment, or one model swap, left readings
without a final prediction for good.

The chain cannot tell it about a report still on its way, though: one sent just before a crash
may wait in a peer's mempool, while the restarted node's is empty, so the reading is owed by
the chain's account and reported again. The same readings reported again on the same nonce
make the very same transaction (ed25519 signs deterministically), which the pools take once.
Other readings on that nonce make another transaction, and only one of the two can commit; the
other goes stale in every pool, so a report transaction whose nonce the chain has used without
it is given up and its reports rechecked (see `_drop_superseded`). On a later nonce (the peer
resent the first report to this node before the oracle looked) both commit and the second
fails on the reading the first recorded. A report the chain already holds from this validator,
with the same model, is therefore no failure: it is counted in `reports_duplicate`, not
`reports_failed`, and the transaction's other reports go again (see `_failed`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Any

from contracts.accounts import next_nonce as account_nonce
from contracts.machine_state import MACHINE_PREFIX, read_reading, recent_readings
from contracts.oracle import REPORTS_PER_TX_MAX, prediction_key, registered_model
from contracts.receipt import Receipt
from contracts.state import read_map
from ledger.block import Block
from ledger.crypto import KeyPair
from ledger.encoding import encode
from ledger.tx import NONCE_MAX, TX_BYTES_MAX_DEFAULT, Transaction
from node.errors import Rejection
from node.slicing import consecutive_slices
from node.storage import Storage
from oracle.errors import TelemetryError

if TYPE_CHECKING:
    from oracle.model.fault_model import FaultModel
    from oracle.telemetry.reading import Reading

log = logging.getLogger(__name__)

REPORT_INTERVAL_S = 0.5
# Readings held for reporting while the node refuses reports as busy (about 100 s of the
# demo's machines); the oldest are dropped beyond.
PENDING_MAX = 10_000
# The msgpack header of the reports list grows from 1 byte (empty) to at most 3 (>= 16 items).
LIST_HEADER_GROWTH = 2
# Report transactions remembered until their receipt commits (see `on_block`); beyond, the
# oldest are forgotten (a transaction a view change lost never commits).
SENT_MAX = 4096
# How far back the runner looks for readings it still owes a report (see `_owed`): each
# machine's newest readings, this many.
OWED_READINGS_PER_MACHINE = 1000


def readings_of(block: Block, receipts: Sequence[Receipt]) -> list[tuple[str, dict[str, Any]]]:
    """(machine, reading) for every reading a committed block accepted."""
    found: list[tuple[str, dict[str, Any]]] = []
    for tx, receipt in zip(block.txs, receipts, strict=True):
        if receipt.ok and tx.contract == "machines" and tx.method == "report":
            found.extend((str(tx.args["machine"]), dict(r)) for r in tx.args["readings"])
    return found


def to_reading(machine: str, fields: dict[str, Any]) -> Reading:
    """An on-chain reading as the fault model sees it (torque from centi- to deci-Nm)."""
    from oracle.telemetry.reading import Quality, Reading  # noqa: PLC0415 (heavy import)

    return Reading(
        machine_id=machine,
        seq=int(fields["seq"]),
        quality=Quality(fields.get("quality", "M")),
        air_temp_dk=int(fields["air_temp_dk"]),
        process_temp_dk=int(fields["process_temp_dk"]),
        speed_rpm=int(fields["rpm"]),
        torque_dnm=int(fields["torque_cnm"]) // 10,
        wear_min=int(fields["tool_wear_min"]),
    )


def model_path(models_dir: Path, sha256_hex: str) -> Path:
    return models_dir / f"{sha256_hex}.skops"


@dataclass(frozen=True, slots=True, kw_only=True)
class SentReports:
    """A report transaction this runner submitted, until its receipt commits or its nonce is
    used by another transaction."""

    nonce: int
    model_hash: bytes
    reports: list[dict[str, Any]]


def _unique(readings: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    """`readings` without repeats of a (machine, seq): a second report would fail its
    transaction."""
    seen: set[tuple[str, int]] = set()
    kept: list[tuple[str, dict[str, Any]]] = []
    for machine, fields in readings:
        key = (machine, int(fields["seq"]))
        if key not in seen:
            seen.add(key)
            kept.append((machine, fields))
    return kept


class OracleRunner:
    def __init__(
        self,
        *,
        keys: KeyPair,
        chain_id: str,
        storage: Storage,
        models_dir: Path,
        next_nonce: Callable[[bytes], int],
        submit: Callable[[bytes], object],
        busy: Callable[[], bool],
        report_interval_s: float = REPORT_INTERVAL_S,
        tx_bytes_max: int = TX_BYTES_MAX_DEFAULT,
    ) -> None:
        self.keys = keys
        self.chain_id = chain_id
        self.storage = storage
        self.models_dir = models_dir
        self._next_nonce = next_nonce
        self._submit = submit
        self._busy = busy
        self.report_interval_s = report_interval_s
        self.tx_bytes_max = tx_bytes_max
        self._reported_at = -float("inf")  # time.monotonic() of the last report
        self._retrying = False  # the last report was refused as busy: wait before the next
        self._pending: list[tuple[str, dict[str, Any]]] = []
        self._wake = asyncio.Event()
        self._model: FaultModel | None = None
        self._model_hash: bytes | None = None
        # This runner's report transactions not yet committed, by hash.
        self._sent: OrderedDict[bytes, SentReports] = OrderedDict()
        # Reports whose transaction failed as a whole, to submit again: in halves, or whole
        # less the ones the chain held already (see `_failed`).
        self._split: list[tuple[bytes, list[dict[str, Any]]]] = []
        # (machine, seq) of reports made with a model since replaced: reported again with the
        # registered one if the chain still needs them (see `_owed`).
        self._recheck: list[tuple[str, int]] = []
        # (machine, seq) of the newest readings this runner reported on (PENDING_MAX): after
        # a model swap, those still undecided are reported again with the new model.
        self._taken: OrderedDict[tuple[str, int], None] = OrderedDict()
        self._live_height: int | None = None  # of the last block handed to `on_block`
        self._sweep_due = False  # look for readings this runner never reported (see `_owed`)
        self._wake.set()  # at start: load the registered model, and look for what is owed
        self.reports_submitted = 0
        self.reports_failed = 0
        # Reports made again on a reading this validator's report (with the same model) was
        # already recorded for: no failures (see the module docstring).
        self.reports_duplicate = 0
        self.readings_seen = 0
        self.readings_skipped = 0
        self.restarts = 0  # times the node started it again after it failed
        self.last_error: str | None = None

    def on_block(self, block: Block, receipts: Sequence[Receipt]) -> None:
        if self._live_height is None or block.height > self._live_height + 1:
            # The first block since the start, or blocks stored by catch-up came before it:
            # their readings never reached this runner.
            self._sweep_due = True
            self._wake.set()
        self._live_height = block.height
        readings = readings_of(block, receipts)
        self.readings_seen += len(readings)
        self._pending.extend(readings)
        if readings or any(
            tx.contract == "oracle" and tx.method == "register_model" for tx in block.txs
        ):
            self._wake.set()  # a new model is loaded before the first readings need it
        if self._sent:
            for tx, receipt in zip(block.txs, receipts, strict=True):
                sent = self._sent.pop(tx.hash, None)
                if sent is not None and not receipt.ok:
                    self._failed(sent.model_hash, sent.reports, str(receipt.error))
            self._drop_superseded()

    def _drop_superseded(self) -> None:
        """Settle the report transactions whose nonce the chain has used without handing them
        to `on_block`. One committed in a block stored by catch-up has its receipt. Any other
        lost its nonce to another of this validator's transactions (one sent before a
        restart), and no block will take it: its reports the chain holds are duplicates, and
        the chain decides whether the others are still owed (see `_owed`)."""
        next_nonce = account_nonce(self.storage, self.keys.public_key)
        stale = [tx_hash for tx_hash, sent in self._sent.items() if sent.nonce < next_nonce]
        for tx_hash in stale:
            sent = self._sent.pop(tx_hash)
            receipt = self.storage.receipt(tx_hash)
            if receipt is not None:
                if not receipt.ok:
                    self._failed(sent.model_hash, sent.reports, str(receipt.error))
                continue
            if self._replaced(sent.model_hash):
                left = sent.reports
            else:
                left = self._without_recorded(sent.model_hash, sent.reports)
            self._recheck += [(str(r["machine"]), int(r["seq"])) for r in left]
            self._wake.set()

    def _failed(self, model_hash: bytes, reports: list[dict[str, Any]], error: str) -> None:
        """A report transaction failed as a whole: one report the contract refuses, or one
        flagging machines whose moved orders pass a transaction's events, fails the others
        with it. Reports this validator has on the chain already are dropped as duplicates and
        the others go again whole; else they go again in halves, so each but the one at fault
        is recorded; a report failing alone is dropped, counted and logged."""
        if self._replaced(model_hash):
            # It failed for naming a model since replaced: the chain decides which of its
            # reports are still owed, with the registered model (see `_owed`).
            self._recheck += [(str(r["machine"]), int(r["seq"])) for r in reports]
            self._wake.set()
            return
        left = self._without_recorded(model_hash, reports)
        if len(left) < len(reports):
            if left:
                self._split.append((model_hash, left))
                self._wake.set()
            return
        if len(reports) > 1:
            middle = len(reports) // 2
            self._split += [(model_hash, reports[:middle]), (model_hash, reports[middle:])]
            self._wake.set()
            return
        self.reports_failed += 1
        [report] = reports
        self.last_error = (
            f"report on {report['machine']!a} reading {report['seq']} failed: {error}"
        )[:500]
        log.warning(self.last_error)

    def _replaced(self, model_hash: bytes) -> bool:
        registered = registered_model(self.storage)
        return registered is not None and bytes(registered["hash"]) != model_hash

    def _without_recorded(
        self, model_hash: bytes, reports: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """`reports` less those on readings whose record holds this validator's report with
        `model_hash` already, which are counted (`reports_duplicate`) and logged."""
        left = [
            r for r in reports if not self._recorded(str(r["machine"]), int(r["seq"]), model_hash)
        ]
        duplicates = len(reports) - len(left)
        if duplicates:
            self.reports_duplicate += duplicates
            log.info(
                "%d of %d reports were already recorded for this validator (sent before a "
                "restart, say): not sent again",
                duplicates,
                len(reports),
            )
        return left

    def _recorded(self, machine: str, seq: int, model_hash: bytes) -> bool:
        """Whether the chain holds this validator's report with `model_hash` on reading `seq`
        of `machine`."""
        record = read_map(self.storage, prediction_key(machine, seq))
        if record is None or bytes(record["model"]) != model_hash:
            return False
        return self.keys.public_key in [bytes(k) for k in record.get("reporter_keys", [])]

    async def run(self) -> None:
        # Started again after a failure (node/service.py), the batch in hand was lost: what
        # is owed is read from the chain again, as at a start.
        self._sweep_due = True
        self._wake.set()
        while True:
            await self._wake.wait()
            if self._retrying or self._busy():  # readings committed meanwhile join this batch
                wait_s = self._reported_at + self.report_interval_s - time.monotonic()
                if wait_s > 0:
                    await asyncio.sleep(wait_s)
            self._retrying = False
            self._wake.clear()
            # The registration is read here, in the event loop, between blocks: the storage
            # belongs to this loop, and a worker thread could see a block half applied.
            record = registered_model(self.storage)
            model = self._model
            if record is None:
                model = None
            elif bytes(record["hash"]) != self._model_hash:
                model = await asyncio.to_thread(self._load, bytes(record["hash"]))
            # Taken after the load: readings committed during it are in this batch, and in the
            # chain `_owed` reads next, with no await between (or they would be reported twice).
            batch, self._pending = self._pending, []
            if record is None or model is None or self._model_hash is None:
                continue  # no model registered (yet)
            if self._split:
                self._report_split(self._model_hash)
            batch = _unique([*self._owed(self._model_hash, record), *batch])
            if not batch:
                continue  # only a model to load, or reports to split
            batch, readings = self._readable(batch)
            if not readings:
                continue
            self._note_taken(readings)
            values = await asyncio.to_thread(model.predict_bp, readings)
            retry_from = self._report(self._model_hash, readings, values)
            self._reported_at = time.monotonic()
            if retry_from is not None:
                self._requeue(batch[retry_from:])

    def _readable(
        self, batch: list[tuple[str, dict[str, Any]]]
    ) -> tuple[list[tuple[str, dict[str, Any]]], list[Reading]]:
        """The committed readings of `batch` the model takes, with them as it takes them. One
        it cannot (outside the bounds it was made for) gets no report from this validator,
        and is counted and logged; it must not stop the reports on the others."""
        kept: list[tuple[str, dict[str, Any]]] = []
        readings: list[Reading] = []
        for machine, fields in batch:
            try:
                readings.append(to_reading(machine, fields))
            except (TelemetryError, KeyError, ValueError) as exc:
                self.readings_skipped += 1
                self.last_error = f"reading {fields.get('seq')!r} of {machine!a} skipped: {exc}"
                log.warning(self.last_error)
                continue
            kept.append((machine, fields))
        return kept, readings

    def _note_taken(self, readings: list[Reading]) -> None:
        for reading in readings:
            self._taken[(reading.machine_id, reading.seq)] = None
        while len(self._taken) > PENDING_MAX:
            self._taken.popitem(last=False)

    def _requeue(self, readings: list[tuple[str, dict[str, Any]]]) -> None:
        """Report `readings` (refused because the node was busy) with the next batch, keeping at
        most PENDING_MAX readings: the oldest go first when the node stays busy that long."""
        self._pending[:0] = readings
        self._retrying = True
        excess = len(self._pending) - PENDING_MAX
        if excess > 0:
            del self._pending[:excess]
            self.last_error = f"node busy: dropped the {excess} oldest readings unreported"
            log.warning(self.last_error)
        self._wake.set()

    def _load(self, model_hash: bytes) -> FaultModel | None:
        """The registered model `model_hash` from the models directory (hash-checked first);
        run in a worker thread: it reads and unpacks the artifact."""
        from oracle.errors import OracleError  # noqa: PLC0415
        from oracle.model.artifact import load_model  # noqa: PLC0415

        path = model_path(self.models_dir, model_hash.hex())
        try:
            model = load_model(path, model_hash.hex())
        except (OracleError, OSError) as exc:
            self.last_error = f"cannot load the registered model {model_hash.hex()[:16]}: {exc}"
            log.error(self.last_error)
            return None
        self._model, self._model_hash = model, model_hash
        self._sweep_due = True  # readings of the old model, or of none, may be owed
        self.last_error = None
        log.info("loaded registered model %s from %s", model_hash.hex()[:16], path)
        return model

    def _report(self, model_hash: bytes, readings: list[Reading], values: list[int]) -> int | None:
        """Submit the reports in transactions the chain takes (see `_parts`). Returns the index
        of the first reading to report again because the node refused its transaction as busy,
        or None (see `_submit_part`)."""
        reports = [
            {"machine": r.machine_id, "seq": r.seq, "probability_bp": int(v)}
            for r, v in zip(readings, values, strict=True)
        ]
        start = 0
        for part in self._parts(model_hash, reports):
            if self._submit_part(model_hash, part):
                return start
            start += len(part)
        return None

    def _report_split(self, model_hash: bytes) -> None:
        """Submit the halves of failed report transactions, those of the registered model;
        ones the node refuses as busy wait for the next round."""
        split, self._split = self._split, []
        for index, (made_with, part) in enumerate(split):
            if made_with != model_hash:
                # The model was replaced: they would fail on that alone. The chain decides
                # whether they are still owed, with the registered model (see `_owed`).
                self._recheck += [(str(r["machine"]), int(r["seq"])) for r in part]
                continue
            if self._submit_part(made_with, part):
                self._split = split[index:]
                self._retrying = True
                self._wake.set()
                return

    def _submit_part(self, model_hash: bytes, part: list[dict[str, Any]]) -> bool:
        """Sign and submit one report transaction; True if the node refused it as busy (a full
        mempool or admission queue: 503), to submit again later. Any other refusal is final:
        logged, and those reports are dropped."""
        tx = Transaction.create(
            self.keys,
            chain_id=self.chain_id,
            nonce=self._next_nonce(self.keys.public_key),
            contract="oracle",
            method="report",
            args={"model_hash": model_hash, "reports": part},
        )
        try:
            self._submit(tx.to_wire())
        except Rejection as exc:
            message = f"report refused: {exc}"
            if message != self.last_error:  # a busy node refuses every retry alike
                log.warning(message)
            self.last_error = message
            return exc.status == HTTPStatus.SERVICE_UNAVAILABLE
        self.reports_submitted += len(part)
        self._sent[tx.hash] = SentReports(nonce=tx.nonce, model_hash=model_hash, reports=part)
        if len(self._sent) > SENT_MAX:
            self._sent.popitem(last=False)
        return False

    def _owed(self, model_hash: bytes, model: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        """Committed readings that still need this validator's report with `model_hash` (the
        registered `model`) and have none on the way: those of `_recheck`, and after a start,
        catch-up or new model, of each machine's newest (OWED_READINGS_PER_MACHINE), those
        committed with or after the model's registration or reported on by this runner before.
        (Readings from before any model was registered stay unreported, as they always were,
        whatever other validators report on them.) Read in the event loop between blocks, like
        the registration."""
        # (machine, seq, the reading as committed when already read)
        wanted: list[tuple[str, int, dict[str, Any] | None]] = [
            (machine, seq, None) for machine, seq in self._recheck
        ]
        self._recheck = []
        if self._sweep_due:
            self._sweep_due = False
            since = int(model.get("registered_height", 0))
            machines = [
                key[len(MACHINE_PREFIX) :].decode() for key, _ in self.storage.scan(MACHINE_PREFIX)
            ]
            for machine in machines:
                for fields in recent_readings(self.storage, machine, OWED_READINGS_PER_MACHINE):
                    seq = int(fields["seq"])
                    if int(fields.get("height", -1)) >= since or (machine, seq) in self._taken:
                        wanted.append((machine, seq, fields))
        if not wanted:
            return []
        on_the_way = {
            (str(r["machine"]), int(r["seq"]))
            for made_with, part in [
                *((sent.model_hash, sent.reports) for sent in self._sent.values()),
                *self._split,
            ]
            if made_with == model_hash
            for r in part
        }
        owed: list[tuple[str, dict[str, Any]]] = []
        for machine, seq, known in wanted:
            if (machine, seq) in on_the_way or not self._unreported(machine, seq, model_hash):
                continue
            reading = known or read_reading(self.storage, machine, seq)
            if reading is not None:  # else not committed: the contract would refuse the report
                owed.append((machine, {**reading, "seq": seq}))
        return owed[-PENDING_MAX:]

    def _unreported(self, machine: str, seq: int, model_hash: bytes) -> bool:
        """Whether reading `seq` of `machine` is undecided and without this validator's
        report with `model_hash`."""
        record = read_map(self.storage, prediction_key(machine, seq))
        if record is None:
            return True
        if record["final"]:
            return False
        ours = self.keys.public_key in [bytes(k) for k in record.get("reporter_keys", [])]
        return not (bytes(record["model"]) == model_hash and ours)

    def _parts(
        self, model_hash: bytes, reports: list[dict[str, Any]]
    ) -> list[list[dict[str, Any]]]:
        """`reports` cut into transactions of at most REPORTS_PER_TX_MAX reports and
        `tx_bytes_max` bytes (a long machine name makes a report of about 60 bytes)."""
        empty = Transaction.create(
            self.keys,
            chain_id=self.chain_id,
            nonce=NONCE_MAX,  # the longest encoding a nonce can take
            contract="oracle",
            method="report",
            args={"model_hash": model_hash, "reports": []},
        )
        budget = self.tx_bytes_max - len(empty.wire) - LIST_HEADER_GROWTH
        return consecutive_slices(
            reports, lambda report: len(encode(report)), budget, count_max=REPORTS_PER_TX_MAX
        )

    def status(self) -> dict[str, Any]:
        return {
            "model": None if self._model_hash is None else self._model_hash.hex(),
            "readings_seen": self.readings_seen,
            "readings_skipped": self.readings_skipped,
            "restarts": self.restarts,
            "reports_submitted": self.reports_submitted,
            "reports_failed": self.reports_failed,
            "reports_duplicate": self.reports_duplicate,
            "pending": len(self._pending),
            "last_error": self.last_error,
        }
