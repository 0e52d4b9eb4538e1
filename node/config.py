"""Node configuration: one JSON file per node, written by `millchain init`."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from node.errors import ConfigError
from node.limits import (
    BODY_TIMEOUT_S_DEFAULT,
    IDLE_TIMEOUT_S_DEFAULT,
    RATE_BURST_DEFAULT,
    RATE_PER_S_DEFAULT,
    ApiLimits,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeConfig:
    name: str
    genesis_file: Path
    key_file: Path
    data_dir: Path
    host: str
    port: int
    log_file: Path
    pipeline_depth: int = 8
    log_json: bool = False
    observer: bool = False
    oracle_key_file: Path | None = None
    models_dir: Path | None = None
    # HTTP limits (node/limits.py): per-client rate limit of the client API, connection and
    # body timeouts, and a token that opens the admin API to other hosts than loopback.
    rate_limit_per_s: float = RATE_PER_S_DEFAULT
    rate_limit_burst: int = RATE_BURST_DEFAULT
    idle_timeout_s: float = IDLE_TIMEOUT_S_DEFAULT
    body_timeout_s: float = BODY_TIMEOUT_S_DEFAULT
    admin_token: str | None = None
    # Each database commit forced to disk before what it records leaves the node (SQLite's
    # synchronous=FULL), so a power cut loses nothing the node signed or reported committed;
    # off, a commit reaches the OS only (synchronous=NORMAL), which a crashed process does not
    # undo.
    fsync: bool = False

    def __post_init__(self) -> None:
        if (
            isinstance(self.port, bool)
            or not isinstance(self.port, int)
            or not 1 <= self.port <= 65535
        ):
            raise ConfigError(
                f"node config {self.name}: port must be 1 to 65535, got {self.port!r}"
            )
        try:
            self.limits()
        except ValueError as exc:
            raise ConfigError(f"node config {self.name}: {exc}") from exc

    def limits(self) -> ApiLimits:
        return ApiLimits(
            rate_limit_per_s=self.rate_limit_per_s,
            rate_limit_burst=self.rate_limit_burst,
            idle_timeout_s=self.idle_timeout_s,
            body_timeout_s=self.body_timeout_s,
            admin_token=self.admin_token,
        )

    @classmethod
    def load(cls, path: Path) -> NodeConfig:
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"cannot read node config {path}: {exc}") from exc
        base = path.parent

        def resolve(value: str) -> Path:
            candidate = Path(value)
            return candidate if candidate.is_absolute() else (base / candidate).resolve()

        try:
            return cls(
                name=str(document["name"]),
                genesis_file=resolve(document["genesis_file"]),
                key_file=resolve(document["key_file"]),
                data_dir=resolve(document["data_dir"]),
                host=str(document["host"]),
                port=int(document["port"]),
                log_file=resolve(document["log_file"]),
                pipeline_depth=int(document.get("pipeline_depth", 8)),
                log_json=bool(document.get("log_json", False)),
                observer=bool(document.get("observer", False)),
                oracle_key_file=(
                    resolve(document["oracle_key_file"])
                    if document.get("oracle_key_file")
                    else None
                ),
                models_dir=resolve(document["models_dir"]) if document.get("models_dir") else None,
                rate_limit_per_s=_number(document, "rate_limit_per_s", RATE_PER_S_DEFAULT),
                rate_limit_burst=_integer(document, "rate_limit_burst", RATE_BURST_DEFAULT),
                idle_timeout_s=_number(document, "idle_timeout_s", IDLE_TIMEOUT_S_DEFAULT),
                body_timeout_s=_number(document, "body_timeout_s", BODY_TIMEOUT_S_DEFAULT),
                admin_token=_optional_str(document, "admin_token"),
                fsync=_flag(document, "fsync"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"node config {path} is malformed: {exc!r}") from exc

    def save(self, path: Path) -> None:
        document = {
            key: str(value) if isinstance(value, Path) else value
            for key, value in asdict(self).items()
        }
        path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def _number(document: dict[str, object], key: str, default: float) -> float:
    value = document.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{key} must be a number, got {value!r}")
    return float(value)


def _integer(document: dict[str, object], key: str, default: int) -> int:
    value = document.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{key} must be an integer, got {value!r}")
    return value


def _flag(document: dict[str, object], key: str) -> bool:
    value = document.get(key, False)
    if not isinstance(value, bool):
        raise ValueError(f"{key} must be true or false, got {value!r}")
    return value


def _optional_str(document: dict[str, object], key: str) -> str | None:
    value = document.get(key)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{key} must be a string, got {type(value).__name__}")
    return value
