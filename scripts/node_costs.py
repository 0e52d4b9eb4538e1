"""Where a validator's CPU goes per transaction, stage by stage: one backup, in process, one core.

    python scripts/node_costs.py [--txs-per-block 480] [--blocks 200] [--warm-up 20]
                                 [--json node-costs.json]

A bench run says what a transaction costs a node in all (`millchain bench`: node CPU per
committed transaction) but not where, and on a shared 2-core machine its figures move by a few
per cent from run to run. This script drives one backup of a 4-validator chain (a Node that is
not started: no HTTP, no peers) through the work a saturated cluster gives it, block after
block, and times each stage with the process's CPU clock:

- admission: the block's transactions arrive as peers' forwards (fresh bytes) and are admitted
  as the node's admission queue admits them, 64 to a database transaction: decoding, the checks,
  the signature, the mempool;
- consensus: the primary's pre-prepare (the whole block), two prepares and two commits, signed
  by the other validators, through `Node.receive_peer_batch` as a peer's batch would bring
  them, and the checkpoints every `checkpoint_interval` blocks; without the execution below;
- execution: executing the committed block and storing it, receipts, events and state (what
  the commit sets off), with the database commit that writes it out.

Signing what the other validators send and pre-signing the transactions are not timed. It
prints microseconds per transaction of each stage, and one ed25519 verification for scale;
the same figures go to --json. Nothing leaves the process and no port is opened.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from cli.bench_load import receipt
from cli.bench_runs import machine, machine_line, positive_int
from consensus.codec import encode_message
from consensus.events import BlockExecuted
from consensus.messages import Message, sign_checkpoint, sign_commit, sign_pre_prepare, sign_prepare
from ledger.block import Block, block_bytes
from ledger.certificate import CommitCertificate
from ledger.crypto import KeyPair
from ledger.genesis import Genesis, Identity, Params, Role, Validator
from ledger.tx import Transaction
from node.service import ADMIT_SLICE, Node
from node.storage import Storage

CHAIN_ID = "node-costs"
SENDERS = 32  # as many as the bench's
STAGES = ("admission", "consensus", "execution")
BACKUP = 1  # the node measured; validator 0 is the primary of view 0


class BlockTooLarge(ValueError):
    """Asked for blocks larger than the chain's genesis lets a block be."""


def _keys(tag: bytes, index: int) -> KeyPair:
    return KeyPair.from_seed(tag + index.to_bytes(4, "big") + bytes(32 - len(tag) - 4))


