"""`millchain init`, `millchain cluster ...` and `millchain node run`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import click

from cli.cluster_lock import holding_cluster_lock
from cli.common import (
    FiniteFloatRange,
    dir_option,
    err_console,
    fail,
    guarded,
    json_option,
    layout_of,
    print_json,
    run,
    short,
)
from cli.common import table as print_table
from cli.layout import ClusterDir, LayoutError, init_cluster
from cli.process import (
    holding_pid_file,
    is_alive,
    kill_node,
    node_pid,
    start_node,
    stop_node,
    stop_nodes,
    terminated_as_exit,
)
from ledger.genesis import Role
from node.byzantine import ByzantineSpec, check_allowed
from node.client import wait_until_up
from node.config import NodeConfig
from node.faults import FAULTS_FILE, FaultInjector

fsync_option = click.option(
    "--fsync",
    is_flag=True,
    help="Every node forces each database commit to disk before what it records leaves it "
    "(SQLite synchronous=FULL), so a power cut loses nothing a node signed or reported "
    "committed. Without it a commit reaches the OS only: safe when a node's process dies, not "
    "when the machine loses power.",
)


@click.command()
@click.option(
    "--nodes",
    type=click.IntRange(min=4),
    default=4,
    show_default=True,
    help="Number of validators (n = 3f+1).",
)
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("cluster"),
    show_default=True,
    help="Directory to create the cluster in (made if missing; it must not hold one yet). "
    "Later commands take it as --dir.",
)
@click.option(
    "--chain-id",
    default="millchain-local",
    show_default=True,
    help="The chain's name (1 to 64 characters), covered by every signature.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address the nodes bind.")
@click.option(
    "--observers",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Non-voting nodes that follow the chain by fetching certified blocks and serve reads.",
)
@click.option(
    "--hosts",
    default=None,
    metavar="H0,H1,...",
    help="One address per validator, each binding its own (e.g. network namespaces).",
)
@click.option(
    "--port",
    type=int,
    default=None,
    help="With --hosts: the port every validator uses on its own host (default: a free one).",
)
@fsync_option
@guarded
def init(
    nodes: int,
    directory: Path,
    chain_id: str,
    host: str,
    observers: int,
    hosts: str | None,
    port: int | None,
    fsync: bool,
) -> None:
    """Create keys, a genesis and one config per node, on free ports, in DIR."""
    layout = init_cluster(
        directory,
        nodes=nodes,
        chain_id=chain_id,
        host=host,
        observers=observers,
        hosts=None if hosts is None else [h.strip() for h in hosts.split(",") if h.strip()],
        port=port,
        fsync=fsync,
    )
    genesis = layout.genesis()
    click.echo(f"initialised {nodes} validators (f = {genesis.f}) in {directory}")
    for validator in genesis.validators:
        click.echo(f"  {validator.name}  {validator.url}")
    for name in layout.node_names()[len(genesis.validators) :]:
        click.echo(f"  {name}  {layout.config(name).url}  (observer)")
    names = ", ".join(identity.name for identity in genesis.identities)
    click.echo(f"identities (sign as one with --as NAME): {names}")
    click.echo(f"next: millchain cluster up --dir {directory}")


@click.group()
def cluster() -> None:
    """Start, stop, inspect and break a local cluster.

    `up`, `down`, `restart` and `kill` hold DIR's lock (DIR/cluster.lock) while they run:
    another of them on the same DIR meanwhile fails at once, naming the one that holds it."""


def start_all(layout: ClusterDir, timeout_s: float) -> None:
    """Start every node not running yet and wait until each answers as itself."""
    start_nodes(layout, layout.node_names(), timeout_s)


def start_nodes(
    layout: ClusterDir, names: Sequence[str], timeout_s: float, *, stop_if_slow: bool = True
) -> None:
    """Start the named nodes that are not running and wait until each of them answers as
    itself. Every config is read before anything starts; if the wait fails (a node exits, its
    port answers as another node, the deadline passes), the nodes started here are stopped
    again and LayoutError says what went wrong. With `stop_if_slow` False, nodes still running
    but not answering by the deadline are left running (NotAnsweringError names them)."""
    for name in names:
        layout.config(name)
    started: dict[str, int] = {}
    launched_ms: dict[str, int] = {}
    try:
        for name in names:
            if node_pid(layout, name) is None:
                launched_ms[name] = int(time.time() * 1000)
                started[name] = start_node(layout, name)

        def none_exited() -> None:
            for name, pid in started.items():
                if not is_alive(pid):
                    raise LayoutError(f"{name} exited before answering{_output_tail(layout, name)}")

        run(_wait_answering(layout, names, timeout_s, none_exited, launched_ms))
    except NotAnsweringError:
        if stop_if_slow:
            stop_nodes(layout, list(started))
        raise
    except BaseException:
        stop_nodes(layout, list(started))
        raise


class NotAnsweringError(LayoutError):
    """Nodes whose processes run but that did not answer as themselves by a deadline."""

    def __init__(self, names: Sequence[str], timeout_s: float) -> None:
        self.names = list(names)
        self.timeout_s = timeout_s
        super().__init__(f"{', '.join(self.names)} not answering after {timeout_s:g} s")


async def _wait_answering(
    layout: ClusterDir,
    names: Sequence[str],
    timeout_s: float,
    check: Callable[[], None],
    launched_ms: dict[str, int],
) -> None:
    """Until every named node answers as itself (NotAnsweringError past `timeout_s`, naming the
    nodes that still do not answer). The deadline is kept here, not by wait_until_up, so that
    one passing is told apart from a port that answers as another node (ClientError).

    A node launched here (at `launched_ms`, wall clock) must answer as a process started since:
    one that was running before holds its port (another cluster's node of the same name, its
    ports handed out again while this cluster was down), and the node launched here cannot
    bind it and exits."""
    urls = {layout.config(name).url: name for name in names}
    try:
        answered = await asyncio.wait_for(
            wait_until_up(list(urls), math.inf, names=urls, check=check), timeout_s
        )
    except TimeoutError:
        rows = await collect_status(layout, names)
        silent = [row["name"] for row in rows if not row["alive"]]
        raise NotAnsweringError(silent or names, timeout_s) from None
    for url, status in answered.items():
        name = urls[url]
        since_ms = launched_ms.get(name)
        started_ms = status.get("started_ms")
        if since_ms is not None and (not isinstance(started_ms, int) or started_ms < since_ms):
            raise LayoutError(
                f"{url} answers as {name}, but from a process running since before {name} "
                "was started: another process (another cluster's node?) holds its port"
            )


def _output_tail(layout: ClusterDir, name: str, lines: int = 5) -> str:
    """The last lines a node process printed (where it says why it stopped), or ""."""
    path = layout.node_dir(name) / "stdout.log"
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    tail = [line for line in text.splitlines() if line.strip()][-lines:]
    return f"; the end of {path}:\n" + "\n".join(tail) if tail else ""


# A node process needs a moment to start and open its store before it can answer.
START_TIMEOUT = FiniteFloatRange(min=1)


@cluster.command()
@dir_option
@click.option(
    "--timeout",
    "timeout_s",
    type=START_TIMEOUT,
    default=30.0,
    show_default=True,
    help="Seconds to wait for every node to answer (at least 1); past it, up stops the nodes "
    "it started.",
)
@guarded
def up(directory: Path, timeout_s: float) -> None:
    """Start every node in the background and wait until all answer."""
    layout = layout_of(directory)
    with (
        holding_cluster_lock(layout, "millchain cluster up"),
        err_console.status(f"starting {len(layout.node_names())} nodes, waiting until all answer"),
    ):
        start_all(layout, timeout_s)
    click.echo(f"{len(layout.node_names())} nodes up; logs in {directory}/nodes/*/node.log")
    _warn_kept_faults(layout, layout.node_names(), directory)


@cluster.command()
@dir_option
@guarded
def down(directory: Path) -> None:
    """Stop every node: SIGTERM to all at once, SIGKILL to any still running 10 s later."""
    layout = layout_of(directory)
    with holding_cluster_lock(layout, "millchain cluster down"):
        stopped = stop_nodes(layout, layout.node_names())
    click.echo(f"stopped {len(stopped)} node(s)" + (f": {', '.join(stopped)}" if stopped else ""))


STATUS_ERROR_MAX = 120  # characters of a node's error answer shown
# What `cluster status` shows of each node's /status, in this order; None where unknown.
STATUS_FIELDS: dict[str, str] = {
    "height": "height",
    "head": "head",
    "state_digest": "state_digest",
    "view": "view",
    "primary": "primary_name",
    "mempool": "mempool",
    "halted": "halted",
    "role": "role",
}


async def collect_status(
    layout: ClusterDir, names: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """A row per node (the named ones, or all): name, url, pid, alive, error and the
    STATUS_FIELDS, every row with the same keys. `alive` is true when the node answered its
    status; `error` is what it answered instead (an error status, say), None when it answered
    its status or nothing at all."""

    async def one(session: aiohttp.ClientSession, name: str) -> dict[str, Any]:
        config = layout.config(name)
        row: dict[str, Any] = {"name": name, "url": config.url, "pid": node_pid(layout, name)}
        unknown = dict.fromkeys(STATUS_FIELDS)
        try:
            async with session.get(config.url + "/status") as response:
                text = await response.text(errors="replace")
                code = response.status
        except (aiohttp.ClientError, TimeoutError):
            return {**row, "alive": False, "error": None, **unknown}
        status = _status_document(code, text)
        if isinstance(status, str):
            return {**row, "alive": False, "error": status, **unknown}
        return {
            **row,
            "alive": True,
            "error": None,
            **{key: status.get(field) for key, field in STATUS_FIELDS.items()},
        }

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        chosen = layout.node_names() if names is None else names
        return list(await asyncio.gather(*(one(session, n) for n in chosen)))


def _status_document(code: int, text: str) -> dict[str, Any] | str:
    """A node's /status answer as its map, or a line saying what it answered instead."""
    try:
        document = json.loads(text)
    except ValueError:
        document = None
    if code != 200:
        error = document.get("error") if isinstance(document, dict) else None
        detail = str(error) if error is not None else " ".join(text.split())
        return f"status {code}: {detail[:STATUS_ERROR_MAX]}"
    if not isinstance(document, dict):
        return f"/status answered no JSON object: {' '.join(text.split())[:STATUS_ERROR_MAX]}"
    return document


