"""A validator's oracle across its restart, while a report it sent before the crash still waits
in a peer's mempool.

Real nodes (node/service.py) on real databases: the validator's runner takes its nonces from
its node's mempool and submits through its node's admission, and blocks are executed by each
node's live path (`Node._execute`: storage, mempool, oracle). The validator forwarded its
report to a peer, not to the primary, then crashed; it starts again with an empty mempool, and
by the chain's account it owes that reading still, so it reports it again. What happens next
depends on the nonce the second report gets:

- the same nonce (nothing of its sender waits in the restarted node's mempool): the two cannot
  both commit, and the same readings make the very same transaction (ed25519 signs
  deterministically); other readings make another one, which loses its nonce to the first;
- the next nonce (the peer resent the first report to the restarted node before its oracle
  looked at what it owes, as a stalled sender's transactions are resent): both commit, and the
  second fails on the reading the first recorded.

Either way the readings recorded once are no failure, and the others still get their report.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from contracts.oracle import prediction_key
from contracts.receipt import Receipt
from contracts.state import read_map
from ledger.block import Block
from ledger.certificate import CommitCertificate
from ledger.crypto import KeyPair
from ledger.genesis import Genesis, Identity, Params, Role, Validator
from ledger.hashing import sha256
from ledger.tx import Transaction
from node.errors import Duplicate, Rejection
from node.executor import execute_and_store
from node.oracle_runner import OracleRunner, model_path
from node.service import Node
from node.storage import Storage
from oracle.model import save_model, train
from oracle.telemetry import simulate_fleet
from tests.node.conftest import BODY_BYTES_MAX, Setup, backup_node, certify, next_block

CHAIN_ID = "oracle-restart"
ORACLE = "oracle-node1"  # the oracle identity of validator 1, the one that restarts
MACHINE = "m1"
SETTLE_TIMEOUT_S = 20.0


def _keys(name: str) -> KeyPair:
    return KeyPair.from_seed(sha256(b"oracle-restart/" + name.encode()))


def _setup() -> Setup:
    """Four validators; an admin, a machine and validator 1's oracle identity. The oracle
    quorum is 3 (2f+1): validator 1's report alone decides nothing."""
    validator_keys = [_keys(f"node{i}") for i in range(4)]
    roles = {"admin": Role.ADMIN, "machine": Role.MACHINE, ORACLE: Role.ORACLE}
    identities = {name: _keys(name) for name in roles}
    genesis = Genesis(
        chain_id=CHAIN_ID,
        genesis_time_ms=1_700_000_000_000,
        validators=tuple(
            # Port 9 (discard) on loopback: the nodes' own forwards go nowhere; the test
            # carries transactions between them.
            Validator(name=f"node{i}", public_key=k.public_key, host="127.0.0.1", port=9)
            for i, k in enumerate(validator_keys)
        ),
        identities=tuple(
            Identity(name=name, public_key=identities[name].public_key, roles=(role,))
            for name, role in roles.items()
        ),
        params=Params(body_bytes_max=BODY_BYTES_MAX),
    )
    return Setup(genesis=genesis, validator_keys=validator_keys, identities=identities)


def _reading(seq: int) -> dict[str, Any]:
    return {
        "seq": seq,
        "air_temp_dk": 2985 + seq,
        "process_temp_dk": 3090 + seq,
        "rpm": 1400 + 10 * seq,
        "torque_cnm": 4200 + 40 * seq,
        "tool_wear_min": 30 * seq,
    }


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    model = train(simulate_fleet(machines=2, operations=600, seed=4), horizon=0, seed=1)
    path = tmp_path_factory.mktemp("restart-model") / "fault.skops"
    return path, save_model(model, path)