class _Chain:
    """The backup under measurement and the other validators' keys to speak to it with."""

    def __init__(self, data_dir: Path) -> None:
        self.validators = [_keys(b"validator", i) for i in range(4)]
        self.senders = [_keys(b"sender", i) for i in range(SENDERS)]
        self.genesis = Genesis(
            chain_id=CHAIN_ID,
            genesis_time_ms=1_700_000_000_000,
            validators=tuple(
                # Port 9 (discard): the node is never started, nothing is sent anywhere.
                Validator(name=f"node{i}", public_key=k.public_key, host="127.0.0.1", port=9)
                for i, k in enumerate(self.validators)
            ),
            identities=tuple(
                Identity(name=f"sender{i}", public_key=k.public_key, roles=(Role.SUPPLIER,))
                for i, k in enumerate(self.senders)
            ),
            params=Params(),
        )
        self.node = Node(
            name=f"node{BACKUP}",
            genesis=self.genesis,
            keys=self.validators[BACKUP],
            storage=Storage(data_dir / "chain.sqlite"),
        )
        self.nonces = [0] * SENDERS
        self.serial = 0

    def transactions(self, count: int) -> list[Transaction]:
        txs = []
        for _ in range(count):
            s = self.serial % SENDERS
            txs.append(
                receipt(
                    self.senders[s], chain_id=CHAIN_ID, nonce=self.nonces[s], serial=self.serial
                )
            )
            self.nonces[s] += 1
            self.serial += 1
        return txs

    def others(self) -> list[int]:
        return [i for i in range(4) if i != BACKUP]

    def proposal(self, txs: list[Transaction]) -> tuple[Block, bytes]:
        head = self.node.storage.head()
        block = Block.build(
            chain_id=CHAIN_ID,
            height=head.height + 1,
            prev_hash=head.hash,
            state_height=head.height,
            state_digest=head.state_digest,
            proposer=0,
            view=0,
            timestamp_ms=self.genesis.genesis_time_ms + head.height + 1,
            txs=txs,
        )
        size = block_bytes(block)
        if size > self.genesis.block_bytes_max:
            per_tx = size / len(txs)
            raise BlockTooLarge(
                f"a block of {len(txs)} bench transactions is {size} bytes, over the chain's "
                f"block_bytes_max of {self.genesis.block_bytes_max}: backups refuse it. "
                f"--txs-per-block may be at most {int(self.genesis.block_bytes_max // per_tx)}"
            )
        message = sign_pre_prepare(
            self.validators[0], CHAIN_ID, view=0, seq=block.height, block=block, sender=0
        )
        return block, encode_message(message)

    def votes(self, block: Block) -> tuple[list[bytes], list[bytes]]:
        """Two prepares (from the backups besides this one) and two commits (primary, backup)."""
        keys, seq, block_hash = self.validators, block.height, block.hash
        prepares: list[Message] = [
            sign_prepare(keys[i], CHAIN_ID, view=0, seq=seq, block_hash=block_hash, sender=i)
            for i in self.others()
            if i != 0
        ]
        commits: list[Message] = [
            sign_commit(keys[i], CHAIN_ID, view=0, seq=seq, block_hash=block_hash, sender=i)
            for i in self.others()[:2]
        ]
        return [encode_message(m) for m in prepares], [encode_message(m) for m in commits]

    def checkpoints(self, block: Block) -> list[bytes]:
        digest = self.node.storage.head().state_digest
        return [
            encode_message(
                sign_checkpoint(
                    self.validators[i],
                    CHAIN_ID,
                    seq=block.height,
                    block_hash=block.hash,
                    state_digest=digest,
                    sender=i,
                )
            )
            for i in self.others()[:2]
        ]


@contextlib.contextmanager
def _timing(totals: dict[str, float], stage: str) -> Iterator[None]:
    started = time.process_time()
    try:
        yield
    finally:
        totals[stage] += time.process_time() - started


