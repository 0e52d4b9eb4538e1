"""POST /admin/faults: bad input gets a 400 saying what was wrong, and changes nothing. The seed
of a request was applied (and written to the node's faults file) before the rest of the request
was checked, so a refused request still reseeded the fault layer; and a body nested too deep for
the JSON decoder was a 500 where POST /admin/pause answers 400."""

from __future__ import annotations

from typing import Any

import pytest

from node.service import Node
from tests.node.conftest import Client


def _faults(node: Node) -> dict[str, Any]:
    return node.faults.status([link.name for link in node.peers.links.values()])


@pytest.mark.parametrize(
    "body",
    [
        {"seed": 12345, "clear": "yes"},
        {"seed": 12345, "delay_ms": -1},
        {"seed": 12345, "clear": True, "delay_ms": 5},
        {"seed": 12345, "no_such_fault": 1},
    ],
    ids=["bad-clear", "bad-delay", "clear-with-fields", "unknown-field"],
)
async def test_a_refused_fault_request_does_not_reseed(
    client: Client,
    node: Node,
    body: dict[str, Any],
) -> None:
    before = _faults(node)
    response = await client.post("/admin/faults", json=body)
    assert response.status == 400, await response.text()
    assert (await response.json())["error"]
    assert _faults(node) == before
    assert node.faults.seed != 12345


async def test_a_fault_rule_nested_too_deep_gets_400(client: Client, node: Node) -> None:
    before = _faults(node)
    body = b"[" * 50_000  # under the test genesis's body_bytes_max
    response = await client.post(
        "/admin/faults", data=body, headers={"Content-Type": "application/json"}
    )
    assert response.status == 400, (await response.text())[:200]
    assert "JSON" in (await response.json())["error"]
    assert _faults(node) == before
