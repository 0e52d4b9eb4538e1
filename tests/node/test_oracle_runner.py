"""The validator's oracle runner: which model it loads, when, and what it reports."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, cast

import pytest

from contracts.machine_state import READING
from contracts.oracle import MODEL_KEY, REPORTS_PER_TX_MAX
from contracts.receipt import Receipt
from contracts.schema import Int
from contracts.state import MemoryState
from ledger.block import Block
from ledger.crypto import KeyPair
from ledger.encoding import encode
from ledger.tx import Transaction
from node import oracle_runner, service
from node.errors import Duplicate, MempoolFull, Rejection
from node.oracle_runner import OracleRunner, model_path, to_reading
from node.storage import Storage
from oracle.errors import TelemetryError
from oracle.model import FaultModel, save_model, train
from oracle.telemetry import Reading, simulate_fleet
from tests.node.conftest import backup_node, make_setup

READINGS = [
    (
        "m1",
        {
            "seq": seq,
            "air_temp_dk": 2990 + seq,
            "process_temp_dk": 3090 + seq,
            "rpm": 1400 + 10 * seq,
            "torque_cnm": 4000 + 30 * seq,
            "tool_wear_min": 20 * seq,
        },
    )
    for seq in range(1, 9)
]


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, FaultModel]:
    model = train(simulate_fleet(machines=2, operations=600, seed=4), horizon=0, seed=1)
    path = tmp_path_factory.mktemp("model") / "fault.skops"
    return path, save_model(model, path), model


def _register(state: MemoryState, sha256_hex: str) -> None:
    record = {
        "hash": bytes.fromhex(sha256_hex),
        "name": "random_forest",
        "features": ["quality"],
        "threshold_bp": 5000,
        "horizon": 0,
        "registered_height": 1,
        "registered_ms": 0,
    }
    state.apply({MODEL_KEY: encode(record)})


def _runner(
    state: MemoryState, models: Path, submitted: list[Transaction], *, busy: bool = True
) -> OracleRunner:
    """A runner on `state`; `busy`: whether its node has transactions waiting."""
    nonces: dict[bytes, int] = {}

    def next_nonce(sender: bytes) -> int:
        nonces[sender] = nonces.get(sender, 0) + 1
        return nonces[sender]

    def submit(raw: bytes) -> object:
        submitted.append(Transaction.from_wire(raw))
        return None

    return OracleRunner(
        keys=KeyPair.generate(),
        chain_id="test",
        # The runner reads the registration through the StateReader calls Storage has.
        storage=cast(Storage, state),
        models_dir=models,
        next_nonce=next_nonce,
        submit=submit,
        busy=lambda: busy,
    )


async def _one_round(
    runner: OracleRunner,
    readings: list[tuple[str, dict[str, Any]]],
    done: Callable[[], bool],
) -> None:
    """Hand the runner a committed block's readings and wait (bounded) until `done`."""
    task = asyncio.create_task(runner.run())
    try:
        runner.readings_seen += len(readings)
        runner._pending.extend(readings)
        runner._wake.set()
        deadline = time.monotonic() + 20
        while not done():
            assert time.monotonic() < deadline, runner.status()
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def _taken(runner: OracleRunner) -> Callable[[], bool]:
    return lambda: not runner._pending and not runner._wake.is_set()


async def test_nothing_reported_before_a_model_is_registered(tmp_path: Path) -> None:
    submitted: list[Transaction] = []
    runner = _runner(MemoryState(), tmp_path, submitted)
    await _one_round(runner, READINGS, _taken(runner))
    await asyncio.sleep(0.05)  # nothing more happens
    assert submitted == []
    assert runner.status()["model"] is None
    assert runner.last_error is None


async def test_missing_artifact_is_an_error_then_loaded_once_it_is_there(
    tmp_path: Path, model_file: tuple[Path, str, FaultModel]
) -> None:
    path, sha256_hex, model = model_file
    state = MemoryState()
    _register(state, sha256_hex)
    submitted: list[Transaction] = []
    runner = _runner(state, tmp_path, submitted)

    await _one_round(runner, READINGS[:4], lambda: runner.last_error is not None)
    assert submitted == []
    assert runner.last_error is not None and "cannot load the registered model" in (
        runner.last_error
    )

    shutil.copy(path, model_path(tmp_path, sha256_hex))
    await _one_round(runner, READINGS[4:], lambda: runner.reports_submitted > 0)
    assert runner.last_error is None
    assert runner.status()["model"] == sha256_hex
    [tx] = submitted
    assert (tx.contract, tx.method) == ("oracle", "report")
    assert tx.args["model_hash"] == bytes.fromhex(sha256_hex)
    expected = model.predict_bp([to_reading(m, fields) for m, fields in READINGS[4:]])
    assert [r["probability_bp"] for r in tx.args["reports"]] == expected
    assert [r["seq"] for r in tx.args["reports"]] == [5, 6, 7, 8]


