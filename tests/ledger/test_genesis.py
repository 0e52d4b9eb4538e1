"""Genesis: validators, identities, roles and parameters, stored as JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ledger.crypto import KeyPair
from ledger.encoding import encode
from ledger.errors import GenesisError
from ledger.genesis import Genesis, Identity, Params, Role, Validator
from ledger.hashing import sha256


def key(index: int) -> bytes:
    return KeyPair.from_seed(bytes([index + 1]) * 32).public_key


def make_genesis(validator_count: int = 4, **changes: Any) -> Genesis:
    arguments: dict[str, Any] = {
        "chain_id": "mill-1",
        "genesis_time_ms": 1_700_000_000_000,
        "validators": tuple(
            Validator(
                name=f"node{index}", public_key=key(index), host="127.0.0.1", port=7000 + index
            )
            for index in range(validator_count)
        ),
        "identities": (
            Identity(name="alice", public_key=key(50), roles=(Role.ADMIN, Role.PLANNER)),
            Identity(name="press-1", public_key=key(51), roles=(Role.MACHINE,)),
            Identity(name="oracle-0", public_key=key(0), roles=(Role.ORACLE,)),
        ),
        "params": Params(checkpoint_interval=16, watermark_window=48),
    }
    arguments.update(changes)
    return Genesis(**arguments)


def json_map(**changes: Any) -> dict[str, Any]:
    return make_genesis().to_json_map() | changes


# --- round trip and hash ------------------------------------------------------------------------


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    genesis = make_genesis()
    genesis.save(tmp_path / "genesis.json")
    loaded = Genesis.load(tmp_path / "genesis.json")
    assert loaded == genesis
    assert loaded.hash == genesis.hash


def test_saved_file_is_readable_json(tmp_path: Path) -> None:
    make_genesis().save(tmp_path / "genesis.json")
    document = json.loads((tmp_path / "genesis.json").read_text())
    assert document["validators"][0]["public_key"] == key(0).hex()
    assert document["identities"][0]["roles"] == ["admin", "planner"]
    assert document["params"]["checkpoint_interval"] == 16


def test_hash_is_stable() -> None:
    assert make_genesis().hash == make_genesis().hash
    assert make_genesis().hash == sha256(encode(make_genesis().to_json_map()))


def test_hash_ignores_whitespace_and_key_order(tmp_path: Path) -> None:
    document = make_genesis().to_json_map()
    path = tmp_path / "genesis.json"
    path.write_text(json.dumps(dict(reversed(list(document.items()))), separators=(",", ":")))
    assert Genesis.load(path).hash == make_genesis().hash


@pytest.mark.parametrize(
    "changes",
    [
        {"chain_id": "mill-2"},
        {"genesis_time_ms": 1},
        {"params": Params(block_txs_max=999)},
        {"validator_count": 5},
    ],
)
def test_hash_changes_with_content(changes: dict[str, Any]) -> None:
    assert make_genesis(**changes).hash != make_genesis().hash


def test_params_default_when_absent() -> None:
    document = json_map()
    del document["params"]
    assert Genesis.from_json_map(document).params == Params()


def test_partial_params_keep_other_defaults() -> None:
    genesis = Genesis.from_json_map(json_map(params={"block_interval_ms": 5}))
    assert genesis.params == Params(block_interval_ms=5)


# --- derived values and lookups -----------------------------------------------------------------


@pytest.mark.parametrize(("count", "f", "quorum"), [(4, 1, 3), (7, 2, 5), (10, 3, 7)])
def test_n_f_and_quorum(count: int, f: int, quorum: int) -> None:
    genesis = make_genesis(validator_count=count)
    assert (genesis.n, genesis.f, genesis.quorum) == (count, f, quorum)


def test_validator_index_and_keys() -> None:
    genesis = make_genesis()
    assert genesis.validator_keys == tuple(key(index) for index in range(4))
    assert genesis.validator_index(key(2)) == 2
    assert genesis.validator_index(key(50)) is None


def test_validator_url() -> None:
    assert make_genesis().validators[1].url == "http://127.0.0.1:7001"


def test_identity_lookup() -> None:
    assert make_genesis().identity("press-1").roles == (Role.MACHINE,)


def test_identity_lookup_error_lists_known_names() -> None:
    with pytest.raises(GenesisError, match="'bob'; known: alice, press-1, oracle-0"):
        make_genesis().identity("bob")


# --- rejects ------------------------------------------------------------------------------------


@pytest.mark.parametrize("count", [0, 1, 3])
def test_rejects_fewer_than_4_validators(count: int) -> None:
    with pytest.raises(GenesisError, match="at least 4 validators"):
        make_genesis(validator_count=count)


@pytest.mark.parametrize(("count", "quorum"), [(4, 1), (4, 2), (4, 5), (7, 4), (7, 8)])
def test_rejects_an_oracle_quorum_that_faulty_oracles_could_decide_or_none_could_reach(
    count: int, quorum: int
) -> None:
    with pytest.raises(GenesisError, match=r"oracle_quorum must be 0 .2f\+1. or from 2f\+1"):
        make_genesis(validator_count=count, params=Params(oracle_quorum=quorum))


@pytest.mark.parametrize(("count", "quorum"), [(4, 0), (4, 3), (4, 4), (7, 5), (7, 7)])
def test_takes_an_oracle_quorum_from_2f_plus_1_to_n(count: int, quorum: int) -> None:
    assert make_genesis(validator_count=count, params=Params(oracle_quorum=quorum))


def test_load_rejects_fewer_than_4_validators() -> None:
    document = json_map()
    document["validators"] = document["validators"][:3]
    with pytest.raises(GenesisError, match="at least 4 validators"):
        Genesis.from_json_map(document)


def test_rejects_duplicate_validator_names() -> None:
    document = json_map()
    document["validators"][1]["name"] = "node0"
    with pytest.raises(GenesisError, match="duplicate validator name"):
        Genesis.from_json_map(document)


def test_rejects_duplicate_validator_keys() -> None:
    document = json_map()
    document["validators"][1]["public_key"] = document["validators"][0]["public_key"]
    with pytest.raises(GenesisError, match="duplicate validator key"):
        Genesis.from_json_map(document)


def test_rejects_duplicate_identity_names() -> None:
    document = json_map()
    document["identities"][1]["name"] = "alice"
    with pytest.raises(GenesisError, match="duplicate identity name"):
        Genesis.from_json_map(document)


def test_rejects_duplicate_identity_keys() -> None:
    document = json_map()
    document["identities"][1]["public_key"] = document["identities"][0]["public_key"]
    with pytest.raises(GenesisError, match="duplicate identity key"):
        Genesis.from_json_map(document)


@pytest.mark.parametrize("bad_hex", ["zz" * 32, "abc", 12345, None])
def test_rejects_bad_hex(bad_hex: Any) -> None:
    document = json_map()
    document["validators"][0]["public_key"] = bad_hex
    with pytest.raises(GenesisError, match="malformed"):
        Genesis.from_json_map(document)


@pytest.mark.parametrize("length", [31, 33])
def test_rejects_wrong_length_key(length: int) -> None:
    document = json_map()
    document["identities"][0]["public_key"] = "ab" * length
    with pytest.raises(GenesisError, match="32 bytes"):
        Genesis.from_json_map(document)


def test_rejects_unknown_role() -> None:
    document = json_map()
    document["identities"][0]["roles"] = ["admin", "overlord"]
    with pytest.raises(GenesisError, match="overlord"):
        Genesis.from_json_map(document)


def test_rejects_unknown_param() -> None:
    with pytest.raises(GenesisError, match=r"unknown parameter\(s\): block_size"):
        Genesis.from_json_map(json_map(params={"block_size": 5}))


@pytest.mark.parametrize(
    "params",
    [
        {"block_interval_ms": -1},
        {"oracle_quorum": -3},
        {"mempool_txs_max": True},
        {"tx_bytes_max": "1024"},
        {"view_change_timeout_ms": 1.5},
    ],
)
def test_rejects_negative_or_non_integer_param(params: dict[str, Any]) -> None:
    with pytest.raises(GenesisError, match="non-negative integer"):
        Genesis.from_json_map(json_map(params=params))


@pytest.mark.parametrize(
    "name", ["block_txs_max", "tx_bytes_max", "body_bytes_max", "checkpoint_interval"]
)
def test_rejects_zero_for_params_that_must_be_positive(name: str) -> None:
    with pytest.raises(GenesisError, match=f"{name} must be at least 1"):
        Genesis.from_json_map(json_map(params={name: 0}))


def test_rejects_watermark_window_below_checkpoint_interval() -> None:
    params = {"checkpoint_interval": 32, "watermark_window": 31}
    with pytest.raises(GenesisError, match="watermark_window"):
        Genesis.from_json_map(json_map(params=params))


def test_accepts_watermark_window_equal_to_checkpoint_interval() -> None:
    params = {"checkpoint_interval": 32, "watermark_window": 32}
    assert Genesis.from_json_map(json_map(params=params)).params.watermark_window == 32


@pytest.mark.parametrize(
    "changes",
    [
        {"checkpoint_interval": 64, "watermark_window": 32},
        {"block_txs_max": 0},
        {"oracle_quorum": -1},
    ],
)
def test_params_built_in_code_are_checked_too(changes: dict[str, Any]) -> None:
    with pytest.raises(GenesisError):
        Params(**changes)


@pytest.mark.parametrize("chain_id", ["", "c" * 65])
def test_rejects_bad_chain_id(chain_id: str) -> None:
    with pytest.raises(GenesisError, match="chain_id"):
        make_genesis(chain_id=chain_id)


@pytest.mark.parametrize("missing", ["chain_id", "genesis_time_ms", "validators", "identities"])
def test_rejects_missing_top_level_field(missing: str) -> None:
    document = json_map()
    del document[missing]
    with pytest.raises(GenesisError, match="malformed"):
        Genesis.from_json_map(document)


@pytest.mark.parametrize("document", [[], "genesis", None, 5])
def test_rejects_document_that_is_not_an_object(document: Any) -> None:
    with pytest.raises(GenesisError, match="malformed"):
        Genesis.from_json_map(document)


def test_load_rejects_missing_file(tmp_path: Path) -> None:
    with pytest.raises(GenesisError, match="cannot read"):
        Genesis.load(tmp_path / "missing.json")


def test_load_rejects_invalid_json(tmp_path: Path) -> None:
    path = tmp_path / "genesis.json"
    path.write_text("{not json")
    with pytest.raises(GenesisError, match="cannot read"):
        Genesis.load(path)


def test_load_rejects_non_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "genesis.json"
    path.write_bytes(b"\xff\xfe\x00{")
    with pytest.raises(GenesisError, match="cannot read"):
        Genesis.load(path)
