"""Factory commands: catalog, orders, inventory, machines, work orders and subject history.

Friendly faces over `cli.client_cmd.submit` (sign, submit, optionally wait for the receipt) and
the node's read API (GET /state/..., GET /events/...). Every submitting command takes --dir,
--as (defaulting to the identity `millchain init` creates for the role that owns the method),
--wait, --node and --json; every reading command takes --dir, --node and --json.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from cli.client_cmd import (
    AS_HELP,
    node_option,
    print_receipt,
    query_state,
    reachable_client,
    submit,
    wait_timeout_option,
)
from cli.common import (
    INTEGER,
    dir_option,
    guarded,
    json_option,
    layout_of,
    print_json,
    run,
    short,
    table,
)
from cli.layout import ClusterDir
from contracts.catalog import CatalogContract
from contracts.errors import ExecutionError
from contracts.machine_state import READING
from contracts.machines import BASIS_POINTS
from contracts.order_state import OrderState
from contracts.schema import validate_args

F = TypeVar("F", bound=Callable[..., Any])


def submit_options(default_identity: str) -> Callable[[F], F]:
    """--dir, --as, --wait, --timeout, --node and --json for a command that submits."""

    def decorate(function: F) -> F:
        for option in reversed(
            [
                dir_option,
                click.option(
                    "--as",
                    "identity",
                    default=default_identity,
                    show_default=True,
                    help=AS_HELP,
                ),
                click.option(
                    "--wait", is_flag=True, help="Wait until committed; show the receipt."
                ),
                wait_timeout_option,
                node_option,
                json_option,
            ]
        ):
            function = option(function)
        return function

    return decorate


def read_options(function: F) -> F:
    for option in reversed([dir_option, node_option, json_option]):
        function = option(function)
    return function


def _send(opts: dict[str, Any], contract: str, method: str, args: dict[str, Any]) -> dict[str, Any]:
    """Submit one transaction with the common options; print and exit 1 on a failed receipt."""
    result = _submit_quietly(opts, contract, method, args)
    if opts["as_json"]:
        print_json(result)
    else:
        print_receipt(result)
    if opts["wait"] and not result["receipt"]["ok"]:
        raise SystemExit(1)
    return result


def _submit_quietly(
    opts: dict[str, Any], contract: str, method: str, args: dict[str, Any]
) -> dict[str, Any]:
    return run(
        submit(
            layout_of(opts["directory"]),
            identity=opts["identity"],
            contract=contract,
            method=method,
            args=args,
            wait=opts["wait"],
            node_name=opts["node_name"],
            timeout_s=opts["timeout_s"],
        )
    )


def _read(directory: Path, node_name: str | None, contract: str, *path: str) -> Any:
    return run(query_state(layout_of(directory), contract, list(path), node_name))


OPTION_FORM = "GROUP=CHOICE (e.g. finish=powder-coat)"


def _pairs(values: tuple[str, ...], what: str, form: str = "key=value") -> dict[str, str]:
    """`key=value` texts as a map; `what` names the option or argument in errors, `form` the
    shape expected (as its help text says it)."""
    parsed: dict[str, str] = {}
    for value in values:
        key, sep, text = value.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{value!r}: expected {form}", param_hint=what)
        if key in parsed:
            raise click.BadParameter(f"{key!r} given twice", param_hint=what)
        parsed[key] = text
    return parsed


def _reading(fields: tuple[str, ...]) -> dict[str, Any]:
    """A reading from `field=value` texts: integers, but quality (L, M or H) as it is."""
    reading: dict[str, Any] = {}
    for key, text in _pairs(fields, "FIELDS").items():
        if key not in READING.fields:
            raise click.BadParameter(
                f"unknown field {key!r}; expected some of {', '.join(READING.fields)}",
                param_hint="FIELDS",
            )
        if key == "quality":
            reading[key] = text
        elif INTEGER.match(text):
            reading[key] = int(text)
        else:
            raise click.BadParameter(f"{key}={text!r}: expected an integer", param_hint="FIELDS")
    return reading


# history


async def fetch_events(layout: ClusterDir, subject: str, node_name: str | None) -> Any:
    client = await reachable_client(layout, node_name)
    try:
        return await client.events(subject)
    finally:
        await client.__aexit__(None, None, None)


@click.command()
@click.argument("subject")
@read_options
@guarded
def history(subject: str, directory: Path, node_name: str | None, as_json: bool) -> None:
    """The events about SUBJECT, the newest 1,000 oldest first, with the block and transaction
    of each step.

    Subjects: order:ord-1, item:steel-sheet@main, machine:m1, workorder:wo-1, product:bracket,
    delivery:PO-7.
    """
    events = run(fetch_events(layout_of(directory), subject, node_name))
    if as_json:
        print_json(events)
        return
    if not events:
        click.echo(f"no events about {subject}")
        return
    table(
        f"history of {subject}",
        ["height", "tx", "event", "data"],
        [
            [e["height"], short(e["tx_hash"]), f"{e['contract']}.{e['kind']}", _compact(e["data"])]
            for e in events
        ],
    )


def _compact(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


# catalog


@click.group(name="catalog")
def catalog_group() -> None:
    """Products, their variants, options and bills of materials."""


@catalog_group.command(name="publish")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@submit_options("admin")
@guarded
def catalog_publish(file: Path, **opts: Any) -> None:
    """Publish every product of FILE ({"products": [...]}, see configs/catalog.json)."""
    try:
        document = json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise click.ClickException(f"{file}: not a JSON document ({exc})") from exc
    products = document.get("products") if isinstance(document, dict) else None
    if not isinstance(products, list) or not products:
        raise click.ClickException(f'{file}: expected {{"products": [ ... ]}} with products')
    _check_products(file, products)
    results = [_submit_quietly(opts, "catalog", "publish", product) for product in products]
    if opts["as_json"]:
        print_json(results)
    else:
        for result in results:
            print_receipt(result)
    if opts["wait"] and not all(result["receipt"]["ok"] for result in results):
        raise SystemExit(1)


def _check_products(file: Path, products: list[Any]) -> None:
    """Check every product against catalog.publish's argument schema before any is sent, so a
    file with a bad product publishes none of them (one transaction a product: the ones before
    a refused one used to be on the chain already)."""
    spec = CatalogContract.methods["publish"]
    for index, product in enumerate(products):
        if not isinstance(product, dict):
            raise click.ClickException(f"{file}: product {index} is not an object")
        try:
            validate_args(spec.args, product, where="catalog.publish")
        except ExecutionError as exc:
            name = product.get("product", index)
            raise click.ClickException(
                f"{file}: product {name!r}: {exc}; nothing was published"
            ) from exc


@catalog_group.command(name="show")
@click.argument("product", required=False)
@read_options
@guarded
def catalog_show(
    product: str | None, directory: Path, node_name: str | None, as_json: bool
) -> None:
    """The published products (or one), with variants and option choices."""
    value = _read(directory, node_name, "catalog", *([product] if product else []))
    products = {product: value} if product else value
    if as_json:
        print_json(products)
        return
    rows = []
    for name, record in products.items():
        for variant, part in record["variants"].items():
            options = "; ".join(
                f"{group}: {', '.join(sorted(spec['choices']))}"
                + (f" (default {spec['default']})" if spec["default"] else "")
                for group, spec in sorted(record["options"].items())
            )
            rows.append([name, record["version"], variant, _compact(part["bom"]), options])
    table("catalog", ["product", "version", "variant", "bom per unit", "options"], rows)


# orders


@click.group(name="order")
def order_group() -> None:
    """Customer orders: place, follow and move them through production."""


@order_group.command(name="place")
@click.argument("product")
@click.option("--variant", required=True)
@click.option(
    "--option",
    "options",
    multiple=True,
    metavar="GROUP=CHOICE",
    help=f"An option group and the choice in it, as {OPTION_FORM}; repeatable.",
)
@click.option("--qty", "quantity", type=int, default=1, show_default=True)
@submit_options("customer")
@guarded
def order_place(
    product: str, variant: str, options: tuple[str, ...], quantity: int, **opts: Any
) -> None:
    """Order PRODUCT in a configuration: --variant V --option GROUP=CHOICE ... --qty N."""
    chosen = _pairs(options, "--option", OPTION_FORM)
    args = {"product": product, "variant": variant, "options": chosen, "quantity": quantity}
    _send(opts, "orders", "place", args)


def _order_move(
    name: str, method: str, identity: str, help_text: str, extra: dict[str, str] | None = None
) -> None:
    """Register `order NAME ID` submitting orders.METHOD, with optional --<extra> text options."""

    @submit_options(identity)
    @guarded
    def command(order: str, **opts: Any) -> None:
        args: dict[str, Any] = {"order": order}
        for arg in extra or {}:
            value = opts.pop(arg)
            if value is not None:
                args[arg] = value
        _send(opts, "orders", method, args)

    command.__doc__ = help_text
    for arg, arg_help in (extra or {}).items():
        command = click.option(f"--{arg}", arg, default=None, help=arg_help)(command)
    command = click.argument("order")(command)
    order_group.command(name=name)(command)


_order_move(
    "accept",
    "accept",
    "planner",
    "Accept ORDER, reserving its materials.",
    {"location": "Where to reserve (default main)."},
)
_order_move(
    "schedule",
    "schedule",
    "planner",
    "Queue ORDER on a machine (default: by the rule).",
    {"machine": "A capable machine in service."},
)
_order_move("start", "start", "machine", "Start producing ORDER on its machine.")
_order_move("complete", "complete", "machine", "Finish production of ORDER (to quality check).")
_order_move("qc-pass", "qc_pass", "auditor", "Pass ORDER's quality check.", {"note": "Remark."})
_order_move(
    "qc-fail",
    "qc_fail",
    "auditor",
    "Fail ORDER's quality check: back to production.",
    {"note": "What was wrong."},
)
_order_move("ship", "ship", "planner", "Ship ORDER.", {"note": "Carrier, tracking."})
_order_move("deliver", "deliver", "customer", "Confirm delivery of ORDER.")
_order_move(
    "cancel",
    "cancel",
    "customer",
    "Cancel ORDER before production; releases stock.",
    {"reason": "Why."},
)


@order_group.command(name="status")
@click.argument("order")
@read_options
@guarded
def order_status(order: str, directory: Path, node_name: str | None, as_json: bool) -> None:
    """One order: its spec, bill of materials, state, machine and reservation."""
    record = _read(directory, node_name, "orders", order)
    if as_json:
        print_json(record)
        return
    for key in (
        "id",
        "state",
        "customer",
        "product",
        "variant",
        "options",
        "quantity",
        "machine",
        "bom",
        "requires",
        "duration_ms",
        "qc_failures",
        "reservation",
    ):
        value = record.get(key)
        click.echo(f"{key:>12}: {_compact(value) if isinstance(value, dict | list) else value}")


@order_group.command(name="list")
@click.option(
    "--state",
    type=click.Choice([str(state) for state in OrderState]),
    default=None,
    help="Only orders in this state.",
)
@read_options
@guarded
def order_list(state: str | None, directory: Path, node_name: str | None, as_json: bool) -> None:
    """All orders (or those in one --state)."""
    orders = [
        o
        for o in _read(directory, node_name, "orders").values()
        if state is None or o["state"] == state
    ]
    if as_json:
        print_json(orders)
        return
    table(
        "orders",
        ["id", "customer", "product", "variant", "options", "qty", "state", "machine"],
        [
            [
                o["id"],
                o["customer"],
                o["product"],
                o["variant"],
                _compact(o["options"]),
                o["quantity"],
                o["state"],
                o["machine"],
            ]
            for o in orders
        ],
    )


# inventory


@click.group(name="inventory")
def inventory_group() -> None:
    """Stock per item and location, deliveries and reorder points."""


@inventory_group.command(name="show")
@click.argument("item", required=False)
@read_options
@guarded
def inventory_show(item: str | None, directory: Path, node_name: str | None, as_json: bool) -> None:
    """Stock of every item (or one), with LOW marking items at or below their reorder point."""
    value = _read(directory, node_name, "inventory", *([item] if item else []))
    items = {item: value} if item else value
    if as_json:
        print_json(items)
        return
    table(
        "inventory",
        ["item", "location", "on hand", "reserved", "for orders", "available", "reorder at", ""],
        [
            [
                name,
                location,
                s["on_hand"],
                s["reserved"],
                s["for_orders"],
                s["available"],
                s["reorder_point"],
                "LOW" if s["low"] else "",
            ]
            for name, locations in items.items()
            for location, s in locations.items()
        ],
    )


@inventory_group.command(name="receive")
@click.argument("item")
@click.argument("qty", type=int)
@click.option("--location", default="main", show_default=True)
@click.option("--reference", default=None, help="A supplier delivery reference (booked once).")
@submit_options("supplier")
@guarded
def inventory_receive(
    item: str, qty: int, location: str, reference: str | None, **opts: Any
) -> None:
    """Add QTY of ITEM to stock; with --reference, as a supplier delivery."""
    args: dict[str, Any] = {"item": item, "location": location, "qty": qty}
    if reference is None:
        _send(opts, "inventory", "receive", args)
    else:
        _send(opts, "inventory", "deliver", {**args, "reference": reference})


@inventory_group.command(name="reorder")
@click.argument("item")
@click.argument("point", type=int)
@click.option("--location", default="main", show_default=True)
@submit_options("planner")
@guarded
def inventory_reorder(item: str, point: int, location: str, **opts: Any) -> None:
    """Set ITEM's reorder point: at or below POINT available units it is low on stock."""
    _send(
        opts, "inventory", "set_reorder_point", {"item": item, "location": location, "point": point}
    )