async def test_an_artifact_that_does_not_match_its_hash_is_refused(
    tmp_path: Path, model_file: tuple[Path, str, FaultModel]
) -> None:
    _, sha256_hex, _ = model_file
    state = MemoryState()
    _register(state, sha256_hex)
    model_path(tmp_path, sha256_hex).write_bytes(b"not the registered model")
    submitted: list[Transaction] = []
    runner = _runner(state, tmp_path, submitted)
    await _one_round(runner, READINGS, lambda: runner.last_error is not None)
    assert submitted == []
    assert runner.status()["model"] is None


def _ready_runner(
    models: Path,
    model_file: tuple[Path, str, FaultModel],
    submit: Callable[[bytes], object],
    *,
    busy: bool = True,
) -> OracleRunner:
    """A runner whose registered model is in `models`, submitting through `submit`."""
    path, sha256_hex, _ = model_file
    state = MemoryState()
    _register(state, sha256_hex)
    shutil.copy(path, model_path(models, sha256_hex))
    runner = _runner(state, models, [], busy=busy)
    runner._submit = submit
    return runner


@contextlib.asynccontextmanager
async def _running(
    runner: OracleRunner,
) -> AsyncIterator[Callable[[Callable[[], bool]], Awaitable[None]]]:
    """Run the runner; yields `until(done)`, which waits (bounded) until `done()` holds."""
    task = asyncio.create_task(runner.run())
    deadline = time.monotonic() + 20

    async def until(done: Callable[[], bool]) -> None:
        while not done():
            assert time.monotonic() < deadline, runner.status()
            await asyncio.sleep(0.01)

    try:
        yield until
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def _committed(runner: OracleRunner, *readings: tuple[str, dict[str, Any]]) -> None:
    """Hand the runner a committed block's readings."""
    runner._pending.extend(readings)
    runner._wake.set()


def _recorder(submitted: list[Transaction]) -> Callable[[bytes], object]:
    """A node's submit that takes every transaction, appending it to `submitted`."""

    def submit(raw: bytes) -> object:
        submitted.append(Transaction.from_wire(raw))
        return None

    return submit


def _seqs(submitted: list[Transaction]) -> list[list[int]]:
    return [[r["seq"] for r in tx.args["reports"]] for tx in submitted]


async def test_an_idle_node_reports_each_block_at_once(
    tmp_path: Path, model_file: tuple[Path, str, FaultModel]
) -> None:
    submitted: list[Transaction] = []
    runner = _ready_runner(tmp_path, model_file, _recorder(submitted), busy=False)
    runner.report_interval_s = 3600  # would outlast the test's deadline if it were waited for
    async with _running(runner) as until:
        _committed(runner, READINGS[0])
        await until(lambda: runner.reports_submitted == 1)
        _committed(runner, READINGS[1])
        await until(lambda: runner.reports_submitted == 2)
        _committed(runner, READINGS[2])
        await until(lambda: runner.reports_submitted == 3)
    assert _seqs(submitted) == [[1], [2], [3]]


async def test_readings_committed_within_the_interval_share_one_report(
    tmp_path: Path, model_file: tuple[Path, str, FaultModel]
) -> None:
    submitted: list[Transaction] = []
    reported_at: list[float] = []

    def submit(raw: bytes) -> object:
        reported_at.append(time.monotonic())
        submitted.append(Transaction.from_wire(raw))
        return None

    runner = _ready_runner(tmp_path, model_file, submit)
    runner.report_interval_s = 0.4
    async with _running(runner) as until:
        _committed(runner, READINGS[0])
        await until(lambda: runner.reports_submitted == 1)
        for reading in READINGS[1:4]:  # three blocks commit right after the first report
            _committed(runner, reading)
            for _ in range(3):
                await asyncio.sleep(0)  # the runner wakes and waits out the interval
        await until(lambda: runner.reports_submitted == 4)
    # The first block's reading is reported at once; the next ones wait for the interval.
    assert _seqs(submitted) == [[1], [2, 3, 4]]
    assert reported_at[1] - reported_at[0] >= 0.4 - 0.01


