"""The admin API answers loopback without a token, and refuses pages of another origin by their
Origin and Sec-Fetch-Site headers. A page that rebinds its own DNS name to 127.0.0.1 (DNS
rebinding) is, to the browser, of the same origin as the node it then reaches: its requests
carry `Origin: http://evil.example:PORT`, `Host: evil.example:PORT` and `Sec-Fetch-Site:
same-origin`, and arrive from loopback. What tells them apart is the Host: a name the node does
not go by. Any web page the operator opens on the node's machine could otherwise arm a pause
(the node stops taking part in consensus) or block its peer links, rules kept across restarts."""

from __future__ import annotations

import pytest

from node.service import Node
from tests.node.conftest import Client


def _rebound(client: Client) -> dict[str, str]:
    """What a browser sends for a page of evil.example, once that name resolves to loopback."""
    port = client.server.port
    return {
        "Host": f"evil.example:{port}",
        "Origin": f"http://evil.example:{port}",
        "Sec-Fetch-Site": "same-origin",
    }


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/admin/pause", {"phase": "after-commit", "seq_min": 0}),
        ("/admin/faults", {"peer": "*", "blocked": True}),
    ],
)
async def test_admin_refuses_a_page_that_rebound_its_name_to_loopback(
    client: Client,
    node: Node,
    path: str,
    body: dict[str, object],
) -> None:
    faults_before = node.faults.status([link.name for link in node.peers.links.values()])
    response = await client.post(path, json=body, headers=_rebound(client))
    assert response.status == 403, await response.text()
    assert "evil.example" in (await response.json())["error"]
    assert node.pause_point is None
    assert node.faults.status([link.name for link in node.peers.links.values()]) == faults_before


async def test_admin_status_is_not_readable_by_a_rebound_page(client: Client) -> None:
    response = await client.get("/admin/faults", headers=_rebound(client))
    assert response.status == 403


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]"])
async def test_admin_still_answers_loopback_by_address_and_by_localhost(
    client: Client,
    host: str,
) -> None:
    response = await client.get("/admin/pause", headers={"Host": f"{host}:{client.server.port}"})
    assert response.status == 200, await response.text()
