"""The OpenAPI document at /openapi.json describes the running server: every registered route and
nothing else, and what valid and invalid requests get back (status, schema, Retry-After)."""

from __future__ import annotations

import json
import re
from typing import Any

import msgpack
import pytest
from aiohttp import web
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

from ledger.encoding import encode
from ledger.tx import Transaction
from node.api import create_app
from node.openapi import document
from node.service import Node
from tests.node.conftest import BODY_BYTES_MAX, CHAIN_ID, Client, Setup

DOCUMENT = document()
STATIC_TEMPLATE = "/explorer/static/{filename}"


def test_document_is_valid_openapi_3_1() -> None:
    validate(DOCUMENT)
    assert DOCUMENT["openapi"].startswith("3.1")


def _registered_routes(app: web.Application) -> set[tuple[str, str]]:
    routes = set()
    for route in app.router.routes():
        if route.method == "HEAD":
            continue  # answered wherever GET is, as the document says
        info = route.resource.get_info() if route.resource is not None else {}
        if "prefix" in info:  # a static directory
            routes.add((route.method.lower(), STATIC_TEMPLATE))
            continue
        assert route.resource is not None
        routes.add((route.method.lower(), route.resource.canonical))
    return routes


def _documented_routes() -> set[tuple[str, str]]:
    return {(method, path) for path, item in DOCUMENT["paths"].items() for method in item}


async def test_every_route_is_documented_and_nothing_else(node: Node) -> None:
    app = create_app(node)
    assert _registered_routes(app) == _documented_routes()


async def test_served_document_is_the_module_one(client: Client) -> None:
    response = await client.get("/openapi.json")
    assert response.status == 200
    assert await response.json() == json.loads(json.dumps(DOCUMENT))


# -- answers against the document -----------------------------------------------------------


def _template_pattern(template: str) -> re.Pattern[str]:
    pattern = re.escape(template)
    for name in re.findall(r"\{(\w+)\}", template):
        # {path} may be empty and span segments (aiohttp's {path:.*}); {filename} spans them.
        wide = {"path": ".*", "filename": ".+"}.get(name, "[^/{}]+")
        pattern = pattern.replace(re.escape("{" + name + "}"), wide)
    return re.compile(f"^{pattern}$")


def is_documented(path: str) -> bool:
    bare = path.split("?", maxsplit=1)[0]
    return any(_template_pattern(t).match(bare) for t in DOCUMENT["paths"])


def operation_for(method: str, path: str) -> tuple[str, dict[str, Any]]:
    """The documented operation a request path falls under (literal paths first)."""
    templates = sorted(DOCUMENT["paths"], key=lambda t: (t.count("{"), -len(t)))
    for template in templates:
        if _template_pattern(template).match(path.split("?", maxsplit=1)[0]):
            item = DOCUMENT["paths"][template]
            assert method.lower() in item, f"{method} {template} is not documented"
            return template, item[method.lower()]
    raise AssertionError(f"no documented path matches {path}")


