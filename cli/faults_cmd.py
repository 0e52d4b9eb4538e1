"""`millchain cluster faults`: per-peer fault injection on a running cluster, through each node's
admin API (`/admin/faults`, node/faults.py): from loopback, or with the `admin_token` of the
node's node.json for a node on another address.

Before it changes anything the command asks every node it will change for its rules, and checks
that the node answering at each address is this cluster's (its name, chain and peers' addresses:
while a cluster is down, another one may hold its ports). A change that fails or is interrupted
half-way is undone on the nodes it reached."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
import click

from cli.common import (
    FiniteFloatRange,
    dir_option,
    fail,
    guarded,
    json_option,
    layout_of,
    print_json,
    run,
)
from cli.common import table as print_table
from cli.layout import ClusterDir
from cli.process import node_pid
from node.faults import FAULTS_FILE, FaultInjector

ADMIN_TIMEOUT_S = 5.0
Posts = list[tuple[str, dict[str, Any] | None]]


def parse_partition(spec: str, validators: list[str]) -> list[list[str]]:
    """`node0,node1/node2,node3` -> the groups; every validator in exactly one group."""
    groups = [
        [name.strip() for name in part.split(",") if name.strip()] for part in spec.split("/")
    ]
    if len(groups) < 2 or any(not group for group in groups):
        raise click.BadParameter(
            f"expected at least two non-empty groups like node0/node1,node2,node3, got {spec!r}",
            param_hint="--partition",
        )
    named = [name for group in groups for name in group]
    unknown = sorted(set(named) - set(validators))
    if unknown:
        raise click.BadParameter(
            f"unknown node(s) {', '.join(unknown)}; validators are {', '.join(validators)}",
            param_hint="--partition",
        )
    if len(named) != len(set(named)):
        raise click.BadParameter("a node appears in two groups", param_hint="--partition")
    missing = [name for name in validators if name not in named]
    if missing:
        raise click.BadParameter(
            f"every validator must be in a group; missing {', '.join(missing)}",
            param_hint="--partition",
        )
    return groups


def partition_plan(groups: list[list[str]]) -> dict[str, list[str]]:
    """For each node, the peers it must stop sending to (everyone outside its group)."""
    return {
        name: [peer for other in groups if other is not group for peer in other]
        for group in groups
        for name in group
    }


def _headers(layout: ClusterDir, name: str) -> dict[str, str]:
    """What lets the CLI in to a node's admin API from another address than loopback."""
    token = layout.config(name).admin_token
    return {} if token is None else {"Authorization": f"Bearer {token}"}


async def _admin(
    session: aiohttp.ClientSession, layout: ClusterDir, name: str, body: dict[str, Any] | None
) -> dict[str, Any]:
    method = "GET" if body is None else "POST"
    url = layout.config(name).url
    async with session.request(
        method, f"{url}/admin/faults", json=body, headers=_headers(layout, name)
    ) as response:
        answer: dict[str, Any] = await response.json(content_type=None)
        if response.status != 200:
            raise click.ClickException(f"{url}: {response.status}: {answer.get('error', answer)}")
        return answer


def _session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=ADMIN_TIMEOUT_S))


async def _apply(layout: ClusterDir, posts: Posts, reached: list[str]) -> list[Any]:
    """Send each (node, body) in order (a GET for None); the first node that does not answer
    ends it, named. `reached` collects the nodes sent a change so far (the one in flight too)."""
    answers: list[Any] = []
    async with _session() as session:
        for name, body in posts:
            if body is not None and name not in reached:
                reached.append(name)
            try:
                answers.append(await _admin(session, layout, name, body))
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise click.ClickException(
                    f"{name} did not answer: {exc or type(exc).__name__}"
                ) from exc
    return answers


async def _post_each(layout: ClusterDir, posts: Posts) -> list[str]:
    """Send every (node, body), going on past a node that fails; the nodes that failed."""
    failed: list[str] = []
    async with _session() as session:
        for name, body in posts:
            if name in failed:
                continue
            try:
                await _admin(session, layout, name, body)
            except (aiohttp.ClientError, TimeoutError, ValueError, click.ClickException):
                failed.append(name)
    return failed


def _stranger(layout: ClusterDir, name: str, status: Any) -> str | None:
    """Why the node answering at `name`'s address is not this cluster's `name`, or None."""
    genesis = layout.genesis()
    expected = {v.name: v.url for v in genesis.validators if v.name != name}
    peers = status.get("peers") if isinstance(status, dict) else None
    shown = (
        {p.get("name"): p.get("url") for p in peers if isinstance(p, dict)}
        if isinstance(peers, list)
        else None
    )
    if (
        isinstance(status, dict)
        and status.get("name") == name
        and status.get("chain_id") == genesis.chain_id
        and shown == expected
    ):
        return None
    found = str(status.get("name") if isinstance(status, dict) else status)[:40]
    return (
        f"{layout.config(name).url} answers as {found!a} of another cluster (another chain, or "
        f"its peers at other addresses than {layout.root}'s genesis names)"
    )


