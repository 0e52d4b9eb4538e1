"""Review: every committed reading gets a final prediction, across model swaps, restarts and
catch-up.

Four real oracle runners, one per validator oracle identity, report through a hand-driven
chain: blocks are built from the transactions they submit and executed by the real contracts
runtime into a real SQLite Storage (node/executor.py), and every live runner is handed each
executed block, as a node's `_execute` does. Blocks a validator catches up on are stored
without it seeing them, as node/catchup.py stores them.

A node runs one oracle; four in one process load their models in worker threads at once, and
CPython 3.11's parser is not thread-safe (numpy reads an array header with `ast.literal_eval`:
"SystemError: AST constructor recursion depth mismatch"), so the loads here take turns.
"""

from __future__ import annotations

import asyncio
import shutil
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from contracts.oracle import prediction_key, registered_model
from contracts.receipt import Receipt
from contracts.runtime import Runtime
from contracts.state import read_map
from ledger.block import Block
from ledger.certificate import CommitCertificate, commit_payload
from ledger.crypto import Domain, KeyPair
from ledger.genesis import Genesis, Identity, Params, Role, Validator
from ledger.hashing import sha256
from ledger.tx import Transaction
from node.executor import execute_and_store
from node.oracle_runner import OracleRunner, model_path, to_reading
from node.storage import Storage
from oracle.model import FaultModel, artifact, save_model, train
from oracle.telemetry import simulate_fleet

CHAIN_ID = "review-oracle"
ORACLES = [f"oracle-node{i}" for i in range(4)]
SETTLE_TIMEOUT_S = 20.0


def _keys(name: str) -> KeyPair:
    return KeyPair.from_seed(sha256(b"review-oracle/" + name.encode()))


def _genesis(quorum: int) -> Genesis:
    roles = {"admin": Role.ADMIN, "machine": Role.MACHINE, **dict.fromkeys(ORACLES, Role.ORACLE)}
    return Genesis(
        chain_id=CHAIN_ID,
        genesis_time_ms=1_700_000_000_000,
        validators=tuple(
            Validator(
                name=f"node{i}", public_key=_keys(f"node{i}").public_key, host="127.0.0.1", port=9
            )
            for i in range(4)
        ),
        identities=tuple(
            Identity(name=name, public_key=_keys(name).public_key, roles=(role,))
            for name, role in roles.items()
        ),
        params=Params(oracle_quorum=quorum),
    )


def _reading(seq: int) -> dict[str, Any]:
    return {
        "seq": seq,
        "air_temp_dk": 2985 + seq,
        "process_temp_dk": 3090 + seq,
        "rpm": 1400 + 10 * seq,
        "torque_cnm": 4200 + 40 * seq,
        "tool_wear_min": 30 * seq,
    }


