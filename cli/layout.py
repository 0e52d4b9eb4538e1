"""The layout of a cluster directory, and `millchain init` that creates one.

DIR/genesis.json                     the chain: validators (host, port, key), identities, params
DIR/cluster.json                     the node names and their config files
DIR/cluster.lock                     held while a command starts or stops nodes
DIR/nodes/NAME/node.json             one node's configuration
DIR/nodes/NAME/validator.key.json    its validator key (0600); observers have observer.key.json
DIR/nodes/NAME/data/chain.sqlite     its database
DIR/nodes/NAME/node.log, node.pid    its log and, while running, its process id
DIR/nodes/NAME/oracle.key.json       the validator's oracle identity (oracle-NAME), 0600
DIR/identities/NAME.key.json         client identities' keys, selected with --as NAME (and
                                     --as oracle-NAME selects the validator's oracle key)
DIR/models/SHA256.skops              fault models registered on-chain, by artifact hash
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from ledger.crypto import KeyPair, read_key_file, write_key_file
from ledger.genesis import Genesis, Identity, Params, Role, Validator
from node.config import NodeConfig

DEFAULT_IDENTITIES: tuple[tuple[str, tuple[Role, ...]], ...] = (
    ("admin", (Role.ADMIN,)),
    ("supplier", (Role.SUPPLIER,)),
    ("customer", (Role.CUSTOMER,)),
    ("planner", (Role.PLANNER,)),
    ("machine", (Role.MACHINE,)),
    ("maintainer", (Role.MAINTAINER,)),
    ("auditor", (Role.AUDITOR,)),
)


# A validator's oracle reports under the identity ORACLE_PREFIX + its name.
ORACLE_PREFIX: Final = "oracle-"

# A node's name, as init gives them; also a directory name under nodes/.
_NODE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


class LayoutError(Exception):
    """A cluster directory that is missing, incomplete or already initialised."""


def pid_file_of(config_file: Path) -> Path:
    """The pid file of the node that runs `config_file`: beside it, whether `cluster up`
    started the node or it runs in the foreground (`node run`)."""
    return config_file.parent / "node.pid"


@dataclass(frozen=True, slots=True)
class ClusterDir:
    root: Path  # made absolute: node processes run in their own directories

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", self.root.absolute())

    @property
    def genesis_file(self) -> Path:
        return self.root / "genesis.json"

    @property
    def manifest_file(self) -> Path:
        return self.root / "cluster.json"

    @property
    def lock_file(self) -> Path:
        """Locked by the command that starts or stops nodes (cli/cluster_lock.py)."""
        return self.root / "cluster.lock"

    @property
    def models_dir(self) -> Path:
        """Registered fault-model artifacts, named by their sha256 (shared by the nodes)."""
        return self.root / "models"

    def node_dir(self, name: str) -> Path:
        return self.root / "nodes" / name

    def config_file(self, name: str) -> Path:
        return self.node_dir(name) / "node.json"

    def pid_file(self, name: str) -> Path:
        return pid_file_of(self.config_file(name))

    def log_file(self, name: str) -> Path:
        return self.node_dir(name) / "node.log"

    def identity_key_file(self, name: str) -> Path:
        return self.root / "identities" / f"{name}.key.json"

    def node_names(self) -> list[str]:
        validators, observers = self._manifest()
        return validators + observers

    def validator_names(self) -> list[str]:
        """The validators only (node_names() also lists observers)."""
        return self._manifest()[0]

    def _manifest(self) -> tuple[list[str], list[str]]:
        """The validators' and the observers' names, as cluster.json lists them."""
        if not self.manifest_file.exists():
            raise LayoutError(
                f"{self.root} is not a cluster directory (no cluster.json); "
                "create one with `millchain init --dir DIR`"
            )
        try:
            document = json.loads(self.manifest_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:  # ValueError: not JSON, or not UTF-8
            raise LayoutError(f"cannot read {self.manifest_file}: {exc}") from exc
        names: list[list[str]] = []
        for key, required in (("nodes", True), ("observers", False)):
            listed = (
                document.get(key, None if required else []) if isinstance(document, dict) else None
            )
            if not isinstance(listed, list) or not all(
                isinstance(name, str) and _NODE_NAME.fullmatch(name) for name in listed
            ):
                raise LayoutError(
                    f"{self.manifest_file} is not a cluster manifest: expected "
                    f'{{"nodes": [names], "observers": [names]}} with names like node0'
                )
            names.append(listed)
        return names[0], names[1]

    def config(self, name: str) -> NodeConfig:
        if name not in self.node_names():
            raise LayoutError(f"no node named {name!r}; nodes are {', '.join(self.node_names())}")
        return NodeConfig.load(self.config_file(name))

    def genesis(self) -> Genesis:
        return Genesis.load(self.genesis_file)

    def identity_keys(self, name: str) -> KeyPair:
        """The keys `--as NAME` signs with: a client identity's from DIR/identities, or, for
        oracle-NODE, validator NODE's oracle key (the one its oracle reports with)."""
        path = self._signing_key_file(name)
        if not path.exists():
            raise LayoutError(
                f"no identity named {name!r}; known: {', '.join(self.identity_names())}"
            )
        return read_key_file(path)

    def identity_names(self) -> list[str]:
        """Every identity whose key this directory holds, as `--as` takes them: the client
        identities, then each validator's oracle identity."""
        clients = sorted(
            path.name.removesuffix(".key.json")
            for path in (self.root / "identities").glob("*.key.json")
        )
        oracles = [
            ORACLE_PREFIX + name
            for name in self.validator_names()
            if self.oracle_key_file(name).exists()
        ]
        return clients + oracles

    def oracle_key_file(self, name: str) -> Path:
        """Validator `name`'s oracle key: its identity on the chain is oracle-NAME."""
        return self.node_dir(name) / "oracle.key.json"

    def _signing_key_file(self, name: str) -> Path:
        validator = name.removeprefix(ORACLE_PREFIX)
        if name.startswith(ORACLE_PREFIX) and validator in self.validator_names():
            return self.oracle_key_file(validator)
        return self.identity_key_file(name)


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS reports free on `host` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def _validator_hosts(
    nodes: int, host: str, hosts: Sequence[str] | None, port: int | None
) -> list[str]:
    if hosts is None:
        if port is not None:
            raise LayoutError("--port needs --hosts: validators on one host need their own ports")
        return [host] * nodes
    if len(hosts) != nodes:
        raise LayoutError(f"{len(hosts)} hosts for {nodes} validators; give one host each")
    if port is not None and len(set(hosts)) != len(hosts):
        raise LayoutError("with one --port for all, every validator needs its own host")
    if port is not None and not 1 <= port <= 65535:
        raise LayoutError(f"port must be between 1 and 65535, got {port}")
    return list(hosts)