async def _probe(
    layout: ClusterDir, names: list[str]
) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """Each named node's fault state, and for each node that gave none (or is another
    cluster's), why."""
    states: dict[str, dict[str, Any]] = {}
    silent: dict[str, str] = {}
    async with _session() as session:
        for name in names:
            try:
                async with session.get(layout.config(name).url + "/status") as response:
                    status = await response.json(content_type=None)
                stranger = _stranger(layout, name, status)
                if stranger is not None:
                    silent[name] = stranger
                    continue
                states[name] = await _admin(session, layout, name, None)
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                silent[name] = str(exc) or type(exc).__name__
            except click.ClickException as exc:
                silent[name] = exc.message
    return states, silent


def _restoring(state: dict[str, Any], *, seed: bool) -> list[dict[str, Any]]:
    """The changes that give a node back the rules (and, with `seed`, the seed) of `state`."""
    rules = [
        {"peer": link, **{key: rule[key] for key in RULE_FIELDS}}
        for link, rule in state["peers"].items()
        if any(rule[key] for key in RULE_FIELDS)
    ]
    return [{"clear": True}, *([{"seed": state["seed"]}] if seed else []), *rules]


def _undo(
    layout: ClusterDir, states: dict[str, dict[str, Any]], reached: Sequence[str], *, seed: bool
) -> None:
    """Put back what the nodes a failed or interrupted change reached had before, and say so."""
    if not reached:
        click.echo("no node was changed", err=True)
        return
    posts: Posts = [(n, body) for n in reached for body in _restoring(states[n], seed=seed)]
    failed = run(_post_each(layout, posts))
    undone = [name for name in reached if name not in failed]
    if undone:
        click.echo(f"undone on {', '.join(undone)}: their rules are as before", err=True)
    if failed:
        click.echo(
            f"could not undo the change on {', '.join(failed)} (no answer; it may not have "
            "reached them): see `millchain cluster faults`, or --heal",
            err=True,
        )


RULE_FIELDS = ("delay_ms", "jitter_ms", "loss", "duplicate", "blocked")


