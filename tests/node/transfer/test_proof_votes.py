"""Checkpoint proofs cost a node at most one signature check per validator and block served.

A proof served with /peer/history is a list of signed checkpoint messages that must hold 2f+1
distinct validators' votes for one checkpoint (node/history.py, `verify_proof`), and an answer
may carry one proof per block it serves. Every vote's signature used to be checked before
anything else, so a peer could stuff a proof with copies of one validly signed vote (its own),
or an answer with copies of one proof: each copy cost signature checks (about 40 us each), all
made on the node's event loop before the duplicates refused the answer. An answer read up to
HISTORY_BYTES_MAX (64 MiB) holds some 300,000 such votes: the loop stood still for many seconds
an answer, and the node's consensus with it. Where the proofs are, and the shape of each (at
most one vote per validator, one checkpoint, a quorum), are now checked first, signatures last.
"""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp import web

from consensus.messages import encode_message, sign_checkpoint
from ledger import crypto
from ledger.encoding import decode, encode
from node.history import encode_history
from node.storage import Storage
from node.sync import blocks_query
from tests.node.transfer.chain import (
    BLOCKS,
    PARAMS,
    SETUP,
    Target,
    catch_up_from,
    peer_app,
    state_of,
)

COPIES = 20_000
PROOF_COPIES = 2_000  # of three votes each


def _stuffing_peer(source: Storage, *, what: str) -> web.Application:
    """Serves the history honestly but for the first proof: validator 3 (the peer) adds COPIES
    copies of its own vote for that checkpoint, validly signed, to the proof (`what` "votes"),
    or the answer carries PROOF_COPIES copies of the proof ("proofs")."""
    seq = PARAMS.checkpoint_interval
    stored = source.block(seq)
    assert stored is not None
    own = encode_message(
        sign_checkpoint(
            SETUP.validator_keys[3],
            SETUP.genesis.chain_id,
            seq=seq,
            block_hash=stored.block.hash,
            state_digest=stored.state_digest,
            sender=3,
        )
    )

    async def history(request: web.Request) -> web.Response:
        start, end = blocks_query(request.query, source.head().height)
        proofs = source.checkpoint_proofs(start, end)
        if proofs and proofs[0][0] == seq:
            first = proofs[0][1]
            if what == "votes":
                proofs[0] = (seq, encode([*decode(first), *[own] * COPIES]))
            else:
                proofs[:1] = [(seq, first)] * PROOF_COPIES
        raw = encode_history(source.history_range(start, end), proofs)
        return web.Response(body=raw, content_type="application/msgpack")

    app = web.Application()
    app.router.add_get("/peer/history", history)
    return app


@pytest.mark.parametrize("what", ["votes", "proofs"])
async def test_copies_of_a_vote_or_of_a_proof_cost_no_check_per_copy(
    session: aiohttp.ClientSession,
    source: Storage,
    target: Target,
    monkeypatch: pytest.MonkeyPatch,
    what: str,
) -> None:
    checks = [0]
    is_valid_signature = crypto.is_valid_signature

    def counted(*args: object) -> bool:
        checks[0] += 1
        return is_valid_signature(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(crypto, "is_valid_signature", counted)

    applied = await catch_up_from(
        session, target, _stuffing_peer(source, what=what), peer_app(source)
    )

    assert target.stats.runs_refused == 1  # the stuffed answer
    assert applied == BLOCKS
    assert target.storage.head() == source.head()
    assert state_of(target.storage) == state_of(source)
    # The honest peer's two proofs take a quorum of checks each; the stuffed answer none.
    assert checks[0] <= 2 * SETUP.genesis.n