def measure(txs_per_block: int, blocks: int, warm_up: int, data_dir: Path) -> dict[str, Any]:
    """CPU seconds per stage over `blocks` blocks after `warm_up` untimed ones."""

    async def run() -> dict[str, Any]:
        chain = _Chain(data_dir)
        node = chain.node
        totals = dict.fromkeys(STAGES, 0.0)
        counting = [False]
        execute = node._execute  # what a CommitBlock action calls: timed on its own

        def timed_execute(block: Block, certificate: CommitCertificate) -> BlockExecuted:
            if not counting[0]:
                return execute(block, certificate)
            started = time.process_time()
            try:
                return execute(block, certificate)
            finally:
                spent = time.process_time() - started
                totals["execution"] += spent
                totals["consensus"] -= spent  # it ran inside a consensus stage's timing

        node._execute = timed_execute  # type: ignore[method-assign]
        interval = chain.genesis.params.checkpoint_interval
        for index in range(warm_up + blocks):
            counting[0] = index >= warm_up
            clock = totals if counting[0] else dict.fromkeys(STAGES, 0.0)
            txs = chain.transactions(txs_per_block)
            wires = [bytes(bytearray(tx.wire)) for tx in txs]  # new objects, as off a socket
            for start in range(0, len(wires), ADMIT_SLICE):
                # What the node's admission queue does with a forwarded slice.
                part = wires[start : start + ADMIT_SLICE]
                with _timing(clock, "admission"):
                    outcomes = node._admit_forwarded(part, 0, from_client=False)
                refused = [o for o in outcomes if not isinstance(o, Transaction)]
                if refused:
                    raise RuntimeError(f"the backup refused a transaction: {refused[0]}")
            block, pre_prepare = chain.proposal(txs)
            prepares, commits = chain.votes(block)
            height = node.storage.head().height
            for messages in ([pre_prepare], prepares):
                with _timing(clock, "consensus"):
                    node.receive_peer_batch(messages, [], from_validator=True)
            # The commits set off the execution, whose writes the database commit closing the
            # peer's batch writes out: an enclosing batch takes that commit out of the consensus
            # stage and into the execution's.
            with node.storage.batch():
                with _timing(clock, "consensus"):
                    node.receive_peer_batch(commits, [], from_validator=True)
                closing = time.process_time()
            clock["execution"] += time.process_time() - closing
            if node.storage.head().height != height + 1:
                raise RuntimeError(f"block {block.height} did not commit at the backup")
            if block.height % interval == 0:
                checkpoints = chain.checkpoints(block)
                with _timing(clock, "consensus"):
                    node.receive_peer_batch(checkpoints, [], from_validator=True)
        verify_s = _verify_seconds(chain.transactions(1)[0])
        assert node.replica is not None  # a validator's node
        stable = node.replica.stable_checkpoint
        node.storage.close()
        return {
            "totals": totals,
            "verify_s": verify_s,
            "height": warm_up + blocks,
            "stable_checkpoint": None if stable is None else stable.seq,
        }

    return asyncio.run(run())


def _verify_seconds(tx: Transaction, count: int = 2000) -> float:
    started = time.process_time()
    for _ in range(count):
        tx.verify()
    return (time.process_time() - started) / count


def summary(txs_per_block: int, blocks: int, measured: dict[str, Any]) -> dict[str, Any]:
    txs = txs_per_block * blocks
    per_tx = {stage: measured["totals"][stage] / txs * 1e6 for stage in STAGES}
    return {
        "txs_per_block": txs_per_block,
        "blocks": blocks,
        "us_per_tx": {stage: round(value, 1) for stage, value in per_tx.items()},
        "us_per_tx_total": round(sum(per_tx.values()), 1),
        "verify_us": round(measured["verify_s"] * 1e6, 1),
        "height": measured["height"],
        "stable_checkpoint": measured["stable_checkpoint"],
        "machine": machine(),
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--txs-per-block",
        type=positive_int,
        default=480,
        help="bench transactions a block (default 480, about what the bench's blocks hold at "
        "n = 4; at most what the genesis's block_bytes_max lets a block hold)",
    )
    parser.add_argument("--blocks", type=positive_int, default=200, help="timed blocks")
    parser.add_argument("--warm-up", type=int, default=20, help="untimed blocks first")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if args.warm_up < 0:
        parser.error("--warm-up must be 0 or more")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="millchain-node-costs-") as data_dir:
        try:
            measured = measure(args.txs_per_block, args.blocks, args.warm_up, Path(data_dir))
        except BlockTooLarge as exc:
            print(f"node_costs: error: {exc}", file=sys.stderr)
            return 2
    result = summary(args.txs_per_block, args.blocks, measured)
    print(
        f"one backup of 4, blocks of {args.txs_per_block} bench transactions, "
        f"{args.blocks} blocks timed after {args.warm_up}; CPU per transaction:"
    )
    for stage, value in result["us_per_tx"].items():
        print(f"  {stage:<10} {value:7.1f} us")
    print(f"  {'total':<10} {result['us_per_tx_total']:7.1f} us")
    print(f"one ed25519 verification: {result['verify_us']:.1f} us (admission holds one a tx)")
    print(f"machine: {machine_line(result['machine'])}")
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
