"""What storing a fetched run of blocks costs with a savepoint a block, and in bulk (Storage.bulk).

    python scripts/storage_bulk.py [--txs-per-block 65] [--blocks 2000] [--run 100]
                                   [--rounds 3] [--json storage-bulk.json]

Catching up stores the blocks of each fetched run in one batch. Each block alone used to take a
savepoint inside it, so a block failing halfway could be undone on its own; in bulk they share
the batch's database transaction. This script commits the same synthetic blocks (the shape of
scripts/catchup.py's history: TXS_PER_BLOCK transactions with a receipt and an event each and a
few state writes, RUN blocks a batch) into fresh databases both ways, alternating which goes
first, ROUNDS times, and prints the process CPU per transaction of each way (medians) and their
ratio per round. Nothing leaves the process.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cli.bench_runs import machine, machine_line, positive_int
from ledger.encoding import encode
from node.storage import BlockRecord, Storage

WAYS = ("savepoints", "bulk")
SUBJECTS = 50  # distinct event subjects, as the catch-up history's 50 parts


def _hash(tag: bytes) -> bytes:
    return hashlib.sha256(tag).digest()


def records(blocks: int, txs_per_block: int) -> list[BlockRecord]:
    """Blocks 1..`blocks`, sized like a bench block's stored form (240-byte transactions,
    212-byte receipts, an event each)."""
    built = []
    for height in range(1, blocks + 1):
        hashes = [_hash(b"tx %d/%d" % (height, i)) for i in range(txs_per_block)]
        built.append(
            BlockRecord(
                height=height,
                hash=_hash(b"block %d" % height),
                wire=_hash(b"wire %d" % height) * (txs_per_block * 240 // 32),
                certificate=_hash(b"certificate") * 10,
                timestamp_ms=height,
                state_digest=_hash(b"digest %d" % height),
                receipts=[(h, h * 6 + h[:20]) for h in hashes],
                events=[
                    (
                        h,
                        "inventory",
                        "receive",
                        f"item:part-{i % SUBJECTS}@bench",
                        encode({"on_hand": height, "qty": i, "reserved": 0}),
                    )
                    for i, h in enumerate(hashes)
                ],
                writes={
                    b"stock/part-%d" % (height % SUBJECTS): _hash(b"%d" % height),
                    b"nonce/load%d" % (height % 16): b"%d" % height,
                },
            )
        )
    return built


def store(path: Path, built: Sequence[BlockRecord], run: int, bulk: bool) -> float:
    """CPU seconds to commit `built` into a new database at `path`, `run` blocks a batch."""
    storage = Storage(path)
    try:
        storage.initialise(genesis_hash=b"g" * 32, writes={}, digest=b"d" * 32, time_ms=0)
        started = time.process_time()
        with storage.large_cache():  # as catching up stores its history
            for first in range(0, len(built), run):
                with storage.batch(), storage.bulk() if bulk else contextlib.nullcontext():
                    for record in built[first : first + run]:
                        storage.commit_record(record)
        return time.process_time() - started
    finally:
        storage.close()


def measure(txs_per_block: int, blocks: int, run: int, rounds: int) -> dict[str, Any]:
    built = records(blocks, txs_per_block)
    txs = blocks * txs_per_block
    per_round: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="millchain-storage-bulk-") as folder:
        for index in range(rounds):
            order = WAYS if index % 2 == 0 else WAYS[::-1]
            seconds = {
                way: store(Path(folder) / f"{index}-{way}.sqlite", built, run, way == "bulk")
                for way in order
            }
            per_round.append({way: seconds[way] / txs * 1e6 for way in WAYS})
    medians = {way: statistics.median(r[way] for r in per_round) for way in WAYS}
    return {
        "txs_per_block": txs_per_block,
        "blocks": blocks,
        "run": run,
        "rounds": [{way: round(r[way], 2) for way in WAYS} for r in per_round],
        "us_per_tx": {way: round(medians[way], 2) for way in WAYS},
        "ratio_median": round(statistics.median(r["savepoints"] / r["bulk"] for r in per_round), 3),
        "machine": machine(),
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--txs-per-block", type=positive_int, default=65)
    parser.add_argument("--blocks", type=positive_int, default=2000)
    parser.add_argument("--run", type=positive_int, default=100, help="blocks a batch")
    parser.add_argument("--rounds", type=positive_int, default=3)
    parser.add_argument("--json", type=Path)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    result = measure(args.txs_per_block, args.blocks, args.run, args.rounds)
    print(
        f"{args.blocks} blocks of {args.txs_per_block} transactions, {args.run} a batch, "
        f"{args.rounds} rounds; CPU per transaction stored (median):"
    )
    for way in WAYS:
        print(f"  {way:<10} {result['us_per_tx'][way]:7.2f} us")
    print(f"savepoints / bulk, median of the rounds' ratios: {result['ratio_median']:.3f}")
    print(f"machine: {machine_line(result['machine'])}")
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
