"""The `millchain` command."""

from __future__ import annotations

import click

from cli.bench import bench
from cli.client_cmd import block_command, query, tx_command
from cli.cluster_cmd import cluster, init, node_group
from cli.demo import demo
from cli.explorer_cmd import explorer
from cli.factory_cmd import factory_commands, machine_group
from cli.faults_cmd import faults
from cli.machine_sim import simulate
from cli.oracle_chain_cmd import register, verify
from cli.oracle_cmd import oracle
from cli.scenario.command import scenario
from cli.sim_cmd import sim


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="millchain")
def main() -> None:
    """millchain: a permissioned PBFT blockchain simulator for the factory floor.

    Start with `millchain demo`, or `millchain init --dir DIR`, then
    `millchain cluster up --dir DIR`.
    """


main.add_command(init)
cluster.add_command(faults)
main.add_command(cluster)
main.add_command(node_group)
main.add_command(tx_command)
main.add_command(query)
main.add_command(block_command)
main.add_command(demo)
main.add_command(bench)
main.add_command(sim)
main.add_command(scenario)
oracle.add_command(register)
oracle.add_command(verify)
main.add_command(oracle)
main.add_command(explorer)
for command in factory_commands:
    main.add_command(command)
machine_group.add_command(simulate)
