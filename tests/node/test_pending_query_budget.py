"""The /peer/pending question and its answer are decoded within a budget of lists and maps.

POST /peer/pending needs no link proof and is outside the client rate limit (it is under
/peer/), yet it decoded its body (up to body_bytes_max, 8 MiB by default) with no container
budget: anybody reaching the port could send a body of empty lists, one byte each and some 64
bytes each once built, and have the node build some 80 times the body on its event loop before
it looked at the shape (every other decoder of outside bytes is budgeted since
tests/node/test_decode_budget.py). A backup decoded the primary's answer (read up to 1 MiB)
the same way, every resend scan: a faulty primary could do the same to every backup.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from ledger.encoding import encode
from node.service import Node
from tests.node.conftest import Client, Setup, steel_received
from tests.node.decoded import LISTS, bounded, empty_lists, peak_under
from tests.node.fake_peer import FakeAnswer


async def test_a_pending_query_of_nested_lists_is_refused_without_building_them(
    client: Client, node: Node
) -> None:
    raw = encode({"senders": empty_lists(min(LISTS, node.params.body_bytes_max - 32))})
    with peak_under(2 * bounded(raw)):  # the body is held twice: sent, and read by the server
        response = await client.post("/peer/pending", data=raw)
        body = await response.json()
    assert response.status == 400
    assert "pending query" in body["error"]


class _Replica:
    """What `_resend_stalled` reads of the replica: a backup of primary 0 in an active view."""

    view, primary, is_primary, view_active = 0, 0, False, True


class _FaultyPrimary:
    """Answers /peer/pending with a map whose list of nonces is a list of empty lists."""

    def __init__(self) -> None:
        self.asked = 0
        self.body = encode({"next_nonces": empty_lists(), "queued_since_ms": None})

    def post(self, url: str, **_: object) -> contextlib.AbstractAsyncContextManager[FakeAnswer]:
        assert url.endswith("/peer/pending")
        self.asked += 1

        @contextlib.asynccontextmanager
        async def answer() -> AsyncIterator[FakeAnswer]:
            yield FakeAnswer(self.body)

        return answer()


async def test_a_primarys_pending_answer_of_nested_lists_is_refused_without_building_them(
    node: Node, setup: Setup
) -> None:
    tx = steel_received(setup)
    node.mempool.add(tx)  # held here only: its sender stalls
    primary = _FaultyPrimary()
    replica, session = node.replica, node.peers._session
    node.replica, node.peers._session = _Replica(), primary  # type: ignore[assignment]
    try:
        await node._resend_stalled(after_ms=0)  # sees the sender
        with peak_under(3 * bounded(primary.body)):  # the answer is read in chunks and joined
            await node._resend_stalled(after_ms=0)  # finds it stalled and asks the primary
    finally:
        node.replica, node.peers._session = replica, session
    assert primary.asked == 1
    assert node.counters.txs_resent == 0
