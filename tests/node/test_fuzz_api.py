"""Hypothesis fuzzing of every client and peer endpoint of a live in-process 4-node cluster.

Each input is malformed, mistyped, oversized, badly signed, signed by an outsider, for another
chain, a replay, out of range or for a past or far-future view or sequence. Client endpoints must
answer 4xx with an {"error"} message (503 with Retry-After only for a nonce too far ahead, which is
back-pressure); the peer endpoint must drop and count what it cannot use. Nothing may answer 5xx,
and the target node's height, head, state digest and mempool must not change. Afterwards the
cluster must still commit. How many inputs each endpoint took is printed in pytest's summary.
"""

from __future__ import annotations

import json
import string
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from yarl import URL

from consensus.codec import encode_message
from consensus.messages import sign_checkpoint, sign_commit, sign_prepare
from ledger.crypto import Domain, KeyPair
from ledger.encoding import encode
from ledger.errors import EncodingError
from ledger.genesis import Params
from ledger.tx import Transaction
from node.limits import ApiLimits
from tests.node.inproc import CHAIN_ID, Cluster, in_process_cluster
from tests.node.test_openapi import check_answer, is_documented

TARGET = 1  # a backup: fuzzing it leaves the primary free to commit the valid work at the end
# Small, so oversized bodies are cheap to try; a short watermark window keeps the chain's
# NEW-VIEW within it (see ledger.genesis.block_bytes_limit).
BODY_BYTES_MAX = 96 * 1024
TRIED: Counter[str] = Counter()
FUZZ = settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    params = Params(
        block_interval_ms=10,
        body_bytes_max=BODY_BYTES_MAX,
        tx_bytes_max=4096,
        checkpoint_interval=8,
        watermark_window=8,
    )
    root: Path = tmp_path_factory.mktemp("fuzz")
    with in_process_cluster(root, params=params, limits=ApiLimits()) as cluster:
        # One admitted transaction that stays pending (its nonce leaves a gap), so replays of
        # it meet a transaction the node already holds.
        pending = _tx(cluster.identities["supplier"], nonce=5)
        status, _, _ = cluster.run(cluster.request(TARGET, "POST", "/tx", body=pending.to_wire()))
        assert status == 202
        cluster.notes["pending"] = pending
        yield cluster


def _tx(keys: KeyPair, *, nonce: int = 0, chain_id: str = CHAIN_ID, **args: Any) -> Transaction:
    return Transaction.create(
        keys,
        chain_id=chain_id,
        nonce=nonce,
        contract="inventory",
        method="receive",
        args={"item": "steel", "location": "main", "qty": 5, **args},
    )


# -- strategies ------------------------------------------------------------------------------

INTS = st.one_of(
    st.integers(-(2**63), 2**64 - 1),
    st.sampled_from([-1, 0, 2**31, 2**63 - 1, 2**63, 2**64 - 1, -(2**63)]),
)
LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    INTS,
    st.floats(allow_nan=True),
    st.text(max_size=40),
    st.binary(max_size=80),
)
VALUES = st.recursive(
    LEAVES,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(
            st.one_of(st.text(max_size=10), INTS, st.binary(max_size=4)), children, max_size=5
        ),
    ),
    max_leaves=20,
)


def _packb(value: Any) -> bytes:
    packed: bytes = msgpack.packb(value, use_bin_type=True, strict_types=False)
    return packed


@st.composite
def deep_nesting(draw: st.DrawFn) -> bytes:
    depth = draw(st.integers(30, 5000))
    opener = draw(st.sampled_from([b"\x91", b"\x81\xa1k"]))
    return opener * depth + b"\xc0"


@st.composite
def mutated_wire(draw: st.DrawFn) -> bytes:
    """A valid transaction's bytes, truncated, extended or with bytes changed."""
    keys = draw(st.sampled_from(["supplier", "admin"]))
    wire = _tx(KeyPair.from_seed(bytes([100 + ["admin", "supplier"].index(keys)]) * 32)).to_wire()
    how = draw(st.sampled_from(["truncate", "flip", "append", "prepend"]))
    if how == "truncate":
        return wire[: draw(st.integers(0, len(wire) - 1))]
    if how == "append":
        return wire + draw(st.binary(min_size=1, max_size=20))
    if how == "prepend":
        return draw(st.binary(min_size=1, max_size=4)) + wire
    position = draw(st.integers(0, len(wire) - 1))
    flipped = wire[position] ^ draw(st.integers(1, 255))
    return wire[:position] + bytes([flipped]) + wire[position + 1 :]


