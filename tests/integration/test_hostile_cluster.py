"""A real 4-node cluster under a barrage of bad input: it keeps committing, its key files are
owner-only, and no node log holds a secret key."""

from __future__ import annotations

import asyncio
import base64
import json
import random
import stat
from pathlib import Path

import aiohttp
import pytest

from cli.layout import ClusterDir
from ledger.crypto import KeyPair
from ledger.tx import Transaction
from node.client import NodeClient
from node.protocol import PROTOCOL_HEADER, PROTOCOL_VERSION
from tests.clusters import converged, kill_all, millchain, url

PEER_PROTOCOL = {PROTOCOL_HEADER: str(PROTOCOL_VERSION)}

pytestmark = [pytest.mark.slow, pytest.mark.integration]

BARRAGE_PER_NODE = 150


def _key_files(root: Path) -> list[Path]:
    return sorted(root.rglob("*.key.json"))


def _secret_forms(path: Path) -> list[bytes]:
    """Every way a key file's secret could show up in a log: seed and full secret key, as hex
    (either case) and base64."""
    seed = bytes.fromhex(json.loads(path.read_text(encoding="utf-8"))["seed"])
    secret = seed + KeyPair.from_seed(seed).public_key  # NaCl's 64-byte secret key
    forms = []
    for raw in (seed, secret):
        forms += [raw.hex().encode(), raw.hex().upper().encode(), base64.b64encode(raw)]
        forms.append(base64.urlsafe_b64encode(raw).rstrip(b"="))
    return forms


async def _barrage(session: aiohttp.ClientSession, base: str, seed: int) -> list[int]:
    rng = random.Random(seed)
    statuses = []
    for i in range(BARRAGE_PER_NODE):
        junk = rng.randbytes(rng.randrange(0, 400))
        path = ["/tx", "/txs", "/peer/batch"][i % 3]
        # Junk on the peer route as a node of this version sends it, so that it reaches the
        # batch decoder rather than the protocol check.
        headers = PEER_PROTOCOL if path.startswith("/peer/") else None
        async with session.post(base + path, data=junk, headers=headers) as response:
            statuses.append(response.status)
        hexish = rng.randbytes(rng.randrange(0, 40)).hex()
        async with session.get(f"{base}/tx/{hexish}?wait_ms={rng.randrange(-5, 5)}") as response:
            statuses.append(response.status)
    return statuses


def test_cluster_keeps_committing_through_a_barrage_and_keeps_its_secrets(tmp_path: Path) -> None:
    root = tmp_path / "cluster"
    result = millchain("init", "--nodes", "4", "--observers", "1", "--dir", str(root))
    assert result.returncode == 0, result.stdout + result.stderr
    files = _key_files(root)
    assert len(files) >= 4 + 4 + 1  # validators, their oracle keys, the observer, identities
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    layout = ClusterDir(root)
    try:
        result = millchain("cluster", "up", "--dir", str(root), "--timeout", "60")
        assert result.returncode == 0, result.stdout + result.stderr
        asyncio.run(_exercise(layout))
    finally:
        millchain("cluster", "down", "--dir", str(root), timeout_s=60)
        kill_all(layout)
    secrets = [form for path in files for form in _secret_forms(path)]
    logs = [p for p in root.rglob("*") if p.is_file() and p.suffix in (".log", ".out", ".txt")]
    assert logs
    for log_file in logs:
        text = log_file.read_bytes()
        leaked = [form for form in secrets if form in text]
        assert not leaked, f"{log_file} holds secret key material"


async def _exercise(layout: ClusterDir) -> None:
    names = layout.validator_names()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        rounds = await asyncio.gather(
            *(_barrage(session, url(layout, name), i) for i, name in enumerate(names))
        )
    statuses = [s for row in rounds for s in row]
    assert all(s < 500 for s in statuses), sorted(set(statuses))
    keys = layout.identity_keys("supplier")
    chain_id = layout.genesis().chain_id
    async with NodeClient(url(layout, names[1])) as client:
        nonce = await client.next_nonce(keys.public_key)
        tx = Transaction.create(
            keys,
            chain_id=chain_id,
            nonce=nonce,
            contract="inventory",
            method="receive",
            args={"item": "steel", "location": "main", "qty": 3},
        )
        await client.submit(tx.to_wire())
        committed = await client.wait_committed(tx.hash.hex(), 30)
        assert committed["receipt"]["ok"]
    await converged(layout, names, height_min=committed["height"], timeout_s=30)