@cluster.command()
@dir_option
@json_option
@guarded
def status(directory: Path, as_json: bool) -> None:
    """Each node's process id, height, head, state digest, view and primary: DOWN where a node
    does not answer, ERROR where it answers with an error (shown below the table). The pid is
    that of the node's live process in DIR (started by `cluster up` or `node run`), which
    `cluster down` stops; a node that answers without one is named below the table. With
    --json, every node has the same keys (null where unknown) and `error` holds such an
    answer."""
    rows = run(collect_status(layout_of(directory)))
    if as_json:
        print_json(rows)
        return
    status_table("cluster", rows, with_url=True, with_pid=True)
    elsewhere = [r["name"] for r in rows if r["alive"] and r["pid"] is None]
    if elsewhere:
        click.echo(
            f"{', '.join(elsewhere)}: answering, but no pid file in {directory} names a live "
            "process of it (it runs on another host, or was started another way), so "
            "`cluster down` cannot stop it"
        )


def status_table(
    title: str, rows: list[dict[str, Any]], *, with_url: bool = False, with_pid: bool = False
) -> None:
    """The cluster as a table: a row per node (observers marked), DOWN where one does not
    answer, ERROR where it answers with an error (which follows the table); with_pid, the id
    of its live process ("-" for none)."""
    columns = ["node", "url", "pid", "alive", "height", "head", "state digest", "view", "primary"]
    shown = {"url": with_url, "pid": with_pid}
    print_table(
        title,
        [c for c in columns if shown.get(c, True)],
        [
            [
                r["name"] + (" (observer)" if r.get("role") == "observer" else ""),
                *([r["url"]] if with_url else []),
                *(["-" if r["pid"] is None else r["pid"]] if with_pid else []),
                "yes" if r["alive"] else ("DOWN" if r["error"] is None else "ERROR"),
                r["height"],
                short(r["head"]),
                short(r["state_digest"]),
                r["view"],
                r["primary"],
            ]
            for r in rows
        ],
    )
    for r in rows:
        if r["error"] is not None:
            click.echo(f"{r['name']}: {r['error']}")