# machines


@click.group(name="machine")
def machine_group() -> None:
    """Machines: registration, status, sensor readings."""


@machine_group.command(name="register")
@click.argument("machine")
@click.option("--type", "machine_type", required=True)
@click.option("--capability", "capabilities", multiple=True, required=True, help="Repeatable.")
@click.option(
    "--operator",
    default="",
    help="The only machine identity that may act for it (not a removed member's name).",
)
@submit_options("admin")
@guarded
def machine_register(
    machine: str, machine_type: str, capabilities: tuple[str, ...], operator: str, **opts: Any
) -> None:
    """Register MACHINE with its type and capabilities."""
    args = {
        "machine": machine,
        "type": machine_type,
        "capabilities": list(capabilities),
        "operator": operator,
    }
    _send(opts, "machines", "register", args)


@machine_group.command(name="status")
@click.argument("machine", required=False)
@read_options
@guarded
def machine_status(
    machine: str | None, directory: Path, node_name: str | None, as_json: bool
) -> None:
    """Every machine (or one): status, queue, time accounting, tool wear, risk."""
    value = _read(directory, node_name, "machines", *([machine] if machine else []))
    machines = {machine: value} if machine else value
    if as_json:
        print_json(machines)
        return
    table(
        "machines",
        [
            "id",
            "type",
            "status",
            "capabilities",
            "producing",
            "queue",
            "queued ms",
            "production ms",
            "downtime ms",
            "tool wear",
            "risk bp",
        ],
        [
            [
                m["id"],
                m["type"],
                m["status"],
                ",".join(m["capabilities"]),
                m["producing"],
                ",".join(m["queue"]),
                m["queued_ms"],
                m["production_ms"],
                m["downtime_ms"],
                m["tool_wear_min"],
                (m["at_risk"] or {}).get("probability_bp", ""),
            ]
            for m in machines.values()
        ],
    )


