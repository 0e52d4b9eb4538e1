"""The byzantine wrapper: refused unless allowed, and each mode's lies are signed by the liar and
refused by an honest node's checks."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import main
from consensus.admission import Link, check_parent
from consensus.errors import InvalidBlock, InvalidMessage
from consensus.messages import (
    Commit,
    Prepare,
    PrePrepare,
    decode_message,
    encode_message,
    sign_pre_prepare,
    sign_prepare,
    verify_signature,
)
from ledger.block import ZERO_HASH, Block
from ledger.errors import LedgerError
from ledger.tx import Transaction
from node.byzantine import (
    ALLOW_ENV,
    Byzantine,
    ByzantineRefused,
    ByzantineSpec,
    Mode,
    check_allowed,
)
from node.service import Node
from node.storage import Storage
from tests.node.conftest import CHAIN_ID, Setup

PEERS = [1, 2, 3]


@pytest.fixture(autouse=True)
def allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ALLOW_ENV, "1")


def _liar(setup: Setup, spec: str) -> Byzantine:
    return Byzantine(
        ByzantineSpec.parse(spec, seed=3), keys=setup.validator_keys[0], chain_id=CHAIN_ID, index=0
    )


def _tx(setup: Setup, nonce: int = 0) -> Transaction:
    return Transaction.create(
        setup.identities["supplier"],
        chain_id=CHAIN_ID,
        nonce=nonce,
        contract="inventory",
        method="receive",
        args={"item": "steel", "location": "main", "qty": 1},
    )


def _pre_prepare(setup: Setup, seq: int) -> PrePrepare:
    block = Block.build(
        chain_id=CHAIN_ID,
        height=seq,
        prev_hash=ZERO_HASH,
        state_height=0,
        state_digest=ZERO_HASH,
        proposer=0,
        view=0,
        timestamp_ms=1_700_000_000_000,
        txs=[_tx(setup, 0), _tx(setup, 1)],
    )
    return sign_pre_prepare(
        setup.validator_keys[0], CHAIN_ID, view=0, seq=seq, block=block, sender=0
    )


def _validators(setup: Setup) -> tuple[bytes, ...]:
    return tuple(k.public_key for k in setup.validator_keys)


def test_refused_without_the_environment_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ALLOW_ENV)
    with pytest.raises(ByzantineRefused, match=ALLOW_ENV):
        check_allowed()


def test_node_run_refuses_byzantine_and_exits_non_zero(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(ALLOW_ENV)
    config = tmp_path / "node.json"
    config.write_text("{}", encoding="utf-8")
    result = CliRunner().invoke(
        main, ["node", "run", "--config", str(config), "--byzantine", "equivocate"]
    )
    assert result.exit_code != 0
    assert ALLOW_ENV in result.output


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("lying", "unknown byzantine mode"),
        ("withhold=2", "probability"),
        ("flood=0", "messages per second"),
        ("equivocate=1", "takes no rate"),
    ],
)
def test_bad_specs_are_refused(spec: str, problem: str) -> None:
    with pytest.raises(ByzantineRefused, match=problem):
        ByzantineSpec.parse(spec)


def test_equivocating_primary_sends_two_blocks_for_one_sequence_signed_by_itself(
    setup: Setup,
) -> None:
    honest = _pre_prepare(setup, 1)
    sends = _liar(setup, "equivocate").outgoing(honest, PEERS)
    proposals = {d: msg for d, msg in sends if isinstance(msg, PrePrepare)}
    assert set(proposals) == set(PEERS)
    hashes = {msg.block_hash for msg in proposals.values()}
    assert len(hashes) == 2 and honest.block_hash in hashes
    assert {msg.seq for msg in proposals.values()} == {1}
    commits = [msg for _, msg in sends if isinstance(msg, Commit)]
    assert {c.block_hash for c in commits} == hashes
    for _, msg in sends:
        verify_signature(msg, CHAIN_ID, _validators(setup))


def test_conflicting_votes_are_validly_signed_for_a_block_nobody_proposed(setup: Setup) -> None:
    vote = sign_prepare(
        setup.validator_keys[0], CHAIN_ID, view=0, seq=4, block_hash=b"\x01" * 32, sender=0
    )
    liar = _liar(setup, "conflicting-votes")
    sends = [s for _ in range(10) for s in liar.outgoing(vote, PEERS)]
    bogus = [
        msg for _, msg in sends if isinstance(msg, Prepare) and msg.block_hash != vote.block_hash
    ]
    assert bogus and len({b.block_hash for b in bogus}) == 1
    for msg in bogus:
        verify_signature(msg, CHAIN_ID, _validators(setup))
    assert liar.counters.rewritten == len(bogus)


def test_invalid_blocks_are_each_refused_by_an_honest_nodes_checks(
    setup: Setup, tmp_path: Path
) -> None:
    liar = _liar(setup, "invalid-blocks")
    bad_root, bad_signature, wrong_parent = (
        liar.outgoing(_pre_prepare(setup, seq), PEERS)[0][1] for seq in (3, 1, 2)
    )
    with pytest.raises((InvalidMessage, LedgerError), match="tx_root"):
        decode_message(encode_message(bad_root), tx_bytes_max=4096)
    assert isinstance(wrong_parent, PrePrepare)
    with pytest.raises(InvalidMessage, match="prev_hash"):
        check_parent(wrong_parent.block, Link(ZERO_HASH, 0))
    assert isinstance(bad_signature, PrePrepare)
    node = Node(
        name="node1",
        genesis=setup.genesis,
        keys=setup.validator_keys[1],
        storage=Storage(tmp_path / "chain.sqlite"),
    )
    # The node already checked the genuine transaction (same body, so the same hash):
    # its cache must not vouch for the corrupted signature. The block as it goes out: the
    # corrupted signature must be in the bytes sent, not only in the object.
    node.mark_verified(_tx(setup, 0))
    sent = decode_message(encode_message(bad_signature), tx_bytes_max=4096)
    assert isinstance(sent, PrePrepare)
    with pytest.raises(InvalidBlock, match="signature"):
        node.replica._validator.validate(sent.block)  # type: ignore[union-attr]
    node.storage.close()


def test_withhold_drops_everything_or_a_seeded_fraction(setup: Setup) -> None:
    vote = sign_prepare(
        setup.validator_keys[0], CHAIN_ID, view=0, seq=4, block_hash=b"\x01" * 32, sender=0
    )
    assert _liar(setup, "withhold").outgoing(vote, PEERS) == []
    runs = [
        [len(_liar(setup, "withhold=0.5").outgoing(vote, PEERS)) for _ in range(50)] for _ in "ab"
    ]
    assert runs[0] == runs[1]  # seeded
    assert 0 < sum(runs[0]) < 150


def test_flood_is_bounded_to_the_count_asked_for(setup: Setup) -> None:
    liar = _liar(setup, "flood=100")
    assert liar.spec.mode is Mode.FLOOD and liar.spec.rate == 100
    liar.outgoing(_pre_prepare(setup, 1), PEERS)
    items = liar.flood_batch(40, seq_base=1, view=0)
    assert len(items) == 40 and all(isinstance(item, bytes) for item in items)
    assert liar.counters.flooded == 40