def _merged(current: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """A link's rule with the given settings changed and its others as they are."""
    return {key: current[key] if given[key] is None else given[key] for key in RULE_FIELDS}


@click.command(name="faults")
@dir_option
@click.option(
    "--node",
    "nodes",
    multiple=True,
    help="Node(s) whose outgoing links to change or show (default: every validator for a "
    "rule; every node, observers too, to show or heal).",
)
@click.option("--peer", default="*", show_default=True, help="The peer the rule is for.")
@click.option("--delay-ms", type=click.IntRange(0, 60_000), default=None, help="Delay per batch.")
@click.option(
    "--jitter-ms", type=click.IntRange(0, 60_000), default=None, help="Uniform +/- jitter."
)
@click.option("--loss", type=FiniteFloatRange(0, 1), default=None, help="Probability of loss.")
@click.option(
    "--dup", type=FiniteFloatRange(0, 1), default=None, help="Probability of a duplicate."
)
@click.option(
    "--block/--unblock",
    default=None,
    help="Cut the link, or join it again (one way; see --partition).",
)
@click.option("--seed", type=int, default=None, help="Reseed the nodes' fault generators.")
@click.option(
    "--partition",
    metavar="A,B/C,D",
    help="Cut every link between the groups (replacing the nodes' other rules).",
)
@click.option("--heal", is_flag=True, help="Remove every fault rule (of --node, or all nodes).")
@json_option
@guarded
def faults(
    directory: Path,
    nodes: tuple[str, ...],
    peer: str,
    delay_ms: int | None,
    jitter_ms: int | None,
    loss: float | None,
    dup: float | None,
    block: bool | None,
    seed: int | None,
    partition: str | None,
    heal: bool,
    as_json: bool,
) -> None:
    """Inject per-peer faults (delay, jitter, loss, duplication, cut links) into a running
    cluster, or show them. Rules apply to what a node sends to a peer. A setting given for a
    link keeps the link's other settings (0 sets 0); --heal clears them all.

    Showing and healing work on the nodes that answer and name those that do not (--json
    gives them null); healing exits with status 1 if a running node did not answer. Setting
    a rule, a partition or a seed changes nothing unless every node to change answers; one
    that fails or is interrupted (Ctrl-C) half-way is undone on the nodes it reached. A node
    whose address answers as another cluster's counts as not answering. A node on another
    address than loopback is reached with the admin_token of its node.json.

    \b
    millchain cluster faults --dir D                                # show every node's rules
    millchain cluster faults --dir D --node node1 --peer node2 --delay-ms 50 --loss 0.1
    millchain cluster faults --dir D --partition node0/node1,node2,node3
    millchain cluster faults --dir D --heal
    """
    layout = layout_of(directory)
    validators = layout.validator_names()
    for name in nodes:
        layout.config(name)
    given = {
        "delay_ms": delay_ms,
        "jitter_ms": jitter_ms,
        "loss": loss,
        "duplicate": dup,
        "blocked": block,
    }
    changes_rule = any(value is not None for value in given.values())
    if sum((partition is not None, heal, changes_rule)) > 1:
        fail("choose one of --partition, --heal, or a rule (--delay-ms, --loss, --block, ...)")
    if peer != "*" and peer not in validators:
        fail(f"--peer {peer!r} is no validator; validators are {', '.join(validators)}")
    default = validators if changes_rule or partition is not None else layout.node_names()
    targets = list(dict.fromkeys(nodes)) or default  # in order, each once
    if changes_rule and targets == [peer]:
        fail(f"{peer} has no link to itself; name other nodes with --node, or another --peer")
    if partition is None and not changes_rule and seed is None:
        _show_or_heal(layout, targets, heal=heal, as_json=as_json)
        return
    plan = None if partition is None else partition_plan(parse_partition(partition, validators))
    # Every node to change must answer first: a change refused half-way would leave some
    # nodes changed and others not.
    changed = list(dict.fromkeys([*targets, *(plan or {})]))
    states, silent = run(_probe(layout, changed))
    for name, why in silent.items():
        fail(f"{name} did not answer: {why}; no node was changed")
    posts: Posts = []
    if seed is not None:
        posts += [(name, {"seed": seed}) for name in targets]
    if plan is not None:
        posts += [(name, {"clear": True}) for name in plan]
        posts += [
            (name, {"peer": cut, "blocked": True}) for name, cuts in plan.items() for cut in cuts
        ]
    elif heal:
        posts += [(name, {"clear": True}) for name in targets]
    elif changes_rule:
        posts += [
            (name, {"peer": link, **_merged(rule, given)})
            for name in targets
            for link, rule in states[name]["peers"].items()
            if peer in ("*", link)
        ]
    reached: list[str] = []
    try:
        run(_apply(layout, posts, reached))
    except BaseException:  # a node stopped answering, Ctrl-C: no change half made
        _undo(layout, states, reached, seed=seed is not None)
        raise
    _show_or_heal(layout, targets, heal=False, as_json=as_json)


def _show_or_heal(layout: ClusterDir, targets: list[str], *, heal: bool, as_json: bool) -> None:
    """Show the targets' rules (clearing them first with `heal`) on the nodes that answer, and
    name those that do not."""
    states, silent = run(_probe(layout, targets))
    if heal:
        run(_apply(layout, [(name, {"clear": True}) for name in states], []))
        states, silent_after = run(_probe(layout, list(states)))
        silent |= silent_after
    if as_json:
        print_json({name: states.get(name) for name in targets})
    else:
        _print_rules(states)
    unhealed = []
    for name, why in silent.items():
        if node_pid(layout, name) is None:
            note = _kept_note(layout, name, heal=heal)
        else:
            note = f"did not answer: {why}" + ("; its rules are unchanged" if heal else "")
            unhealed.append(name)
        click.echo(f"{name} {note}", err=True)
    if heal and unhealed:
        raise click.ClickException(f"not healed: {', '.join(unhealed)}")


def _kept_note(layout: ClusterDir, name: str, *, heal: bool) -> str:
    """What a node that is not running starts with: the rules it keeps in its data directory
    (node/faults.py), which `heal` clears there, as it would clear them on the running node."""
    kept = FaultInjector.kept_at(layout.config(name).data_dir / FAULTS_FILE)
    if not kept.rules:
        return "not running; a node starts with no fault rules"
    if heal:
        kept.clear()
        return "not running; the fault rules it kept are cleared, so it starts with none"
    links = ", ".join(sorted(kept.rules))
    return f"not running; it starts again with the fault rules it keeps (to {links})"


def _print_rules(states: dict[str, dict[str, Any]]) -> None:
    rows = [
        [
            name,
            link,
            r["delay_ms"],
            r["jitter_ms"],
            r["loss"],
            r["duplicate"],
            "CUT" if r["blocked"] else "",
            r["counters"]["lost"],
            r["counters"]["blocked"],
        ]
        for name, state in states.items()
        for link, r in state["peers"].items()
    ]
    # The last two are the counters (counters.lost and counters.blocked in --json).
    columns = ["node", "to", "delay ms", "jitter ms", "loss", "dup", "blocked"]
    print_table("fault injection", [*columns, "lost batches", "blocked batches"], rows)