@cluster.command()
@click.argument("node")
@dir_option
@guarded
def kill(node: str, directory: Path) -> None:
    """SIGKILL one node, as a crash would."""
    layout = layout_of(directory)
    layout.config(node)
    with holding_cluster_lock(layout, f"millchain cluster kill {node}"):
        killed = kill_node(layout, node)
    if not killed:
        fail(f"{node} is not running")
    click.echo(f"killed {node}")


@cluster.command()
@click.argument("node")
@dir_option
@click.option(
    "--timeout",
    "timeout_s",
    type=START_TIMEOUT,
    default=30.0,
    show_default=True,
    help="Seconds to wait for the node to answer (at least 1); a node still starting then is "
    "left running, and restart exits with status 1.",
)
@guarded
def restart(node: str, directory: Path, timeout_s: float) -> None:
    """Start a stopped or killed node again (stopping it first if it runs)."""
    layout = layout_of(directory)
    layout.config(node)  # an unknown name stops nothing
    try:
        with holding_cluster_lock(layout, f"millchain cluster restart {node}"):
            stop_node(layout, node)
            start_nodes(layout, [node], timeout_s, stop_if_slow=False)
    except NotAnsweringError:
        pid = node_pid(layout, node)
        if pid is None:
            fail(f"{node} exited before answering{_output_tail(layout, node)}")
        fail(
            f"{node} started (pid {pid}) but is not answering after "
            f"{timeout_s:g} s; it is left running (see {layout.log_file(node)}; "
            "`millchain cluster status` shows when it answers)"
        )
    click.echo(f"restarted {node}")
    _warn_kept_faults(layout, [node], directory)