@dataclass
class Chain:
    """Validator 1 (its oracle running or not) and validator 2, a peer whose mempool the
    blocks are cut from (standing in for the primary's once it has what the peer holds)."""

    setup: Setup
    path: Path  # validator 1's database
    models: Path
    peer: Node
    validator: Node
    oracle_task: asyncio.Task[None] | None = None
    down: bool = False  # validator 1 crashed and has not started again

    @property
    def oracle_key(self) -> bytes:
        return self.setup.identities[ORACLE].public_key

    @property
    def runner(self) -> OracleRunner:
        assert self.validator.oracle is not None
        return self.validator.oracle

    def start_validator(self) -> None:
        """Validator 1 starts (again) on its database: an empty mempool, a new oracle."""
        assert self.down
        self.validator = backup_node(
            self.setup, self.path, oracle_keys=self.setup.identities[ORACLE], models_dir=self.models
        )
        self.down = False

    def start_oracle(self) -> None:
        self.oracle_task = asyncio.create_task(self.runner.run())

    async def crash(self) -> None:
        """Validator 1 goes down: its oracle and its mempool are gone."""
        await self._stop_oracle()
        await self.validator.stop()
        self.down = True

    async def _stop_oracle(self) -> None:
        task, self.oracle_task = self.oracle_task, None
        if task is not None:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    async def close(self) -> None:
        if not self.down:
            await self.crash()
        await self.peer.stop()

    def block(self, txs: list[Transaction]) -> tuple[Block, CommitCertificate]:
        block = next_block(self.setup, self.peer.storage, txs)
        return block, certify(self.setup, block)

    def commit(self, txs: list[Transaction]) -> list[Receipt | None]:
        """A block of `txs`, executed live by both nodes; its receipts."""
        block, certificate = self.block(txs)
        self.peer._execute(block, certificate)
        self.validator._execute(block, certificate)
        return self.peer.storage.block_receipts(block.height, block)

    def client_tx(self, who: str, contract: str, method: str, **args: Any) -> Transaction:
        keys = self.setup.identities[who]
        return Transaction.create(
            keys,
            chain_id=CHAIN_ID,
            nonce=self.peer.runtime.account_nonce(self.peer.storage, keys.public_key),
            contract=contract,
            method=method,
            args=args,
        )

    def readings_tx(self, *seqs: int) -> Transaction:
        readings = [_reading(seq) for seq in seqs]
        return self.client_tx("machine", "machines", "report", machine=MACHINE, readings=readings)

    def reports_pending(self) -> list[Transaction]:
        """Validator 1's report transactions waiting in its own mempool, in nonce order."""
        return self.validator.mempool.ready_run(self.oracle_key, 64)

    def relay(self) -> None:
        """What validator 1's oracle submitted reaches the peer; the peer's pending
        transactions are committed."""
        for tx in self.reports_pending():
            if tx.hash not in self.peer.mempool:
                self.peer.submit(tx.wire, from_client=False)
        batch = self.peer.mempool.cut(64)
        if batch:
            self.commit(batch)

    def prediction(self, seq: int) -> dict[str, Any] | None:
        return read_map(self.peer.storage, prediction_key(MACHINE, seq))

    def reported(self, seq: int) -> bool:
        """Whether validator 1's report on reading `seq` is recorded."""
        record = self.prediction(seq) or {}
        return self.oracle_key in [bytes(k) for k in record.get("reporter_keys", [])]

    def settled(self) -> bool:
        """Validator 1's oracle has nothing on the way and nothing to send again."""
        runner = self.runner
        return not (runner._sent or runner._split or runner._recheck or self.reports_pending())