FIELDS = ("chain_id", "sender", "nonce", "contract", "method", "args")


@st.composite
def bad_fields(draw: st.DrawFn, keys: dict[str, KeyPair]) -> bytes:
    """A transaction body with one deliberate fault and other fields fuzzed, signed so that only
    the fault (not the signature) stands between it and admission."""
    supplier = keys["supplier"]
    fields: dict[str, Any] = {
        "chain_id": CHAIN_ID,
        "sender": supplier.public_key,
        "nonce": draw(st.integers(0, 3)),
        "contract": "inventory",
        "method": "receive",
        "args": {"item": "steel", "location": "main", "qty": draw(st.integers(1, 10))},
    }
    signer = supplier
    fault = draw(
        st.sampled_from(
            [
                "wrong_type",
                "missing",
                "extra",
                "wrong_chain",
                "outsider",
                "no_role",
                "bad_args",
                "bad_signature",
                "huge_nonce",
                "negative_nonce",
                "unknown_method",
            ]
        )
    )
    signature_override: bytes | None = None
    if fault == "wrong_type":
        name = draw(st.sampled_from(FIELDS))

        def of_another_type(value: object, n: str = name) -> bool:
            return type(value) is not type(fields[n])

        fields[name] = draw(LEAVES.filter(of_another_type))
    elif fault == "missing":
        del fields[draw(st.sampled_from(FIELDS))]
    elif fault == "extra":
        fields[draw(st.text(min_size=1, max_size=8).filter(lambda k: k not in FIELDS))] = draw(
            LEAVES
        )
    elif fault == "wrong_chain":
        fields["chain_id"] = draw(st.text(max_size=70).filter(lambda c: c != CHAIN_ID))
    elif fault == "outsider":
        signer = KeyPair.from_seed(draw(st.binary(min_size=32, max_size=32)))
        fields["sender"] = signer.public_key
    elif fault == "no_role":
        signer = keys["customer"]
        fields["sender"] = signer.public_key
    elif fault == "bad_args":
        fields["args"] = draw(
            st.one_of(
                st.fixed_dictionaries({"item": st.text(max_size=80), "qty": INTS}),
                st.dictionaries(st.text(max_size=8), LEAVES, max_size=4),
                st.fixed_dictionaries(
                    {
                        "item": st.just("steel"),
                        "location": st.just("main"),
                        "qty": st.integers(min_value=-(2**63), max_value=0),
                    }
                ),
            )
        )
    elif fault == "bad_signature":
        signature_override = draw(st.binary(min_size=64, max_size=64))
    elif fault == "huge_nonce":
        fields["nonce"] = draw(st.integers(2**40, 2**64 - 1))
    elif fault == "negative_nonce":
        fields["nonce"] = draw(st.integers(-(2**63), -1))
    else:
        fields["method"] = draw(st.text(max_size=70).filter(lambda m: m != "receive"))
    try:
        body = encode(fields)
    except EncodingError:  # a value canonical encoding refuses: send plain msgpack instead
        body = _packb(fields)
    chain_id = fields.get("chain_id")
    signature = signature_override or signer.sign(
        Domain.TRANSACTION, chain_id if isinstance(chain_id, str) else CHAIN_ID, body
    )
    return _packb({"body": body, "signature": signature})


def client_bodies(keys: dict[str, KeyPair]) -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.binary(max_size=300),
        VALUES.map(_packb),
        deep_nesting(),
        mutated_wire(),
        bad_fields(keys),
        st.integers(BODY_BYTES_MAX + 1, 3 * BODY_BYTES_MAX).map(lambda n: b"\x00" * n),
    )


# -- checks ----------------------------------------------------------------------------------


def _client_error(status: int, headers: dict[str, str], body: bytes) -> str:
    """Assert a refusal with a message; return the message."""
    assert status < 500 or (status == 503 and "ahead of the committed nonce" in body.decode()), (
        status,
        body[:300],
    )
    assert 400 <= status < 500 or status == 503, (status, body[:300])
    message = json.loads(body)["error"]
    assert isinstance(message, str) and message
    if status in (429, 503):
        assert headers["Retry-After"].isdigit()
    return message


