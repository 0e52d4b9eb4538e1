"""Review: genesis documents that parse but describe a chain its nodes cannot run."""

from __future__ import annotations

from typing import Any

import pytest

from consensus.config import ReplicaConfig
from consensus.errors import ConfigError
from consensus.messages import VALIDATORS_MAX
from ledger.block import BLOCK_TXS_LIMIT
from ledger.crypto import KeyPair
from ledger.errors import GenesisError
from ledger.genesis import Genesis, Identity, Params, Role, Validator


def key(index: int) -> bytes:
    return KeyPair.from_seed(index.to_bytes(4, "big") * 8).public_key


def validators(count: int, **changes: Any) -> tuple[Validator, ...]:
    return tuple(
        Validator(
            name=f"node{index}",
            public_key=key(index + 1),
            host=changes.get("host", "127.0.0.1"),
            port=changes.get("port", 7000 + index),
        )
        for index in range(count)
    )


def make_genesis(**changes: Any) -> Genesis:
    arguments: dict[str, Any] = {
        "chain_id": "mill-1",
        "genesis_time_ms": 1_700_000_000_000,
        "validators": validators(4),
        "identities": (Identity(name="alice", public_key=key(9_999), roles=(Role.ADMIN,)),),
        "params": Params(),
    }
    arguments.update(changes)
    return Genesis(**arguments)


def test_params_refuse_a_view_change_timeout_no_replica_accepts() -> None:
    # Every node of such a chain fails at start: ReplicaConfig refuses the value.
    with pytest.raises(ConfigError):
        ReplicaConfig(
            chain_id="mill-1",
            validators=tuple(key(i + 1) for i in range(4)),
            index=0,
            checkpoint_interval=32,
            watermark_window=64,
            view_change_timeout_ms=0,
        )
    with pytest.raises(GenesisError):
        Params(view_change_timeout_ms=0)


def test_params_refuse_a_value_the_genesis_hash_cannot_encode() -> None:
    with pytest.raises(GenesisError):
        make_genesis(params=Params(mempool_txs_max=2**64))


def test_genesis_time_must_encode() -> None:
    with pytest.raises(GenesisError):
        make_genesis(genesis_time_ms=2**64)


def test_params_refuse_more_txs_per_block_than_a_block_may_hold() -> None:
    # A block cut to block_txs_max would be refused by every decoder (Block.from_map).
    with pytest.raises(GenesisError):
        Params(block_txs_max=BLOCK_TXS_LIMIT + 1)


def test_genesis_refuses_more_validators_than_messages_can_name() -> None:
    # consensus.codec refuses a sender index >= VALIDATORS_MAX: those validators could never
    # speak, and past 1024 + f the quorum cannot form at all.
    with pytest.raises(GenesisError):
        make_genesis(validators=validators(VALIDATORS_MAX + 1))


@pytest.mark.parametrize("port", [0, -1, 65_536])
def test_genesis_refuses_a_validator_port_out_of_range(port: int) -> None:
    bad = validators(4)
    bad = (*bad[:3], Validator(name="node3", public_key=bad[3].public_key, host="h", port=port))
    with pytest.raises(GenesisError):
        make_genesis(validators=bad)


def test_genesis_refuses_a_frame_too_small_for_a_new_view_of_the_whole_window() -> None:
    # A NEW-VIEW carries a quorum of view changes, each with a proof for every block of the
    # watermark window, and the blocks: with blocks of even one transaction of the largest
    # size it must fit one peer frame, or the chain can stop in view changes.
    small = Params(body_bytes_max=64 * 1024)
    with pytest.raises(GenesisError, match=r"raise body_bytes_max to (\d+)") as refused:
        make_genesis(params=small)
    needed = int(refused.value.args[0].split("raise body_bytes_max to ")[1].split()[0])
    genesis = make_genesis(params=Params(body_bytes_max=needed))
    assert genesis.block_bytes_max >= genesis.params.tx_bytes_max + 5
    # The default frame holds a window of blocks of some 120 KiB at n = 4 ...
    assert 120 * 1024 < make_genesis().block_bytes_max < 128 * 1024
    # ... and no window at all for 40 validators: their votes alone fill it.
    with pytest.raises(GenesisError, match="too small for 40 validators"):
        make_genesis(validators=validators(40))
    assert make_genesis(validators=validators(40), params=Params(body_bytes_max=needed * 10))