async def _until(done: Callable[[], bool], chain: Chain, *, relay: bool = False) -> None:
    """Wait (bounded) until `done()`, relaying and committing what the oracle submits if
    `relay`."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while not done():
        assert time.monotonic() < deadline, chain.runner.status()
        if relay:
            chain.relay()
        await asyncio.sleep(0.01)


@pytest.fixture
async def chain(tmp_path: Path, model_file: tuple[Path, str]) -> AsyncIterator[Chain]:
    setup = _setup()
    models = tmp_path / "models"
    models.mkdir()
    path, sha256_hex = model_file
    shutil.copy(path, model_path(models, sha256_hex))
    peer = Node(
        name="node2",
        genesis=setup.genesis,
        keys=setup.validator_keys[2],
        storage=Storage(tmp_path / "node2.sqlite"),
    )
    validator = backup_node(
        setup,
        tmp_path / "node1.sqlite",
        oracle_keys=setup.identities[ORACLE],
        models_dir=models,
    )
    chain = Chain(
        setup=setup, path=tmp_path / "node1.sqlite", models=models, peer=peer, validator=validator
    )
    registered = chain.commit(
        [
            chain.client_tx(
                "admin",
                "machines",
                "register",
                machine=MACHINE,
                type="cell",
                capabilities=["laser-cut"],
            )
        ]
    ) + chain.commit(
        [
            chain.client_tx(
                "admin",
                "oracle",
                "register_model",
                model_hash=bytes.fromhex(sha256_hex),
                name="random_forest",
                features=["quality"],
                threshold_bp=9000,
                horizon=0,
            )
        ]
    )
    assert all(r is not None and r.ok for r in registered), registered
    try:
        yield chain
    finally:
        await chain.close()


async def _reported_then_crashed(chain: Chain) -> Transaction:
    """Validator 1's oracle reports reading 1; the report reaches the peer (not the primary),
    and validator 1 crashes before it commits. Returns that report."""
    chain.start_oracle()
    assert chain.commit([chain.readings_tx(1)])[0].ok  # type: ignore[union-attr]
    await _until(lambda: chain.runner.reports_submitted == 1, chain)
    [sent] = chain.reports_pending()
    chain.peer.submit(sent.wire, from_client=False)  # validator 1's forward reached the peer
    await chain.crash()
    return sent


def _restart_behind(chain: Chain) -> None:
    """Reading 2 commits while validator 1 is down (the primary lacks its report); validator 1
    starts again and stores that block by catch-up, which its oracle does not see."""
    block, certificate = chain.block([chain.readings_tx(2)])
    chain.peer._execute(block, certificate)
    chain.start_validator()
    node = chain.validator
    execute_and_store(node.runtime, node.storage, node.genesis, block, certificate)


def _seqs(tx: Transaction) -> list[int]:
    return [int(r["seq"]) for r in tx.args["reports"]]


async def test_the_same_readings_reported_again_make_the_same_transaction(
    chain: Chain,
) -> None:
    sent = await _reported_then_crashed(chain)
    chain.start_validator()
    chain.start_oracle()
    await _until(lambda: chain.runner.reports_submitted == 1, chain)
    [again] = chain.reports_pending()
    # Same reading, model, key and nonce: the very same bytes, which the peer already holds.
    assert again.wire == sent.wire
    with pytest.raises(Rejection, match="already known"):
        chain.peer.submit(again.wire, from_client=False)
    await _until(lambda: chain.reported(1) and chain.settled(), chain, relay=True)
    status = chain.runner.status()
    assert (status["reports_failed"], status["reports_duplicate"]) == (0, 0)


async def test_a_report_made_again_on_the_next_nonce_counts_as_a_duplicate_not_a_failure(
    chain: Chain,
) -> None:
    sent = await _reported_then_crashed(chain)
    _restart_behind(chain)
    # The peer resends the first report to the restarted validator (its sender stalled)
    # before the oracle there has looked at what it owes.
    chain.validator.submit(sent.wire, from_client=False)
    chain.start_oracle()
    await _until(lambda: chain.runner.reports_submitted == 2, chain)
    [_, again] = chain.reports_pending()
    assert (again.nonce, _seqs(again)) == (sent.nonce + 1, [1, 2])
    chain.peer.submit(again.wire, from_client=False)

    first, second = chain.commit(chain.peer.mempool.cut(64))
    assert first is not None and first.ok
    assert second is not None and not second.ok
    assert f"{ORACLE} already reported on {MACHINE} reading 1" in (second.error or "")
    await _until(lambda: chain.reported(2) and chain.settled(), chain, relay=True)

    status = chain.runner.status()
    # Reading 1 carries this validator's report once: the second one was no failure.
    assert status["reports_failed"] == 0, status
    assert status["reports_duplicate"] == 1, status
    assert list((chain.prediction(1) or {})["reports"]) == [ORACLE]


async def test_a_report_that_lost_its_nonce_to_the_one_sent_before_the_restart_is_made_again(
    chain: Chain,
) -> None:
    sent = await _reported_then_crashed(chain)
    _restart_behind(chain)
    chain.start_oracle()
    await _until(lambda: chain.runner.reports_submitted == 2, chain)
    [again] = chain.reports_pending()
    assert (again.nonce, _seqs(again)) == (sent.nonce, [1, 2])
    # The peer holds the first report on that nonce: the two cannot both be included.
    with pytest.raises(Duplicate, match="already pending in another tx"):
        chain.peer.submit(again.wire, from_client=False)

    # The peer resends the first report to the primary, and it commits: the restarted
    # validator's report is then stale everywhere, and no block will ever carry it.
    [receipt] = chain.commit(chain.peer.mempool.cut(64))
    assert receipt is not None and receipt.ok and receipt.tx_hash == sent.hash
    assert chain.reports_pending() == []
    # Reading 2, which only the stale report carried, still gets this validator's report.
    await _until(lambda: chain.reported(2) and chain.settled(), chain, relay=True)

    status = chain.runner.status()
    assert status["reports_failed"] == 0, status
    assert status["reports_duplicate"] == 1, status
    assert list((chain.prediction(1) or {})["reports"]) == [ORACLE]


async def test_a_report_committed_in_a_block_stored_by_catch_up_is_settled_by_its_receipt(
    chain: Chain,
) -> None:
    chain.start_oracle()
    assert chain.commit([chain.readings_tx(1)])[0].ok  # type: ignore[union-attr]
    await _until(lambda: chain.runner.reports_submitted == 1, chain)
    [sent] = chain.reports_pending()
    # The block with the report is stored by catch-up: the oracle is not handed it.
    block, certificate = chain.block([sent])
    chain.peer._execute(block, certificate)
    node = chain.validator
    execute_and_store(node.runtime, node.storage, node.genesis, block, certificate)
    node.mempool.remove_committed(block.txs)
    assert chain.commit([chain.readings_tx(2)])[0].ok  # type: ignore[union-attr]
    await _until(lambda: chain.reported(2) and chain.settled(), chain, relay=True)

    status = chain.runner.status()
    assert (status["reports_failed"], status["reports_duplicate"]) == (0, 0), status
    assert list((chain.prediction(1) or {})["reports"]) == [ORACLE]