class Cluster:
    """Storage and runtime of the chain, the oracle runners of the four validators, and the
    report transactions they submitted and that are not yet in a block."""

    def __init__(self, path: Path, models: Path, quorum: int) -> None:
        self.genesis = _genesis(quorum)
        self.runtime = Runtime.default()
        self.storage = Storage(path)
        self.storage.initialise(
            genesis_hash=self.genesis.hash,
            writes=self.runtime.genesis_writes(self.genesis),
            digest=self.runtime.genesis_digest(self.genesis),
            time_ms=self.genesis.genesis_time_ms,
        )
        self.models = models
        self.mempool: list[Transaction] = []
        self.runners: dict[str, OracleRunner] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.live: set[str] = set()  # runners handed each executed block
        self._nonces: dict[bytes, int] = {}

    def next_nonce(self, sender: bytes) -> int:
        nonce = self._nonces.get(sender, self.runtime.account_nonce(self.storage, sender))
        self._nonces[sender] = nonce + 1
        return nonce

    def _submit(self, raw: bytes) -> object:
        self.mempool.append(Transaction.from_wire(raw))
        return None

    def start(self, name: str) -> OracleRunner:
        """Start (or start again, with nothing remembered) validator `name`'s oracle."""
        runner = OracleRunner(
            keys=_keys(name),
            chain_id=CHAIN_ID,
            storage=self.storage,
            models_dir=self.models,
            next_nonce=self.next_nonce,
            submit=self._submit,
            busy=lambda: False,
        )
        self.runners[name] = runner
        self.tasks[name] = asyncio.create_task(runner.run())
        self.live.add(name)
        return runner

    async def stop(self, name: str) -> None:
        """The validator goes down: its oracle task ends, and all it held is lost."""
        self.live.discard(name)
        task = self.tasks.pop(name)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    def commit(self, txs: list[Transaction], *, seen_by: set[str] | None = None) -> list[Receipt]:
        """Execute and store the next block; hand it to the live runners in `seen_by`."""
        head = self.storage.head()
        block = Block.build(
            chain_id=CHAIN_ID,
            height=head.height + 1,
            prev_hash=head.hash,
            state_height=head.height,
            state_digest=head.state_digest,
            proposer=0,
            view=0,
            timestamp_ms=self.genesis.genesis_time_ms + 1000 * (head.height + 1),
            txs=txs,
        )
        payload = commit_payload(view=0, seq=block.height, block_hash=block.hash)
        certificate = CommitCertificate(
            height=block.height,
            view=0,
            block_hash=block.hash,
            commits=tuple(
                (i, _keys(f"node{i}").sign(Domain.COMMIT, CHAIN_ID, payload)) for i in range(3)
            ),
        )
        result = execute_and_store(self.runtime, self.storage, self.genesis, block, certificate)
        for name in sorted(self.live if seen_by is None else seen_by & self.live):
            self.runners[name].on_block(block, result.receipts)
        return list(result.receipts)

    def tx(self, who: str, contract: str, method: str, **args: Any) -> Transaction:
        keys = _keys(who)
        return Transaction.create(
            keys,
            chain_id=CHAIN_ID,
            nonce=self.next_nonce(keys.public_key),
            contract=contract,
            method=method,
            args=args,
        )

    def call(self, who: str, contract: str, method: str, **args: Any) -> Receipt:
        [receipt] = self.commit([self.tx(who, contract, method, **args)])
        assert receipt.ok, receipt.error
        return receipt

    def register(self, model_file: tuple[Path, str]) -> None:
        path, sha256_hex = model_file
        shutil.copy(path, model_path(self.models, sha256_hex))
        self.call(
            "admin",
            "oracle",
            "register_model",
            model_hash=bytes.fromhex(sha256_hex),
            name="random_forest",
            features=["quality"],
            threshold_bp=9000,
            horizon=0,
        )

    def report_readings(self, *seqs: int, seen_by: set[str] | None = None) -> None:
        tx = self.tx("machine", "machines", "report", machine="m1", readings=map_list(seqs))
        [receipt] = self.commit([tx], seen_by=seen_by)
        assert receipt.ok, receipt.error

    def prediction(self, seq: int) -> dict[str, Any] | None:
        return read_map(self.storage, prediction_key("m1", seq))

    def final(self, *seqs: int) -> Callable[[], bool]:
        def done() -> bool:
            return all((self.prediction(seq) or {}).get("final") is True for seq in seqs)

        return done

    async def wait(self, done: Callable[[], bool]) -> None:
        """Until `done()` (bounded), committing nothing."""
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        while not done():
            assert time.monotonic() < deadline, self._describe()
            await asyncio.sleep(0.01)

    async def until(self, done: Callable[[], bool], *, timeout_s: float = SETTLE_TIMEOUT_S) -> None:
        """Put what the runners submit into blocks, one block per round, until `done()`
        (bounded by `timeout_s`)."""
        deadline = time.monotonic() + timeout_s
        while not done():
            for name, task in self.tasks.items():
                assert not task.done(), f"{name}'s oracle ended: {task}"
            assert time.monotonic() < deadline, self._describe()
            if self.mempool:
                txs, self.mempool = self.mempool, []
                self.commit(txs)
            await asyncio.sleep(0.01)

    def _describe(self) -> str:
        predictions = {seq: self.prediction(seq) for seq in range(1, 6)}
        runners = {name: runner.status() for name, runner in self.runners.items()}
        return f"not settled: predictions {predictions}, runners {runners}"

    async def close(self) -> None:
        for name in list(self.tasks):
            await self.stop(name)
        self.storage.close()