def _bytes_as_text(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {k: _bytes_as_text(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_bytes_as_text(v) for v in value]
    return value


def check_answer(
    method: str, path: str, status: int, headers: Any, body: bytes
) -> dict[str, Any] | None:
    """Assert the answer has a documented status, headers and body schema."""
    template, operation = operation_for(method, path)
    answers = operation["responses"]
    assert str(status) in answers, f"{method} {template} answered undocumented {status}: {body!r}"
    answer = answers[str(status)]
    for name, header in answer.get("headers", {}).items():
        if header.get("required"):
            assert name in headers, f"{method} {template} {status} lacks {name}"
    content = answer.get("content")
    if not content:
        return None
    media = headers.get("Content-Type", "").split(";")[0]
    assert media in content, f"{method} {template} {status} answered {media}, not {list(content)}"
    schema = content[media]["schema"]
    if media == "application/json":
        value = json.loads(body)
    elif media == "application/msgpack":
        value = _bytes_as_text(msgpack.unpackb(body, raw=False))
    else:
        return None
    errors = sorted(Draft202012Validator(schema).iter_errors(value), key=str)
    assert not errors, f"{method} {template} {status}: {errors[0].message}"
    return value if isinstance(value, dict) else None


def _tx(setup: Setup, *, nonce: int = 0, chain_id: str = CHAIN_ID) -> Transaction:
    return Transaction.create(
        setup.identities["supplier"],
        chain_id=chain_id,
        nonce=nonce,
        contract="inventory",
        method="receive",
        args={"item": "steel", "location": "main", "qty": 5},
    )


def _requests(setup: Setup) -> list[tuple[str, str, bytes | None]]:
    tx = _tx(setup)
    other = KEYLESS_HASH
    return [
        ("POST", "/tx", tx.to_wire()),
        ("POST", "/tx", tx.to_wire()),  # replay: 409
        ("POST", "/tx", _tx(setup, nonce=1, chain_id="other").to_wire()),
        ("POST", "/tx", b"\xc1"),
        ("POST", "/tx", b""),
        ("POST", "/tx", b"\x00" * (BODY_BYTES_MAX + 1024)),
        ("POST", "/txs", msgpack.packb([_tx(setup, nonce=1).to_wire(), b"junk"])),
        ("POST", "/txs", msgpack.packb({"not": "a list"})),
        ("GET", "/commits?from=1", None),
        ("GET", "/commits?from=-1", None),
        ("GET", f"/tx/{tx.hash.hex()}", None),
        ("GET", f"/tx/{other}", None),
        ("GET", "/tx/xyz", None),
        ("GET", "/tx/" + "ab" * 32 + "?wait_ms=99999999", None),
        ("GET", "/blocks", None),
        ("GET", "/blocks?limit=5000", None),
        ("GET", "/blocks/0", None),
        ("GET", "/blocks/7", None),
        ("GET", "/blocks/seven", None),
        ("GET", f"/blocks/hash/{other}", None),
        ("GET", "/blocks/hash/12", None),
        ("GET", "/status", None),
        ("GET", f"/accounts/{setup.identities['supplier'].public_key.hex()}", None),
        ("GET", "/accounts/nothex", None),
        ("GET", "/state/inventory", None),
        ("GET", "/state/identity/supplier", None),
        ("GET", "/state/nosuch", None),
        ("GET", "/state/inventory/steel/main/extra", None),
        ("GET", "/state/inventory?after=", None),
        ("GET", "/state/inventory?after=steel/main", None),
        ("GET", "/state/inventory?after=steel", None),
        ("GET", "/state/orders?after=", None),
        ("GET", "/events/item:steel", None),
        ("GET", "/events/item:steel?limit=x", None),
        ("POST", "/peer/batch", encode({"messages": [b"junk"], "txs": []})),
        ("POST", "/peer/batch", b"\xc1"),
        ("GET", "/peer/stream", None),
        ("GET", "/peer/blocks?from=1", None),
        ("GET", "/peer/blocks?from=0", None),
        ("GET", "/peer/history?from=1", None),
        ("GET", "/peer/history?from=0", None),
        ("GET", "/admin/pause", None),
        ("POST", "/admin/pause", b'{"phase": "after-commit", "seq_min": 1000000}'),
        ("POST", "/admin/pause", b'{"phase": "soon"}'),
        ("POST", "/admin/pause", b'{"phase": "after-commit", "seq_min": Infinity}'),
        ("POST", "/admin/resume", None),
        ("GET", "/openapi.json", None),
        ("GET", "/metrics", None),
        ("GET", "/explorer/", None),
        ("GET", "/explorer/info", None),
        ("GET", "/explorer/views", None),
        ("GET", "/explorer/static/nosuch.js", None),
    ]


KEYLESS_HASH = "cd" * 32


async def test_answers_to_valid_and_invalid_requests_match_the_document(
    client: Client,
    setup: Setup,
) -> None:
    statuses = []
    for method, path, body in _requests(setup):
        response = await client.request(method, path, data=body, allow_redirects=False)
        raw = await response.read()
        assert response.status < 500, (method, path, response.status, raw[:200])
        check_answer(method, path, response.status, response.headers, raw)
        statuses.append(response.status)
    assert {200, 202, 400, 404, 409, 413} <= set(statuses)


@pytest.mark.parametrize("path", ["/", "/explorer"])
async def test_redirects_are_documented(client: Client, path: str) -> None:
    response = await client.get(path, allow_redirects=False)
    check_answer("GET", path, response.status, response.headers, b"")
    assert response.headers["Location"] == "/explorer/"