def _free_port_on(host: str, taken: set[int]) -> int:
    try:
        port = free_port(host)
        while port in taken:
            port = free_port(host)
    except OSError as exc:
        raise LayoutError(
            f"cannot find a free port on {host} ({exc}); if it is not an address of this "
            "machine, pass --port"
        ) from exc
    return port


def init_cluster(
    root: Path,
    *,
    nodes: int,
    chain_id: str = "millchain-local",
    host: str = "127.0.0.1",
    params: Params | None = None,
    genesis_time_ms: int | None = None,
    extra_identities: Sequence[tuple[str, tuple[Role, ...]]] = (),
    observers: int = 0,
    hosts: Sequence[str] | None = None,
    port: int | None = None,
    fsync: bool = False,
) -> ClusterDir:
    """Create keys, genesis and one config per node in a directory that holds no cluster yet
    (created if missing). `fsync`: every node forces each database commit to disk (see
    NodeConfig.fsync).

    Validator i binds and is addressed at `hosts[i]` (default: `host` for all), on `port` if
    given (each validator on its own host), else on a port the OS reports free there.

    Everything is written into a temporary folder inside the directory and moved into place
    once all of it is written (cluster.json last), so an init that fails leaves the directory
    as it was, and removes it if it made it.
    """
    if nodes < 4:
        raise LayoutError(f"a PBFT cluster needs at least 4 nodes (n = 3f+1), got {nodes}")
    if observers < 0:
        raise LayoutError(f"the number of observers must be 0 or more, got {observers}")
    validator_hosts = _validator_hosts(nodes, host, hosts, port)
    layout = ClusterDir(root)
    if layout.manifest_file.exists() or layout.genesis_file.exists():
        raise LayoutError(f"{root} already holds a cluster; choose an empty directory")
    present = [entry for entry in INIT_ENTRIES if os.path.lexists(layout.root / entry)]
    if present:
        raise LayoutError(
            f"{root} already holds {', '.join(present)} (left by an init that failed?); "
            "remove them or choose an empty directory"
        )
    created = _make_directory(layout.root)
    moved: list[Path] = []
    try:
        staging = Path(tempfile.mkdtemp(prefix=".init-", dir=layout.root))
        try:
            _write_cluster(
                ClusterDir(staging),
                nodes=nodes,
                chain_id=chain_id,
                host=host,
                params=params,
                genesis_time_ms=genesis_time_ms,
                extra_identities=extra_identities,
                observers=observers,
                validator_hosts=validator_hosts,
                port=port,
                fsync=fsync,
            )
            for entry in INIT_ENTRIES:
                os.rename(staging / entry, layout.root / entry)
                moved.append(layout.root / entry)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    except BaseException as exc:
        _remove(created, moved)
        if isinstance(exc, OSError):
            raise LayoutError(f"cannot write the cluster into {root}: {exc}") from exc
        raise
    return layout


