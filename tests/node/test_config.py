"""Node config files: the HTTP limits are optional, default generously, and bad values are
refused with a message naming the field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from node.config import NodeConfig
from node.errors import ConfigError
from node.limits import ApiLimits

BASE = {
    "name": "node0",
    "genesis_file": "genesis.json",
    "key_file": "validator.key.json",
    "data_dir": "data",
    "host": "127.0.0.1",
    "port": 7000,
    "log_file": "node.log",
}


def _load(tmp_path: Path, **extra: Any) -> NodeConfig:
    path = tmp_path / "node.json"
    path.write_text(json.dumps({**BASE, **extra}), encoding="utf-8")
    return NodeConfig.load(path)


def test_limits_default_when_the_file_names_none(tmp_path: Path) -> None:
    assert _load(tmp_path).limits() == ApiLimits()


def test_limits_come_from_the_file_and_survive_a_save(tmp_path: Path) -> None:
    config = _load(
        tmp_path,
        rate_limit_per_s=50,
        rate_limit_burst=100,
        idle_timeout_s=5,
        body_timeout_s=2.5,
        admin_token="0123456789abcdef",
    )
    assert config.limits() == ApiLimits(
        rate_limit_per_s=50,
        rate_limit_burst=100,
        idle_timeout_s=5,
        body_timeout_s=2.5,
        admin_token="0123456789abcdef",
    )
    config.save(tmp_path / "again.json")
    assert NodeConfig.load(tmp_path / "again.json") == config


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("rate_limit_per_s", 0, "rate_limit_per_s must be a positive number"),
        ("rate_limit_per_s", "fast", "rate_limit_per_s must be a number"),
        ("rate_limit_burst", -1, "rate_limit_burst must be a positive number"),
        ("rate_limit_burst", 2.5, "rate_limit_burst must be an integer"),
        ("idle_timeout_s", True, "idle_timeout_s must be a number"),
        ("body_timeout_s", -0.5, "body_timeout_s must be a positive number"),
        ("admin_token", "short", "admin_token must be at least 16"),
        ("admin_token", 12345678901234567, "admin_token must be a string"),
    ],
)
def test_bad_limits_are_refused_naming_the_field(
    tmp_path: Path, field: str, value: Any, fragment: str
) -> None:
    with pytest.raises(ConfigError, match=fragment):
        _load(tmp_path, **{field: value})


def test_fsync_is_off_unless_the_file_turns_it_on(tmp_path: Path) -> None:
    assert _load(tmp_path).fsync is False
    config = _load(tmp_path, fsync=True)
    assert config.fsync is True
    config.save(tmp_path / "again.json")
    assert NodeConfig.load(tmp_path / "again.json").fsync is True


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_fsync_must_be_true_or_false(tmp_path: Path, value: object) -> None:
    with pytest.raises(ConfigError, match="fsync must be true or false"):
        _load(tmp_path, fsync=value)