def map_list(seqs: tuple[int, ...]) -> list[dict[str, Any]]:
    return [_reading(seq) for seq in seqs]


def _model(path: Path, seed: int) -> tuple[Path, str, FaultModel]:
    model = train(simulate_fleet(machines=2, operations=600, seed=seed), horizon=0, seed=seed)
    return path, save_model(model, path), model


@pytest.fixture(autouse=True)
def loads_take_turns(monkeypatch: pytest.MonkeyPatch) -> None:
    """The real `load_model`, one call at a time in this process (see the module docstring)."""
    lock = threading.Lock()
    load_model = artifact.load_model

    def one_at_a_time(path: Path, expected_sha256: str) -> FaultModel:
        with lock:
            return load_model(path, expected_sha256)

    monkeypatch.setattr(artifact, "load_model", one_at_a_time)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Path, str, FaultModel]]:
    """Two different registered models, A and B."""
    folder = tmp_path_factory.mktemp("review-models")
    return [_model(folder / "a.skops", 4), _model(folder / "b.skops", 5)]


async def _cluster(tmp_path: Path, quorum: int) -> Cluster:
    models = tmp_path / "models"
    models.mkdir()
    cluster = Cluster(tmp_path / "chain.sqlite", models, quorum)
    cluster.call(
        "admin", "machines", "register", machine="m1", type="cell", capabilities=["laser-cut"]
    )
    return cluster


@pytest.fixture
async def quorum3(tmp_path: Path) -> AsyncIterator[Cluster]:
    cluster = await _cluster(tmp_path, 3)
    try:
        yield cluster
    finally:
        await cluster.close()


@pytest.fixture
async def quorum4(tmp_path: Path) -> AsyncIterator[Cluster]:
    cluster = await _cluster(tmp_path, 4)
    try:
        yield cluster
    finally:
        await cluster.close()


def _expected_bp(model: FaultModel, seq: int) -> int:
    return model.predict_bp([to_reading("m1", _reading(seq))])[0]


async def test_a_reading_reported_across_a_model_swap_is_still_decided(
    quorum3: Cluster, models: list[tuple[Path, str, FaultModel]]
) -> None:
    cluster = quorum3
    (a_path, a_hex, _), (b_path, b_hex, b_model) = models
    cluster.register((a_path, a_hex))
    for name in ORACLES:
        cluster.start(name)
    cluster.report_readings(1)
    await cluster.wait(lambda: len(cluster.mempool) == 4)  # each validator's report with A
    a_reports = {tx.sender: tx for tx in cluster.mempool}
    cluster.mempool.clear()
    first, second, third, fourth = (a_reports[_keys(name).public_key] for name in ORACLES)
    # Two reports with A are recorded (short of the quorum of 3), then the admin registers B,
    # and the other two reports, naming A, fail on that.
    shutil.copy(b_path, model_path(cluster.models, b_hex))
    swap = cluster.tx(
        "admin",
        "oracle",
        "register_model",
        model_hash=bytes.fromhex(b_hex),
        name="random_forest",
        features=["quality"],
        threshold_bp=9000,
        horizon=0,
    )
    receipts = cluster.commit([first, second, swap])
    assert all(r.ok for r in receipts), [r.error for r in receipts]
    receipts = cluster.commit([third, fourth])
    assert not any(r.ok for r in receipts)
    assert registered_model(cluster.storage)["hash"] == bytes.fromhex(b_hex)  # type: ignore[index]

    await cluster.until(cluster.final(1))
    prediction = cluster.prediction(1)
    assert prediction is not None
    assert bytes(prediction["model"]) == bytes.fromhex(b_hex)
    assert prediction["value_bp"] == _expected_bp(b_model, 1)


