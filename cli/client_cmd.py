"""Client commands: `millchain tx` and `millchain query`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from cli.common import (
    FiniteFloatRange,
    dir_option,
    guarded,
    json_option,
    layout_of,
    parse_assignments,
    print_json,
    run,
)
from cli.layout import ClusterDir
from ledger.block import Block
from ledger.encoding import decode, encode
from ledger.errors import MillchainError
from node.client import (
    ClientError,
    NodeClient,
    PathSegmentError,
    path_segment,
    wait_committed_anywhere,
)
from node.protocol import PROTOCOL_HEADER, PROTOCOL_VERSION
from node.sync import SyncError, verify_blocks

AS_HELP = (
    "Identity whose key signs: a client identity (keys in DIR/identities), or a validator's "
    "oracle identity oracle-NODE (key in DIR/nodes/NODE, which that validator's oracle also "
    "signs with)."
)
node_option = click.option(
    "--node", "node_name", default=None, help="Node to talk to (default: the first that answers)."
)


async def reachable_client(layout: ClusterDir, node_name: str | None) -> NodeClient:
    """A client for the named node, or for the first node that answers."""
    names = [node_name] if node_name else layout.node_names()
    errors = []
    for name in names:
        client = NodeClient(layout.config(name).url)
        await client.__aenter__()
        try:
            await client.status()
        except ClientError as exc:
            errors.append(f"{name}: {exc}")
            await client.__aexit__(None, None, None)
            continue
        return client
    raise ClientError("no node answered: " + "; ".join(errors))


async def submit(
    layout: ClusterDir,
    *,
    identity: str,
    contract: str,
    method: str,
    args: dict[str, Any],
    wait: bool,
    node_name: str | None,
    timeout_s: float = 30.0,
) -> dict[str, Any]:
    keys = layout.identity_keys(identity)
    chain_id = layout.genesis().chain_id
    client = await reachable_client(layout, node_name)
    try:
        tx = await client.sign_and_submit(
            keys, chain_id=chain_id, contract=contract, method=method, args=args
        )
    finally:
        await client.__aexit__(None, None, None)
    if not wait:
        return {"hash": tx.hash.hex(), "status": "submitted"}
    # Every node is asked: the one that took it may be paused, cut off or behind.
    urls = [layout.config(name).url for name in layout.node_names()]
    return await wait_committed_anywhere(urls, tx.hash.hex(), timeout_s)


def print_receipt(result: dict[str, Any]) -> None:
    if result.get("status") != "committed":
        click.echo(f"submitted {result['hash']}")
        return
    receipt = result["receipt"]
    outcome = "ok" if receipt["ok"] else f"FAILED: {receipt['error']}"
    if not receipt["ok"] and result.get("settled") is False:
        # It failed a gate without using its nonce (a block took it before its turn): a later
        # block may still run it, so this is not the last word (see node/api.py get_tx).
        outcome += " (not settled: its nonce is unused, and a later block may still run it)"
    click.echo(f"committed {result['tx']['hash']} at height {result['height']}: {outcome}")
    if receipt["ok"] and receipt.get("result") is not None:
        click.echo(f"  result: {receipt['result']}")
    for event in receipt.get("events", []):
        click.echo(
            f"  event {event['contract']}.{event['kind']} {event['subject']} {event['data']}"
        )


wait_timeout_option = click.option(
    "--timeout",
    "timeout_s",
    type=FiniteFloatRange(min=0, min_open=True),
    default=30.0,
    show_default=True,
    help="Seconds --wait waits for the commit.",
)


@click.command(name="tx")
@click.argument("contract")
@click.argument("method")
@click.argument("assignments", nargs=-1)
@dir_option
@click.option("--as", "identity", required=True, help=AS_HELP)
@click.option("--wait", is_flag=True, help="Block until committed and print the receipt.")
@wait_timeout_option
@node_option
@json_option
@guarded
def tx_command(
    contract: str,
    method: str,
    assignments: tuple[str, ...],
    directory: Path,
    identity: str,
    wait: bool,
    timeout_s: float,
    node_name: str | None,
    as_json: bool,
) -> None:
    """Sign and submit CONTRACT.METHOD with key=value arguments.

    Values: integers, true/false, 0x-prefixed hex as bytes, anything else as a string;
    key:=JSON for lists, maps or a quoted string. Example:

        millchain tx inventory receive item=steel location=main qty=100 --as supplier --wait
    """
    args = parse_assignments(assignments)
    layout = layout_of(directory)
    result = run(
        submit(
            layout,
            identity=identity,
            contract=contract,
            method=method,
            args=args,
            wait=wait,
            node_name=node_name,
            timeout_s=timeout_s,
        )
    )
    if as_json:
        print_json(result)
    else:
        print_receipt(result)
    if wait and not result["receipt"]["ok"]:
        raise SystemExit(1)


async def query_state(layout: ClusterDir, contract: str, path: list[str], node: str | None) -> Any:
    client = await reachable_client(layout, node)
    try:
        return await client.query(contract, path)
    finally:
        await client.__aexit__(None, None, None)


def _segments(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """Refuse, before any request, text that cannot be one segment of the state URL."""
    for part in (value,) if isinstance(value, str) else value:
        try:
            path_segment(part)
        except PathSegmentError as exc:
            raise click.BadParameter(str(exc), ctx=ctx, param=param) from exc
    return value


@click.command()
@click.argument("contract", callback=_segments)
@click.argument("path", nargs=-1, callback=_segments)
@dir_option
@node_option
@json_option
@guarded
def query(
    contract: str, path: tuple[str, ...], directory: Path, node_name: str | None, as_json: bool
) -> None:
    """Read a contract's state at the head: `millchain query inventory steel main`.

    Each PATH argument is one key, sent as it is written ("#", "?" and "/" included); keys
    that a URL cannot carry ('', '.', '..') are refused."""
    try:
        value = run(query_state(layout_of(directory), contract, list(path), node_name))
    except MillchainError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        print_json(value)
    else:
        _print_tree(value, 0)


def _print_tree(value: Any, depth: int) -> None:
    pad = "  " * depth
    if isinstance(value, dict):
        if not value:
            click.echo(pad + "(empty)")
        for key, item in value.items():
            if isinstance(item, (dict, list)):
                click.echo(f"{pad}{key}:")
                _print_tree(item, depth + 1)
            else:
                click.echo(f"{pad}{key}: {item}")
    elif isinstance(value, list):
        for item in value:
            _print_tree(item, depth)
    else:
        click.echo(pad + str(value))


async def _fetch_block_raw(layout: ClusterDir, height: int, node: str | None) -> bytes:
    client = await reachable_client(layout, node)
    try:
        async with client.session.get(
            f"{client.url}/peer/blocks",
            params={"from": height, "to": height},
            headers={PROTOCOL_HEADER: str(PROTOCOL_VERSION)},
        ) as response:
            raw = await response.read()
            if response.status != 200:
                raise click.ClickException(
                    f"{client.url}/peer/blocks answered {response.status}: "
                    f"{raw[:300].decode(errors='replace')}"
                )
            return raw
    finally:
        await client.__aexit__(None, None, None)


@click.command(name="block")
@click.argument("height", type=click.IntRange(min=1))
@dir_option
@node_option
@json_option
@guarded
def block_command(height: int, directory: Path, node_name: str | None, as_json: bool) -> None:
    """Show block HEIGHT and check its commit certificate offline against the genesis."""
    layout = layout_of(directory)
    genesis = layout.genesis()
    raw = run(_fetch_block_raw(layout, height, node_name))
    entries = decode(raw)
    if not entries:
        raise click.ClickException(f"no block at height {height} yet")
    stored = run(_block_json(layout, height, node_name))
    try:
        checked = verify_blocks(
            genesis,
            encode(entries[:1]),
            expect_height=height,
            prev_hash=Block.from_wire(entries[0][0]).header.prev_hash,
        )
    except SyncError as exc:
        raise click.ClickException(f"block {height} does NOT verify: {exc}") from exc
    block, certificate = checked[0]
    stored = _certified_view(stored, block)
    signers = [genesis.validators[i].name for i, _ in certificate.commits]
    verdict = {
        "verified": True,
        "signers": signers,
        "quorum": genesis.quorum,
        "validators": genesis.n,
    }
    if as_json:
        print_json({**stored, "certificate_check": verdict})
        return
    header = stored["header"]
    click.echo(f"block {height}  {header['hash']}")
    click.echo(f"  parent     {header['prev_hash']}")
    click.echo(f"  proposer   {genesis.validators[header['proposer']].name}  view {header['view']}")
    click.echo(f"  txs        {len(block.txs)}")
    click.echo(f"  state      {stored['state_digest_after']}")
    click.echo(
        f"  certificate verified offline: {len(signers)} of {genesis.n} validators signed "
        f"({', '.join(signers)}; quorum {genesis.quorum})"
    )
    for tx in stored["txs"]:
        receipt = tx["receipt"] or {}
        outcome = "ok" if receipt.get("ok") else f"failed: {receipt.get('error')}"
        click.echo(f"  - {tx['hash'][:16]} {tx['contract']}.{tx['method']} {tx['args']} {outcome}")


def _certified_view(stored: Any, block: Block) -> dict[str, Any]:
    """The node's JSON answer for `block` with what the certificate covers (the header and the
    transactions) taken from the verified block, not from that answer, which nothing checks;
    receipts and the state after come from the answer. ClickException if the answer is about
    another block (other hashes)."""
    header = stored.get("header") if isinstance(stored, dict) else None
    txs = stored.get("txs") if isinstance(stored, dict) else None
    hashes = [t.get("hash") if isinstance(t, dict) else None for t in txs or []]
    if (
        not isinstance(header, dict)
        or header.get("hash") != block.hash.hex()
        or not isinstance(txs, list)
        or hashes != [tx.hash.hex() for tx in block.txs]
    ):
        raise click.ClickException(
            f"the node answered block {block.header.height} with another block than the one "
            "its certificate covers; ask another node with --node"
        )
    return {
        **stored,
        "header": block.header.summary(),
        "txs": [{**t, **tx.summary()} for t, tx in zip(txs, block.txs, strict=True)],
    }


async def _block_json(layout: ClusterDir, height: int, node: str | None) -> dict[str, Any]:
    client = await reachable_client(layout, node)
    try:
        return await client.block(height)
    finally:
        await client.__aexit__(None, None, None)