@pytest.mark.parametrize(
    ("refusal", "reported_again"),
    [
        (MempoolFull("mempool is full (8 transactions); retry later"), True),
        (Duplicate("nonce 1 of this sender is already pending in another tx"), False),
    ],
)
async def test_a_report_refused_as_busy_is_submitted_again_with_the_next_batch(
    tmp_path: Path,
    model_file: tuple[Path, str, FaultModel],
    refusal: Rejection,
    reported_again: bool,
) -> None:
    submitted: list[Transaction] = []
    refusals = [refusal]

    def submit(raw: bytes) -> object:
        if refusals:
            raise refusals.pop()
        submitted.append(Transaction.from_wire(raw))
        return None

    runner = _ready_runner(tmp_path, model_file, submit)
    runner.report_interval_s = 0.05
    async with _running(runner) as until:
        _committed(runner, *READINGS[:2])
        await until(lambda: runner.last_error is not None)
        _committed(runner, READINGS[2])  # a later block's reading
        await until(lambda: bool(submitted))
    assert runner.last_error == f"report refused: {refusal}"
    assert _seqs(submitted) == ([[1, 2, 3]] if reported_again else [[3]])
    assert runner.reports_submitted == (3 if reported_again else 1)


async def test_a_node_that_keeps_refusing_as_busy_is_asked_once_an_interval_even_when_idle(
    tmp_path: Path, model_file: tuple[Path, str, FaultModel]
) -> None:
    attempts: list[float] = []

    def submit(raw: bytes) -> object:  # a halted node: 503, with nothing else in its mempool
        attempts.append(time.monotonic())
        raise Rejection("node halted: its operator stopped it", status=503)

    runner = _ready_runner(tmp_path, model_file, submit, busy=False)
    runner.report_interval_s = 0.2
    async with _running(runner) as until:
        _committed(runner, *READINGS[:2])
        await until(lambda: len(attempts) >= 3)
    gaps = [later - earlier for earlier, later in itertools.pairwise(attempts[:3])]
    assert min(gaps) >= 0.2 - 0.01, gaps
    assert runner.status()["pending"] == 2  # still held for the next attempt
    assert runner.reports_submitted == 0


@pytest.mark.parametrize("tx_bytes_max", [4 * 1024, 16 * 1024])
def test_reports_are_cut_into_transactions_the_chain_takes(
    tmp_path: Path, tx_bytes_max: int
) -> None:
    # 500 readings of machines with 32-character names: one transaction of them would be 30 KiB,
    # and every piece must fit the chain's transaction size and the contract's report count.
    submitted: list[Transaction] = []
    runner = _runner(MemoryState(), tmp_path, submitted)
    runner.tx_bytes_max = tx_bytes_max
    name = "m" * 31
    readings = [to_reading(f"{name}{i % 10}", {**READINGS[0][1], "seq": i}) for i in range(500)]
    values = [i * 19 % 10_001 for i in range(500)]
    assert runner._report(bytes(32), readings, values) is None
    assert runner.reports_submitted == 500 and runner.last_error is None
    assert all(len(tx.wire) <= tx_bytes_max for tx in submitted)
    assert all(len(tx.args["reports"]) <= REPORTS_PER_TX_MAX for tx in submitted)
    sent = [
        (r["machine"], r["seq"], r["probability_bp"])
        for tx in submitted
        for r in tx.args["reports"]
    ]
    assert sent == [(r.machine_id, r.seq, v) for r, v in zip(readings, values, strict=True)]


def test_every_reading_the_chain_accepts_is_one_the_model_takes() -> None:
    # A reading the oracle could not take stopped every validator's oracle on the same block.
    largest = {name: spec.max for name, spec in READING.fields.items() if isinstance(spec, Int)}
    reading = to_reading("p" * 63 + "-", {**largest, "quality": "L"})
    assert (reading.seq, reading.wear_min) == (largest["seq"], largest["tool_wear_min"])
    assert to_reading("press-1", {**dict(READINGS[0][1]), "seq": 0}).machine_id == "press-1"


