"""A paced (open-loop) bench offers what it says it offers: a transaction a node refused and that
is sent again does not take a second turn of the schedule, and the report says how many
transactions a second were really sent, so a generator that fell behind its schedule is not
reported as having offered the rate it was asked for."""

from __future__ import annotations

import time
from typing import cast

import pytest

from cli import bench
from cli.bench_load import Pacer, PresignedFeed, Samples, receipt, submit_in_order
from ledger.crypto import KeyPair
from node.client import NodeClient
from tests.cli.bench_fake import SENDERS, FakeCluster, FakeLayout, use_fake_cluster

RATE_PER_S = 2000.0
DURATION_S = 0.5


async def test_a_refused_request_sent_again_does_not_take_a_second_turn_of_the_schedule() -> None:
    # Every other request is refused as busy (503) and offered again 10 ms later.
    cluster = FakeCluster(refuse=lambda number: number % 2 == 0)
    keys = KeyPair.generate()
    txs = [receipt(keys, chain_id="fake", nonce=n, serial=n) for n in range(2000)]
    samples = Samples()
    await submit_in_order(
        cast(NodeClient, cluster.client("http://node0.invalid")),
        PresignedFeed(txs),
        samples,
        stop_at=time.monotonic() + DURATION_S,
        pacer=Pacer(RATE_PER_S),
        batch=20,
    )
    new_txs = len(samples.submitted_at)
    # 1,000 new transactions were due in the half second; the sender has room for twice that
    # (a request and a 10-ms wait per refusal). Charging each retry to the schedule offered
    # about half.
    assert new_txs >= 0.8 * RATE_PER_S * DURATION_S, new_txs


async def test_the_report_says_what_was_sent_when_the_generator_fell_behind(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Each request takes 100 ms: 4 senders x 10 transactions a request can send about 400 a
    # second, a fifth of the 2,000 asked for.
    cluster = FakeCluster(submit_delay_s=0.1)
    use_fake_cluster(monkeypatch, cluster)
    figures = await bench._offer_load(
        FakeLayout(),  # type: ignore[arg-type]
        SENDERS,
        duration_s=1.0,
        rate_per_s=RATE_PER_S,
        batch=10,
    )
    assert figures["submitted"] < 0.5 * RATE_PER_S
    sent = figures.get("sent_tx_per_s")
    assert sent is not None, f"no figure says what was really offered: {sorted(figures)}"
    assert sent == pytest.approx(figures["submitted"] / 1.0, rel=0.1)
