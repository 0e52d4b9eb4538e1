"""The catalog contract: products the admin publishes, and the resolution of a customer's spec.

Model. A product has variants and option groups. A variant is a base configuration: the bill of
materials for one unit (`bom`: item -> units), the machine capabilities it needs (`requires`) and
how long one unit takes (`duration_ms`). An option group (say `finish`) offers choices (`raw`,
`powder-coat`), each adding its own BOM lines, capabilities and time; a group with a `default`
may be left out of a spec. A spec is {product, variant, options: {group: choice}, quantity}, and
resolves to the order's bill of materials: the variant's and the chosen options' lines summed per
item and multiplied by the quantity, the union of their capabilities (one machine must have all
of them) and their summed durations times the quantity.

State: catalog/product/<product id> -> the published product (re-publishing bumps `version`;
orders keep the BOM resolved when they were placed, so they are unaffected).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from contracts.contract import Call, Contract, method
from contracts.errors import ConflictError, NotFoundError, QueryError
from contracts.schema import NAME_PATTERN, Int, ListOf, MapOf, Record, Str
from contracts.state import StateReader, decode_map, read_map, write_map
from ledger.genesis import Role

PRODUCT_PREFIX = b"catalog/product/"
UNIT_QTY_MAX = 1_000_000
ORDER_QTY_MAX = 10_000
DURATION_MS_MAX = 7 * 24 * 3_600_000  # per unit and per part: a week

NAME = Str(min_len=1, max_len=64, pattern=NAME_PATTERN)
_BOM = MapOf(value=Int(min=1, max=UNIT_QTY_MAX), max_len=64, default={})
_REQUIRES = ListOf(item=NAME, max_len=16, unique=True, default=[])
_PART_FIELDS = {
    "bom": _BOM,
    "requires": _REQUIRES,
    "duration_ms": Int(min=0, max=DURATION_MS_MAX, default=0),
}
VARIANT = Record(fields=_PART_FIELDS)
OPTION_GROUP = Record(
    fields={
        "choices": MapOf(value=Record(fields=_PART_FIELDS), max_len=32),
        "default": Str(max_len=64, default=""),
    }
)
PRODUCT_ARGS = {
    "product": NAME,
    "title": Str(max_len=128, default=""),
    "variants": MapOf(value=VARIANT, max_len=32),
    "options": MapOf(value=OPTION_GROUP, max_len=16, default={}),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class ResolvedSpec:
    """What one order of a configuration needs, for its whole quantity."""

    bom: dict[str, int]  # item -> units, sorted by item
    requires: tuple[str, ...]  # capabilities, sorted
    duration_ms: int


def product_key(product: str) -> bytes:
    return PRODUCT_PREFIX + product.encode()


def read_product(state: StateReader, product: str) -> dict[str, Any] | None:
    return read_map(state, product_key(product))


def resolve_spec(
    state: StateReader, *, product: str, variant: str, options: Mapping[str, str], quantity: int
) -> ResolvedSpec:
    """Check a spec against the published product and resolve its bill of materials.

    Raises NotFoundError or ConflictError naming the first problem and the valid alternatives.
    """
    record = read_product(state, product)
    if record is None:
        known = ", ".join(_product_names(state)) or "none published"
        raise NotFoundError(f"no product {product!a} in the catalog; products: {known}")
    if record.get("retired"):
        raise ConflictError(f"product {product} is retired and takes no new orders")
    variants: dict[str, Any] = record["variants"]
    if variant not in variants:
        raise NotFoundError(
            f"product {product} has no variant {variant!a}; variants: {', '.join(sorted(variants))}"
        )
    groups: dict[str, Any] = record["options"]
    unknown = sorted(set(options) - set(groups))
    if unknown:
        names = ", ".join(sorted(groups)) or "none"
        raise NotFoundError(
            f"product {product} has no option group {unknown[0]!a}; option groups: {names}"
        )
    parts = [variants[variant]]
    for group in sorted(groups):
        choices: dict[str, Any] = groups[group]["choices"]
        choice = options.get(group) or groups[group]["default"]
        listed = ", ".join(sorted(choices))
        if not choice:
            raise ConflictError(f"option group {group} of {product} needs a choice: {listed}")
        if choice not in choices:
            raise NotFoundError(
                f"option group {group} of {product} has no choice {choice!a}; choices: {listed}"
            )
        parts.append(choices[choice])
    return _combine(parts, quantity)


def _combine(parts: Sequence[Mapping[str, Any]], quantity: int) -> ResolvedSpec:
    bom: dict[str, int] = {}
    requires: set[str] = set()
    duration_ms = 0
    for part in parts:
        for item, units in part["bom"].items():
            bom[item] = bom.get(item, 0) + units * quantity
        requires.update(part["requires"])
        duration_ms += part["duration_ms"] * quantity
    return ResolvedSpec(
        bom={item: bom[item] for item in sorted(bom)},
        requires=tuple(sorted(requires)),
        duration_ms=duration_ms,
    )


def _product_names(state: StateReader) -> list[str]:
    return [key[len(PRODUCT_PREFIX) :].decode() for key, _ in state.scan(PRODUCT_PREFIX)]


def _check_product(product: str, variants: Mapping[str, Any], options: Mapping[str, Any]) -> None:
    if not variants:
        raise ConflictError(f"product {product} needs at least one variant")
    for group in sorted(options):
        choices, default = options[group]["choices"], options[group]["default"]
        if not choices:
            raise ConflictError(f"option group {group} of {product} needs at least one choice")
        if default and default not in choices:
            raise ConflictError(
                f"option group {group} of {product}: default {default!a} is not one of its "
                f"choices ({', '.join(sorted(choices))})"
            )


class CatalogContract(Contract):
    """Products with variants, option groups and a bill of materials per configuration."""

    name = "catalog"

    @method(roles=(Role.ADMIN,), args=PRODUCT_ARGS)
    def publish(
        self,
        call: Call,
        *,
        product: str,
        title: str,
        variants: dict[str, Any],
        options: dict[str, Any],
    ) -> dict[str, Any]:
        """Publish a product, or a new version of it (placed orders keep their resolved BOM)."""
        _check_product(product, variants, options)
        previous = read_product(call.state, product)
        version = 1 if previous is None else int(previous["version"]) + 1
        record = {
            "title": title,
            "variants": variants,
            "options": options,
            "version": version,
            "retired": False,
            "published_ms": call.block.timestamp_ms,
        }
        write_map(call.state, product_key(product), record)
        call.emit(
            "publish",
            f"product:{product}",
            {
                "version": version,
                "variants": sorted(variants),
                "options": {group: sorted(options[group]["choices"]) for group in sorted(options)},
            },
        )
        return {"product": product, "version": version}

    @method(roles=(Role.ADMIN,), args={"product": NAME})
    def retire(self, call: Call, *, product: str) -> dict[str, Any]:
        """Stop taking orders for a product; orders already placed go on."""
        record = read_product(call.state, product)
        if record is None:
            raise NotFoundError(f"no product {product!a} in the catalog")
        if record.get("retired"):
            raise ConflictError(f"product {product} is already retired")
        write_map(call.state, product_key(product), {**record, "retired": True})
        call.emit("retire", f"product:{product}", {"version": record["version"]})
        return {"product": product, "retired": True}

    def query(self, state: StateReader, path: Sequence[str]) -> Any:
        if len(path) == 0:
            return {
                key[len(PRODUCT_PREFIX) :].decode(): decode_map(key, raw)
                for key, raw in state.scan(PRODUCT_PREFIX)
            }
        if len(path) == 1:
            record = read_product(state, path[0])
            if record is None:
                raise QueryError(f"no product {path[0]!a} in the catalog")
            return record
        raise QueryError(f"catalog queries take [] or [product], got {list(path)!a}")