async def test_a_reading_the_model_cannot_take_is_skipped_and_the_others_reported(
    tmp_path: Path,
    model_file: tuple[Path, str, FaultModel],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    submitted: list[Transaction] = []

    def submit(raw: bytes) -> object:
        submitted.append(Transaction.from_wire(raw))
        return None

    def refusing(machine: str, fields: dict[str, Any]) -> Reading:
        if fields["seq"] == 2:
            raise TelemetryError("not a reading this model was made for")
        return to_reading(machine, fields)

    monkeypatch.setattr(oracle_runner, "to_reading", refusing)
    runner = _ready_runner(tmp_path, model_file, submit, busy=False)
    async with _running(runner) as until:
        _committed(runner, *READINGS[:3])
        await until(lambda: runner.reports_submitted == 2)
        _committed(runner, READINGS[3])
        await until(lambda: runner.reports_submitted == 3)
    assert _seqs(submitted) == [[1, 3], [4]]
    assert runner.status()["readings_skipped"] == 1
    assert "not a reading this model was made for" in (runner.last_error or "")


async def test_an_oracle_that_fails_is_started_again_and_the_node_runs_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup = make_setup()
    node = backup_node(
        setup, tmp_path / "chain.sqlite", oracle_keys=setup.identities["admin"], models_dir=tmp_path
    )
    assert node.oracle is not None
    runs = [0]

    async def failing() -> None:
        runs[0] += 1
        raise RuntimeError("a bug in the oracle")

    monkeypatch.setattr(node.oracle, "run", failing)
    monkeypatch.setattr(service, "ORACLE_RESTART_S", 0.01)
    await node.start()
    try:
        deadline = time.monotonic() + 10
        while runs[0] < 3:
            assert time.monotonic() < deadline, "the oracle was not started again"
            await asyncio.sleep(0.01)
        assert node.halted is None
        assert node.oracle.restarts >= 2
        assert "a bug in the oracle" in (node.status()["oracle"]["last_error"] or "")
    finally:
        await node.stop()


def _block_of(submitted: list[Transaction], failing: dict[int, str]) -> tuple[Block, list[Receipt]]:
    """A committed block of the submitted transactions; `failing`: seq of a transaction's first
    report -> the error its receipt carries (the others succeed)."""
    block = Block.build(
        chain_id="test",
        height=1,
        prev_hash=bytes(32),
        state_height=0,
        state_digest=bytes(32),
        proposer=0,
        view=0,
        timestamp_ms=0,
        txs=submitted,
    )
    receipts = []
    for index, tx in enumerate(submitted):
        error = failing.get(tx.args["reports"][0]["seq"])
        receipts.append(
            Receipt(
                tx_hash=tx.hash, height=1, index=index, ok=True, error=None, result=None, events=()
            )
            if error is None
            else Receipt.failure(tx_hash=tx.hash, height=1, index=index, error=error)
        )
    return block, receipts


async def test_a_report_transaction_that_failed_goes_again_in_halves_until_one_report_is_left(
    tmp_path: Path, model_file: tuple[Path, str, FaultModel]
) -> None:
    submitted: list[Transaction] = []
    runner = _ready_runner(tmp_path, model_file, _recorder(submitted), busy=False)
    too_many = "a transaction may emit at most 1024 events"
    async with _running(runner) as until:
        _committed(runner, *READINGS[:4])
        await until(lambda: len(submitted) == 1)
        runner.on_block(*_block_of(submitted, {1: too_many}))
        await until(lambda: len(submitted) == 3)
        assert _seqs(submitted[1:]) == [[1, 2], [3, 4]]
        runner.on_block(*_block_of(submitted[1:], {3: too_many}))
        await until(lambda: len(submitted) == 5)
        assert _seqs(submitted[3:]) == [[3], [4]]
        runner.on_block(*_block_of(submitted[3:], {3: too_many}))
        await until(lambda: runner.reports_failed == 1)
    assert runner.last_error == f"report on 'm1' reading 3 failed: {too_many}"
    assert runner.status()["reports_failed"] == 1
    assert len(submitted) == 5 and not runner._sent and not runner._split
    # The values sent again are the ones first computed.
    first = {r["seq"]: r["probability_bp"] for r in submitted[0].args["reports"]}
    sent = [report for tx in submitted for report in tx.args["reports"]]
    assert all(first[r["seq"]] == r["probability_bp"] for r in sent)


async def test_halves_of_a_replaced_model_are_not_sent_again(
    tmp_path: Path, model_file: tuple[Path, str, FaultModel]
) -> None:
    submitted: list[Transaction] = []
    runner = _ready_runner(tmp_path, model_file, _recorder(submitted), busy=False)
    other = train(simulate_fleet(machines=2, operations=300, seed=5), horizon=0, seed=2)
    other_hex = save_model(other, tmp_path / "other.skops")
    shutil.copy(tmp_path / "other.skops", model_path(tmp_path, other_hex))
    async with _running(runner) as until:
        _committed(runner, *READINGS[:4])
        await until(lambda: len(submitted) == 1)
        # The admin registers another model; the reports of the first fail on that.
        _register(cast(MemoryState, runner.storage), other_hex)
        runner.on_block(*_block_of(submitted, {1: "reports name model ..., registered is ..."}))
        await until(lambda: runner.status()["model"] == other_hex and not runner._split)
    assert len(submitted) == 1 and runner.reports_failed == 0