def _post_invalid(cluster: Cluster, path: str, body: bytes) -> tuple[int, bytes]:
    before = cluster.fingerprint(TARGET)
    status, headers, answer = cluster.run(cluster.request(TARGET, "POST", path, body=body))
    TRIED[f"POST {path}"] += 1
    if status != 200:
        _client_error(status, headers, answer)
    check_answer("POST", path, status, headers, answer)
    assert cluster.fingerprint(TARGET) == before
    return status, answer


# -- client endpoints ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keys(cluster: Cluster) -> dict[str, KeyPair]:
    return cluster.identities


def test_post_tx_refuses_every_bad_body_and_changes_nothing(cluster: Cluster) -> None:
    replays = st.just(cluster.notes["pending"].to_wire())

    @FUZZ
    @given(body=st.one_of(client_bodies(cluster.identities), replays))
    def check(body: bytes) -> None:
        status, _ = _post_invalid(cluster, "/tx", body)
        assert status != 200

    check()


def test_post_txs_refuses_each_bad_transaction_and_changes_nothing(cluster: Cluster) -> None:
    one = client_bodies(cluster.identities)
    batches = st.one_of(
        st.lists(one, min_size=1, max_size=6).map(_packb),
        st.lists(VALUES, max_size=4).map(_packb),
        VALUES.map(_packb),
        one,
    )

    @settings(FUZZ, max_examples=200)
    @given(body=batches)
    def check(body: bytes) -> None:
        status, answer = _post_invalid(cluster, "/txs", body)
        if status == 200:
            for result in json.loads(answer)["results"]:
                assert set(result) == {"error", "status"}, result
                assert 400 <= result["status"] < 500 or result["status"] == 503, result
                assert result["error"]

    check()


HEXISH = st.text(alphabet=string.hexdigits + "xg- %/\u00e9\u00b2", max_size=80)
SEGMENTS = st.one_of(
    HEXISH,
    st.text(max_size=40),
    st.integers(-(2**80), 2**80).map(str),
    st.sampled_from(["\u00b2", "\u0663", "%ff", "%00", "..", "%2e%2e", "9" * 30, "-1", " 1"]),
)
QUERY_VALUES = st.one_of(
    st.integers(-(2**70), 2**70).map(str),
    st.text(max_size=20),
    st.sampled_from(["", "1e3", "0x10", "\u0663", "1_000", "nan", "-0", "99999999999999999999"]),
)
GET_ROUTES = [
    "/tx/{}",
    "/blocks/{}",
    "/blocks/hash/{}",
    "/accounts/{}",
    "/state/{}",
    "/state/inventory/{}",
    "/state/machines/m1/readings/{}",
    "/state/oracle/prediction/m1/{}",
    "/state/orders/ord-{}",
    "/state/maintenance/wo-{}",
    "/events/{}",
]
QUERY_ROUTES = {
    "/tx/" + "ab" * 32: ["wait_ms"],
    "/commits": ["from", "wait_ms"],
    "/blocks": ["limit"],
    "/events/item:steel": ["limit"],
    "/state/inventory": ["after"],
    "/peer/blocks": ["from", "to"],
    "/peer/history": ["from", "to"],
}


def _get_checked(cluster: Cluster, route: str, path: str) -> None:
    before = cluster.fingerprint(TARGET)
    status, headers, answer = cluster.run(cluster.request(TARGET, "GET", path), timeout_s=90)
    TRIED[f"GET {route}"] += 1
    assert status < 500, (path, status, answer[:300])
    if status >= 400:
        _client_error(status, headers, answer)
    routed = URL(cluster.urls[TARGET] + path).raw_path  # as sent: dot segments resolved
    if is_documented(routed):
        check_answer("GET", routed, status, headers, answer)
    else:  # e.g. an empty segment: no route at all
        assert status == 404, (path, status)
    assert cluster.fingerprint(TARGET) == before


@pytest.mark.parametrize("route", GET_ROUTES)
def test_bad_path_parameters_get_a_4xx(cluster: Cluster, route: str) -> None:
    @settings(FUZZ, max_examples=100)
    @given(segment=SEGMENTS)
    def check(segment: str) -> None:
        quoted = segment if "%" in segment else urllib.parse.quote(segment, safe="")
        _get_checked(cluster, route, route.format(quoted))

    check()


