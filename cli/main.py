"""The `millchain` command.

Subcommands are imported when they are used, not when `millchain` starts: the oracle's commands
pull in scikit-learn and matplotlib, which take seconds to import, and every node process starts
through `millchain node run`.
"""

from __future__ import annotations

import faulthandler
import importlib
import signal
import sys
from collections.abc import Callable
from typing import Any, Final

import click


def _attr(module: str, name: str) -> Any:
    return getattr(importlib.import_module(module), name)


def _cluster() -> click.Command:
    group: click.Group = _attr("cli.cluster_cmd", "cluster")
    group.add_command(_attr("cli.faults_cmd", "faults"))
    return group


def _oracle() -> click.Command:
    group: click.Group = _attr("cli.oracle_cmd", "oracle")
    group.add_command(_attr("cli.oracle_chain_cmd", "register"))
    group.add_command(_attr("cli.oracle_chain_cmd", "verify"))
    return group


def _machine() -> click.Command:
    group: click.Group = _attr("cli.factory_cmd", "machine_group")
    group.add_command(_attr("cli.machine_sim", "simulate"))
    return group


def _factory(name: str) -> Callable[[], click.Command]:
    def load() -> click.Command:
        commands: list[click.Command] = _attr("cli.factory_cmd", "factory_commands")
        return next(c for c in commands if c.name == name)

    return load


# name -> how to load it (each loader is called at most once per process).
COMMANDS: Final[dict[str, Callable[[], click.Command]]] = {
    "init": lambda: _attr("cli.cluster_cmd", "init"),
    "cluster": _cluster,
    "node": lambda: _attr("cli.cluster_cmd", "node_group"),
    "tx": lambda: _attr("cli.client_cmd", "tx_command"),
    "query": lambda: _attr("cli.client_cmd", "query"),
    "block": lambda: _attr("cli.client_cmd", "block_command"),
    "demo": lambda: _attr("cli.demo", "demo"),
    "bench": lambda: _attr("cli.bench", "bench"),
    "sim": lambda: _attr("cli.sim_cmd", "sim"),
    "scenario": lambda: _attr("cli.scenario.command", "scenario"),
    "oracle": _oracle,
    "explorer": lambda: _attr("cli.explorer_cmd", "explorer"),
    "catalog": _factory("catalog"),
    "order": _factory("order"),
    "inventory": _factory("inventory"),
    "machine": _machine,
    "workorder": _factory("workorder"),
    "history": _factory("history"),
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._loaded: dict[str, click.Command] = {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        if cmd_name not in self._loaded:
            command = COMMANDS[cmd_name]()
            if command.name != cmd_name:
                raise RuntimeError(f"command {cmd_name!r} loaded as {command.name!r}")
            self._loaded[cmd_name] = command
        return self._loaded[cmd_name]


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="millchain")
def main() -> None:
    """millchain: a permissioned PBFT blockchain simulator for the factory floor.

    Start with `millchain demo`, or `millchain init --dir DIR`, then
    `millchain cluster up --dir DIR`.

    `kill -USR1 PID` makes a millchain process that seems stuck print where each of its threads
    is to its stderr (a node started by `cluster up` prints to nodes/NAME/stdout.log).
    """
    _dump_stacks_on_sigusr1()


def _dump_stacks_on_sigusr1() -> None:
    try:
        sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        return  # stderr is no file (run in-process with its output captured): nowhere to write
    faulthandler.register(signal.SIGUSR1, all_threads=True)