@machine_group.command(name="report")
@click.argument("machine")
@click.argument("fields", nargs=-1, required=True)
@submit_options("machine")
@guarded
def machine_report(machine: str, fields: tuple[str, ...], **opts: Any) -> None:
    """Report one reading: seq=N air_temp_dk=.. process_temp_dk=.. rpm=.. torque_cnm=..
    tool_wear_min=.. (integers, AI4I 2020 units scaled: deci-kelvin, centi-Nm, minutes) and
    optionally quality=L, M or H."""
    _send(opts, "machines", "report", {"machine": machine, "readings": [_reading(fields)]})


@machine_group.command(name="down")
@click.argument("machine")
@click.option("--reason", default="")
@submit_options("machine")
@guarded
def machine_down(machine: str, reason: str, **opts: Any) -> None:
    """Report MACHINE down; its queued orders move to other capable machines."""
    _send(opts, "machines", "down", {"machine": machine, "reason": reason})


@machine_group.command(name="up")
@click.argument("machine")
@click.option("--reason", default="")
@submit_options("maintainer")
@guarded
def machine_up(machine: str, reason: str, **opts: Any) -> None:
    """Return a down or degraded MACHINE to service."""
    _send(opts, "machines", "up", {"machine": machine, "reason": reason})


@machine_group.command(name="flag")
@click.argument("machine")
@click.option(
    "--probability-bp",
    "probability_bp",
    type=click.IntRange(0, BASIS_POINTS),
    required=True,
    help="The estimated probability of failure, in basis points (10000 = certain).",
)
@click.option("--reason", default="")
@submit_options("admin")
@guarded
def machine_flag(machine: str, probability_bp: int, reason: str, **opts: Any) -> None:
    """Flag MACHINE at risk of failure (admin only); its queued orders move away."""
    args = {"machine": machine, "probability_bp": probability_bp, "reason": reason}
    _send(opts, "machines", "flag_at_risk", args)