@pytest.mark.parametrize("route", list(QUERY_ROUTES))
def test_out_of_range_query_parameters_get_a_4xx(cluster: Cluster, route: str) -> None:
    names = QUERY_ROUTES[route]

    @settings(FUZZ, max_examples=100)
    @given(values=st.lists(QUERY_VALUES, min_size=len(names), max_size=len(names)))
    def check(values: list[str]) -> None:
        # wait_ms would make a valid request wait: keep waits short, the point is the parsing.
        pairs = [
            (name, "1" if name == "wait_ms" and value.strip().isdigit() else value)
            for name, value in zip(names, values, strict=True)
        ]
        label = "/tx/{hash}" if route.startswith("/tx/") else route
        _get_checked(
            cluster, f"{label}?{'&'.join(names)}", f"{route}?{urllib.parse.urlencode(pairs)}"
        )

    check()


PHASES = {
    "before-pre-prepare",
    "after-pre-prepare",
    "after-prepare",
    "after-commit",
    "after-execute",
}
JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), INTS, st.floats(), st.text(max_size=20)),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def admin_bodies(draw: st.DrawFn) -> bytes:
    """Bodies /admin/pause must refuse: never a known phase with a valid seq_min."""
    shape = draw(st.sampled_from(["json", "pause_like", "deep", "bytes"]))
    if shape == "deep":
        return b"[" * draw(st.integers(100, BODY_BYTES_MAX - 1))
    if shape == "bytes":
        return draw(st.binary(max_size=200))
    if shape == "json":
        value = draw(JSON_VALUES.filter(lambda v: not (isinstance(v, dict) and "phase" in v)))
    else:
        phase = draw(st.one_of(JSON_VALUES, st.sampled_from(sorted(PHASES))))
        seq_min = draw(st.one_of(INTS, st.floats(), st.text(max_size=5), st.none()))
        value = {"phase": phase, "seq_min": seq_min}
        valid_phase = phase in PHASES if isinstance(phase, str) else False
        if valid_phase and type(seq_min) is int and 0 <= seq_min < 2**63:
            value["seq_min"] = -1 - seq_min
    return json.dumps(value).encode()


def test_admin_pause_refuses_every_bad_body(cluster: Cluster) -> None:
    node = cluster.nodes[TARGET]

    @settings(FUZZ, max_examples=200)
    @given(body=admin_bodies())
    def check(body: bytes) -> None:
        status, _ = _post_invalid(cluster, "/admin/pause", body)
        assert status == 400
        assert node.pause_point is None

    check()


# -- the peer endpoint -----------------------------------------------------------------------


@st.composite
def consensus_messages(draw: st.DrawFn, cluster: Cluster) -> tuple[bytes, bool]:
    """(a consensus message, whether the node must count it as rejected). Signed by validator 3
    (at most f faulty), by an outsider posing as a validator, or for another chain; for views
    and sequence numbers in the past, present and far future."""
    view = draw(st.one_of(st.integers(0, 3), st.integers(2**20, 2**63 - 1)))
    seq = draw(st.one_of(st.integers(0, 3), st.integers(100, 2**63 - 1)))
    block_hash = draw(st.binary(min_size=32, max_size=32))
    who = draw(st.sampled_from(["validator", "outsider", "other_chain", "wrong_index"]))
    keys = cluster.validator_keys[3]
    sender = 3
    chain_id = CHAIN_ID
    if who == "outsider":
        keys = KeyPair.from_seed(draw(st.binary(min_size=32, max_size=32)))
    elif who == "other_chain":
        chain_id = draw(st.text(min_size=1, max_size=64).filter(lambda c: c != CHAIN_ID))
    elif who == "wrong_index":
        sender = draw(st.sampled_from([0, 2]))  # validator 3's signature under another's name
    kind = draw(st.sampled_from(["prepare", "commit", "checkpoint"]))
    if kind == "prepare":
        message: Any = sign_prepare(
            keys, chain_id, view=view, seq=seq, block_hash=block_hash, sender=sender
        )
    elif kind == "commit":
        message = sign_commit(
            keys, chain_id, view=view, seq=seq, block_hash=block_hash, sender=sender
        )
    else:
        message = sign_checkpoint(
            keys,
            chain_id,
            seq=seq,
            block_hash=block_hash,
            state_digest=draw(st.binary(min_size=32, max_size=32)),
            sender=sender,
        )
    return encode_message(message), who != "validator"


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerCase:
    body: bytes
    well_formed: bool  # a map with lists "messages" and "txs"
    messages: int = 0
    bad_messages: int = 0  # undecodable, badly signed, outsiders' or another chain's
    txs: int = 0  # every one refused at admission


