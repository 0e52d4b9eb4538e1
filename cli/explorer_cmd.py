"""`millchain explorer`: print the URL of a node's explorer page and open it in a browser."""

from __future__ import annotations

import webbrowser
from pathlib import Path

import click

from cli.client_cmd import node_option, reachable_client
from cli.common import dir_option, fail, guarded, layout_of, run
from cli.layout import ClusterDir
from node.client import ClientError


async def explorer_url(layout: ClusterDir, node_name: str | None) -> str:
    """The explorer page of the named node, or of the first node that answers."""
    client = await reachable_client(layout, node_name)
    try:
        page = f"{client.url}/explorer/"
        async with client.session.get(page) as response:
            if response.status != 200:
                raise ClientError(
                    f"{client.url} answers but serves no explorer page "
                    f"(GET /explorer/ gave {response.status})"
                )
        return page
    finally:
        await client.__aexit__(None, None, None)


@click.command()
@dir_option
@node_option
@click.option("--no-open", is_flag=True, help="Only print the URL; do not start a browser.")
@guarded
def explorer(directory: Path, node_name: str | None, no_open: bool) -> None:
    """Print the URL of the live explorer (cluster, blocks, orders, inventory, machines, work
    orders, view changes) and open it in the default browser."""
    try:
        url = run(explorer_url(layout_of(directory), node_name))
    except ClientError as exc:
        fail(f"{exc}; start the cluster with `millchain cluster up --dir {directory}`")
        return
    click.echo(url)
    if not no_open and not webbrowser.open(url):
        click.echo("no browser could be started here; open the URL above yourself", err=True)