# work orders


@click.group(name="workorder")
def workorder_group() -> None:
    """Maintenance work orders: open, take, close, list."""


@workorder_group.command(name="open")
@click.argument("machine")
@click.option("--reason", required=True)
@submit_options("maintainer")
@guarded
def workorder_open(machine: str, reason: str, **opts: Any) -> None:
    """Open a work order on MACHINE."""
    _send(opts, "maintenance", "open", {"machine": machine, "reason": reason})


@workorder_group.command(name="take")
@click.argument("work_order")
@submit_options("maintainer")
@guarded
def workorder_take(work_order: str, **opts: Any) -> None:
    """Take WORK_ORDER: its machine goes under maintenance, its queue moves away."""
    _send(opts, "maintenance", "take", {"work_order": work_order})


@workorder_group.command(name="close")
@click.argument("work_order")
@click.option(
    "--action",
    "actions",
    multiple=True,
    required=True,
    help="tool_replaced, repaired, inspected, lubricated, calibrated, cleaned, other.",
)
@click.option("--note", default="")
@submit_options("maintainer")
@guarded
def workorder_close(work_order: str, actions: tuple[str, ...], note: str, **opts: Any) -> None:
    """Close WORK_ORDER with what was done; the machine returns to service."""
    args = {"work_order": work_order, "actions": list(actions), "note": note}
    _send(opts, "maintenance", "close", args)


@workorder_group.command(name="list")
@read_options
@guarded
def workorder_list(directory: Path, node_name: str | None, as_json: bool) -> None:
    """Every work order."""
    orders = _read(directory, node_name, "maintenance")
    if as_json:
        print_json(orders)
        return
    table(
        "work orders",
        ["id", "machine", "state", "reason", "opened by", "taken by", "actions", "note"],
        [
            [
                wo_id,
                w["machine"],
                w["state"],
                w["reason"],
                w["opened_by"],
                w["taken_by"],
                ",".join(w["actions"]),
                w["note"],
            ]
            for wo_id, w in orders.items()
        ],
    )


# Register each on the `millchain` group: `for command in factory_commands: main.add_command(...)`.
factory_commands: list[click.Command] = [
    catalog_group,
    order_group,
    inventory_group,
    machine_group,
    workorder_group,
    history,
]