@st.composite
def peer_batches(draw: st.DrawFn, cluster: Cluster) -> PeerCase:
    shape = draw(st.sampled_from(["batch", "batch", "batch", "junk", "values", "bad_lists"]))
    if shape == "junk":
        junk = draw(st.one_of(st.binary(max_size=200), deep_nesting()))
        return PeerCase(body=junk, well_formed=False)
    if shape == "values":
        return PeerCase(body=_packb(draw(VALUES)), well_formed=False)
    if shape == "bad_lists":
        not_a_list = draw(st.one_of(st.none(), INTS, st.text(max_size=5)))
        return PeerCase(body=encode({"messages": not_a_list, "txs": []}), well_formed=False)
    items = draw(
        st.lists(
            st.one_of(
                consensus_messages(cluster),
                st.binary(max_size=120).map(lambda b: (b, True)),
                mutated_message(cluster),
                st.one_of(INTS, st.text(max_size=5), st.none()).map(lambda v: (v, True)),
            ),
            max_size=6,
        )
    )
    copies = 2 if draw(st.booleans()) else 1  # replayed within the batch
    messages = [raw for raw, _ in items] * copies
    txs = draw(
        st.lists(client_bodies(cluster.identities).filter(lambda b: len(b) < 8000), max_size=3)
    )
    return PeerCase(
        body=encode({"sender": 3, "messages": messages, "txs": txs}),
        well_formed=True,
        messages=len(messages),
        bad_messages=sum(1 for _, is_bad in items if is_bad) * copies,
        txs=len(txs),
    )


@st.composite
def mutated_message(draw: st.DrawFn, cluster: Cluster) -> tuple[bytes, bool]:
    raw = encode_message(
        sign_prepare(
            cluster.validator_keys[3], CHAIN_ID, view=0, seq=1, block_hash=b"\x07" * 32, sender=3
        )
    )
    position = draw(st.integers(0, len(raw) - 1))
    cut = draw(st.booleans())
    if cut:
        return raw[:position], True
    flipped = (
        raw[:position] + bytes([raw[position] ^ draw(st.integers(1, 255))]) + raw[position + 1 :]
    )
    return flipped, flipped != raw


def test_peer_batch_drops_and_counts_bad_input(cluster: Cluster) -> None:
    node = cluster.nodes[TARGET]

    @settings(FUZZ, max_examples=400)
    @given(case=peer_batches(cluster))
    def check(case: PeerCase) -> None:
        counters = node.counters
        received = counters.messages_received
        dropped = counters.messages_rejected + counters.messages_stale
        refused = sum(counters.rejected.values())
        status, _ = _post_invalid(cluster, "/peer/batch", case.body)
        if not case.well_formed:
            assert status == 400
            assert sum(counters.rejected.values()) == refused + 1  # as peer_malformed
            return
        assert status == 200
        assert counters.messages_received == received + case.messages
        # Undecodable, badly signed and outsiders' messages are counted as rejected, or as
        # stale when they are for a slot already behind the node (checked first: it is cheap).
        assert counters.messages_rejected + counters.messages_stale >= dropped + case.bad_messages
        # Every forwarded transaction here is refused, and counted under its reason.
        assert sum(counters.rejected.values()) == refused + case.txs

    check()


# -- after the barrage -----------------------------------------------------------------------


def test_cluster_still_commits_after_the_barrage(cluster: Cluster) -> None:
    """Runs last in this module: every node commits a fresh transaction."""
    start = max(n.storage.head().height for n in cluster.nodes)
    tx = _tx(cluster.identities["supplier"], nonce=0)
    status, _, answer = cluster.run(cluster.request(0, "POST", "/tx", body=tx.to_wire()))
    assert status == 202, answer
    cluster.run(cluster.wait_height(start + 1, timeout_s=20), timeout_s=30)
    receipts = [n.storage.receipt(tx.hash) for n in cluster.nodes]
    assert all(r is not None and r.ok for r in receipts), receipts
    heights = {r.height for r in receipts if r is not None}
    assert len(heights) == 1
    height = heights.pop()
    hashes = set()
    for n in cluster.nodes:
        stored = n.storage.block(height)
        assert stored is not None
        hashes.add(stored.block.hash)
    assert len(hashes) == 1
