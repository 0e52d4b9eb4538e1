"""Run one node in the foreground: logging to its file, SIGTERM and SIGINT for a graceful stop."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import signal
import time
from pathlib import Path

import uvloop

from ledger.crypto import read_key_file
from ledger.genesis import Genesis
from node.api import listen, serve
from node.byzantine import ByzantineSpec
from node.config import NodeConfig
from node.faults import FAULTS_FILE, FaultInjector
from node.service import Node
from node.storage import Storage

log = logging.getLogger(__name__)

# The cyclic collector's thresholds once the node runs (CPython's defaults: 700, 10, 10). A node
# allocates in bursts (a block's transactions decoded, executed, stored), and with 700 a young
# collection came every few hundred transactions and walked a burst's live objects again and
# again. Measured with gc.callbacks over a saturated 20-s 4-node bench: collections took 0.68-
# 0.77 s of a node's 10-12 s of CPU, the longest 111-160 ms; with these and the start-up heap
# frozen, 0.24-0.35 s (start-up's own collections included), the longest 48-104 ms.
GC_THRESHOLDS = (20_000, 20, 20)


def settle_heap() -> None:
    """Move what start-up built (modules, the model, the genesis) out of the collector's sight
    and set GC_THRESHOLDS: a full collection then walks only what the node built since."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(
            {
                "ts": round(record.created, 3),
                "level": record.levelname.lower(),
                "logger": record.name,
                "msg": record.getMessage(),
            }
        )


def setup_logging(log_file: Path, *, name: str, as_json: bool) -> None:
    log_file.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(log_file, encoding="utf-8")
    if as_json:
        handler.setFormatter(_JsonFormatter())
    else:
        formatter = logging.Formatter(f"%(asctime)s {name} %(levelname)s %(name)s: %(message)s")
        formatter.converter = time.gmtime
        handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


async def run(config: NodeConfig, byzantine: ByzantineSpec | None = None) -> None:
    listener = listen(config.host, config.port)
    genesis = Genesis.load(config.genesis_file)
    keys = read_key_file(config.key_file)
    storage = Storage(config.data_dir / "chain.sqlite", fsync=config.fsync)
    faults = FaultInjector.kept_at(config.data_dir / FAULTS_FILE)
    if faults.rules:
        log.warning(
            "fault rules kept from before the restart are in force (heal them with `millchain "
            "cluster faults --heal`): %s",
            ", ".join(f"{peer}: {rule}" for peer, rule in sorted(faults.rules.items())),
        )
    node = Node(
        name=config.name,
        genesis=genesis,
        keys=keys,
        storage=storage,
        pipeline_depth=config.pipeline_depth,
        observer=config.observer,
        oracle_keys=None
        if config.oracle_key_file is None
        else read_key_file(config.oracle_key_file),
        models_dir=config.models_dir,
        byzantine=byzantine,
        faults=faults,
    )
    settle_heap()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await serve(node, listener, stop, config.limits())


def run_node(config: NodeConfig, byzantine: ByzantineSpec | None = None) -> None:
    setup_logging(config.log_file, name=config.name, as_json=config.log_json)
    uvloop.run(run(config, byzantine))
