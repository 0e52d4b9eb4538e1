"""The catalog contract: publishing products and resolving a customer's spec against them."""

from __future__ import annotations

from typing import Any

import pytest

from contracts.catalog import ResolvedSpec, resolve_spec
from contracts.errors import ConflictError, ContractError, NotFoundError
from tests.contracts.conftest import Chain, place, sample_products, state_except_nonces


def resolve(chain: Chain, **spec: Any) -> ResolvedSpec:
    args = {"product": "gearbox", "variant": "g50", "options": {}, "quantity": 1, **spec}
    return resolve_spec(chain.state, **args)


def test_sample_catalog_publishes_with_versions(chain: Chain) -> None:
    bracket = sample_products()[0]
    receipt = chain.call("root", "catalog", "publish", **bracket)
    assert receipt.ok, receipt.error
    assert receipt.result == {"product": "bracket", "version": 1}
    (event,) = receipt.events
    assert event.subject == "product:bracket"
    assert event.data["options"] == {
        "finish": ["galvanized", "powder-coat", "raw"],
        "holes": ["round", "slotted"],
    }
    assert chain.call("root", "catalog", "publish", **bracket).result["version"] == 2
    assert chain.query("catalog", "bracket")["variants"]["small"]["bom"]["bolt-m8"] == 4


def test_spec_resolves_to_summed_lines_union_of_capabilities_and_total_time(factory: Chain) -> None:
    spec = resolve(factory, options={"ratio": "r10", "seal": "viton"}, quantity=2)
    assert spec.bom == {
        "bearing-6204": 8,
        "gear-set-r10": 2,
        "housing-g50": 2,
        "seal-viton": 4,
        "shaft": 4,
    }
    assert spec.requires == ("assembly", "cnc-mill")
    assert spec.duration_ms == 2 * (2_700_000 + 600_000 + 60_000)


def test_groups_with_a_default_may_be_left_out(factory: Chain) -> None:
    spec = resolve(factory, options={"ratio": "r5"})
    assert spec.bom["seal-nbr"] == 2


@pytest.mark.parametrize(
    ("spec", "error", "message"),
    [
        (
            {"product": "sprocket"},
            NotFoundError,
            "no product 'sprocket' in the catalog; products: bracket, gearbox",
        ),
        (
            {"variant": "g75"},
            NotFoundError,
            "product gearbox has no variant 'g75'; variants: g100, g50",
        ),
        (
            {"options": {"ratio": "r5", "paint": "red"}},
            NotFoundError,
            "product gearbox has no option group 'paint'; option groups: ratio, seal",
        ),
        ({"options": {}}, ConflictError, "option group ratio of gearbox needs a choice: r10, r5"),
        (
            {"options": {"ratio": "r7"}},
            NotFoundError,
            "option group ratio of gearbox has no choice 'r7'; choices: r10, r5",
        ),
    ],
)
def test_invalid_specs_name_the_problem_and_the_alternatives(
    factory: Chain, spec: dict[str, Any], error: type[ContractError], message: str
) -> None:
    with pytest.raises(error) as raised:
        resolve(factory, **spec)
    assert str(raised.value) == message


def test_an_invalid_spec_places_no_order(factory: Chain) -> None:
    before = state_except_nonces(factory)
    receipt = place(factory, product="gearbox", variant="g50")
    assert receipt.error == "option group ratio of gearbox needs a choice: r10, r5"
    assert state_except_nonces(factory) == before


def test_publish_refuses_a_default_that_is_not_a_choice(chain: Chain) -> None:
    product = sample_products()[0]
    product["options"]["finish"]["default"] = "chrome"
    receipt = chain.call("root", "catalog", "publish", **product)
    assert receipt.error == (
        "option group finish of bracket: default 'chrome' is not one of its choices "
        "(galvanized, powder-coat, raw)"
    )


def test_publish_validates_nested_fields_by_name(chain: Chain) -> None:
    receipt = chain.call(
        "root",
        "catalog",
        "publish",
        product="widget",
        variants={"v1": {"bom": {"steel": 0}}},
    )
    assert receipt.error == (
        "catalog.publish: argument variants['v1'].bom['steel'] must be at least 1, got 0"
    )


def test_a_retired_product_takes_no_new_orders(factory: Chain) -> None:
    assert factory.call("root", "catalog", "retire", product="bracket").ok
    assert place(factory).error == "product bracket is retired and takes no new orders"