def _warn_kept_faults(layout: ClusterDir, names: Sequence[str], directory: Path) -> None:
    """Say which of the started nodes came back with fault rules kept from before (a node keeps
    its rules across restarts, as a network's faults outlive a process: node/faults.py)."""
    kept = []
    for name in names:
        rules = FaultInjector.kept_at(layout.config(name).data_dir / FAULTS_FILE).rules
        if rules:
            links = ", ".join(
                f"{peer} ({'cut' if rule.blocked else 'faulty'})"
                for peer, rule in sorted(rules.items())
            )
            kept.append(f"{name} to {links}")
    if kept:
        click.echo(
            f"fault rules kept from before are in force: {'; '.join(kept)} (`millchain cluster "
            f"faults --dir {directory}` shows them, `--heal` removes them)",
            err=True,
        )


@click.group(name="node")
def node_group() -> None:
    """Run a single node."""


@node_group.command(name="run")
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    required=True,
    help="The node's node.json.",
)
@click.option(
    "--byzantine",
    "byzantine_spec",
    metavar="MODE[=RATE]",
    default=None,
    help=(
        "TEST CLUSTERS ONLY, refused unless MILLCHAIN_ALLOW_BYZANTINE=1: make this validator lie "
        "(equivocate, conflicting-votes, invalid-blocks, flood[=MSGS_PER_S], "
        "withhold[=FRACTION]); see node/byzantine.py."
    ),
)
@click.option(
    "--byzantine-seed", default=0, show_default=True, help="Seed of the byzantine choices."
)
@guarded
def node_run(config_file: Path, byzantine_spec: str | None, byzantine_seed: int) -> None:
    """Run one node in the foreground until SIGTERM or Ctrl-C.

    Its process id goes in node.pid beside the config file, as for the nodes `cluster up`
    starts, so that `cluster down`, `kill`, `restart` and `status` of its cluster directory
    find it; it refuses to start while another process runs the same node.

    The config file also sets the node's HTTP limits: rate_limit_per_s and rate_limit_burst
    (per client address), idle_timeout_s, body_timeout_s, and an optional admin_token that
    opens the admin API to other hosts than loopback."""
    from node.main import run_node  # noqa: PLC0415  (keeps CLI start-up light)

    byzantine = None
    if byzantine_spec is not None:
        check_allowed()
        byzantine = ByzantineSpec.parse(byzantine_spec, seed=byzantine_seed)
    config = NodeConfig.load(config_file)
    with holding_pid_file(config_file, config.name) as pid_file:
        click.echo(
            f"{config.name} serving {config.url}; log: {config.log_file}; pid file: {pid_file}"
        )
        if byzantine is not None:
            err_console.print(f"[bold red]BYZANTINE[/] {config.name}: {byzantine.mode} (test-only)")
        run_node(config, byzantine)


async def wait_converged(layout: ClusterDir, timeout_s: float) -> list[dict[str, Any]]:
    """Poll until every live node reports the same height and state digest (or the deadline)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        rows = await collect_status(layout)
        live = [r for r in rows if r["alive"]]
        if live and len({(r["height"], r["state_digest"]) for r in live}) == 1:
            return rows
        if loop.time() > deadline:
            return rows
        await asyncio.sleep(0.05)


@contextlib.contextmanager
def temporary_cluster(
    prefix: str,
    *,
    nodes: int = 4,
    extra_identities: Sequence[tuple[str, tuple[Role, ...]]] = (),
    timeout_s: float = 60,
    fsync: bool = False,
) -> Iterator[ClusterDir]:
    """A cluster in a new temporary folder, started, and stopped and removed afterwards (also
    when the command is interrupted with Ctrl-C or SIGTERM). `fsync`: see init_cluster."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    layout: ClusterDir | None = None
    try:
        with terminated_as_exit():
            layout = init_cluster(
                root / "cluster", nodes=nodes, extra_identities=extra_identities, fsync=fsync
            )
            start_all(layout, timeout_s)
            yield layout
    finally:
        try:
            if layout is not None:
                stop_nodes(layout, layout.node_names())
        finally:
            shutil.rmtree(root, ignore_errors=True)