async def test_a_restarted_validator_reports_the_readings_it_had_not_reported(
    quorum4: Cluster, models: list[tuple[Path, str, FaultModel]]
) -> None:
    # oracle_quorum = n (allowed: 2f+1 to n): every validator's report is needed.
    cluster = quorum4
    a_path, a_hex, a_model = models[0]
    cluster.register((a_path, a_hex))
    for name in ORACLES:
        cluster.start(name)
    cluster.report_readings(1)
    await cluster.until(cluster.final(1))
    # node3 goes down; reading 2 is committed meanwhile (the others report it); node3 comes
    # back with nothing remembered, and the chain goes on with reading 3.
    await cluster.stop(ORACLES[3])
    cluster.report_readings(2)
    await cluster.until(
        lambda: len((cluster.prediction(2) or {}).get("reports", {})) == 3 and not cluster.mempool
    )
    restarted = cluster.start(ORACLES[3])
    cluster.report_readings(3)

    await cluster.until(cluster.final(2, 3))
    assert [(cluster.prediction(s) or {}).get("value_bp") for s in (1, 2, 3)] == [
        _expected_bp(a_model, s) for s in (1, 2, 3)
    ]
    # Nothing is reported twice: reading 1, decided before the restart, is not reported again.
    assert restarted.reports_failed == 0
    assert (cluster.prediction(1) or {}).get("late") == []


async def test_a_validator_that_caught_up_reports_the_readings_of_the_blocks_it_fetched(
    quorum4: Cluster, models: list[tuple[Path, str, FaultModel]]
) -> None:
    cluster = quorum4
    a_path, a_hex, a_model = models[0]
    cluster.register((a_path, a_hex))
    for name in ORACLES:
        cluster.start(name)
    behind = cluster.runners[ORACLES[3]]
    cluster.report_readings(1)
    await cluster.until(cluster.final(1))
    # node3 falls behind: it stores the blocks of readings 2 and 3 from its peers (catch-up),
    # without executing them itself, then executes the block of reading 4 live.
    others = set(ORACLES[:3])
    cluster.report_readings(2, seen_by=others)
    cluster.report_readings(3, seen_by=others)
    cluster.report_readings(4)

    await cluster.until(cluster.final(2, 3, 4))
    assert [(cluster.prediction(s) or {}).get("value_bp") for s in (1, 2, 3, 4)] == [
        _expected_bp(a_model, s) for s in (1, 2, 3, 4)
    ]
    assert behind.reports_failed == 0


async def test_one_validator_reporting_on_a_reading_from_before_any_model_draws_no_others(
    quorum3: Cluster, models: list[tuple[Path, str, FaultModel]]
) -> None:
    # What the oracles owe is read from the chain; a reading committed before any model was
    # registered is still not theirs to report, whatever one (byzantine) validator reports on it.
    cluster = quorum3
    a_path, a_hex, _ = models[0]
    cluster.report_readings(1)
    cluster.register((a_path, a_hex))
    byzantine = cluster.tx(
        ORACLES[0],
        "oracle",
        "report",
        model_hash=bytes.fromhex(a_hex),
        reports=[{"machine": "m1", "seq": 1, "probability_bp": 10_000}],
    )
    assert cluster.commit([byzantine])[0].ok
    for name in ORACLES[1:]:
        cluster.start(name)
    cluster.report_readings(2)
    await cluster.until(lambda: cluster.final(2)() and not cluster.mempool)
    assert (cluster.prediction(1) or {}).get("reports") == {ORACLES[0]: 10_000}
