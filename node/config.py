"""Node configuration: one JSON file per node, written by `millchain init`."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from node.errors import ConfigError


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