# What init writes at the top of a cluster directory, in the order it moves them into place:
# cluster.json, which makes the directory a cluster, comes last.
INIT_ENTRIES: Final = ("genesis.json", "nodes", "identities", "models", "cluster.json")


def _make_directory(path: Path) -> Path | None:
    """Create `path` and its missing parents; the topmost folder created, or None."""
    missing = [folder for folder in (path, *path.parents) if not folder.exists()]
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LayoutError(f"cannot create the cluster directory {path}: {exc}") from exc
    return missing[-1] if missing else None


def _remove(created: Path | None, moved: list[Path]) -> None:
    """Undo a failed init: the folder it created, or else what it moved into an existing one.
    Errors here are left unreported: the error that made init fail is the one to see."""
    if created is not None:
        shutil.rmtree(created, ignore_errors=True)
        return
    for path in moved:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def _write_cluster(
    layout: ClusterDir,
    *,
    nodes: int,
    chain_id: str,
    host: str,
    params: Params | None,
    genesis_time_ms: int | None,
    extra_identities: Sequence[tuple[str, tuple[Role, ...]]],
    observers: int,
    validator_hosts: list[str],
    port: int | None,
    fsync: bool,
) -> None:
    """Write a whole cluster into `layout`, an empty folder (see init_cluster)."""
    names = [f"node{i}" for i in range(nodes)]
    validators = []
    ports: set[int] = set()
    validator_ports: list[int] = []
    for validator_host in validator_hosts:  # before writing anything: this may fail
        chosen = port if port is not None else _free_port_on(validator_host, ports)
        ports.add(chosen)
        validator_ports.append(chosen)
    for name, validator_host, validator_port in zip(
        names, validator_hosts, validator_ports, strict=True
    ):
        keys = KeyPair.generate()
        write_key_file(layout.node_dir(name) / "validator.key.json", keys, name=name)
        validators.append(
            Validator(
                name=name, public_key=keys.public_key, host=validator_host, port=validator_port
            )
        )
    identities = []
    for name, roles in (*DEFAULT_IDENTITIES, *extra_identities):
        keys = KeyPair.generate()
        write_key_file(layout.identity_key_file(name), keys, name=name)
        identities.append(Identity(name=name, public_key=keys.public_key, roles=roles))
    for name in names:
        # Each validator reports the oracle's predictions under an identity of its own.
        keys = KeyPair.generate()
        oracle = ORACLE_PREFIX + name
        write_key_file(layout.oracle_key_file(name), keys, name=oracle)
        identities.append(Identity(name=oracle, public_key=keys.public_key, roles=(Role.ORACLE,)))
    layout.models_dir.mkdir(parents=True, exist_ok=True)
    genesis = Genesis(
        chain_id=chain_id,
        genesis_time_ms=int(time.time() * 1000) if genesis_time_ms is None else genesis_time_ms,
        validators=tuple(validators),
        identities=tuple(identities),
        params=params or Params(),
    )
    genesis.save(layout.genesis_file)
    for validator in validators:
        node_dir = layout.node_dir(validator.name)
        NodeConfig(
            name=validator.name,
            genesis_file=Path("../../genesis.json"),
            key_file=Path("validator.key.json"),
            data_dir=Path("data"),
            host=validator.host,
            port=validator.port,
            log_file=Path("node.log"),
            oracle_key_file=Path("oracle.key.json"),
            models_dir=Path("../../models"),
            fsync=fsync,
        ).save(node_dir / "node.json")
    observer_names = [f"observer{i}" for i in range(observers)]
    for name in observer_names:
        keys = KeyPair.generate()
        write_key_file(layout.node_dir(name) / "observer.key.json", keys, name=name)
        observer_port = _free_port_on(host, ports)
        ports.add(observer_port)
        NodeConfig(
            name=name,
            genesis_file=Path("../../genesis.json"),
            key_file=Path("observer.key.json"),
            data_dir=Path("data"),
            host=host,
            port=observer_port,
            log_file=Path("node.log"),
            observer=True,
            fsync=fsync,
        ).save(layout.node_dir(name) / "node.json")
    layout.manifest_file.write_text(
        json.dumps({"chain_id": chain_id, "nodes": names, "observers": observer_names}, indent=2)
        + "\n",
        encoding="utf-8",
    )
