"""The node's HTTP API described as an OpenAPI 3.1 document, served at GET /openapi.json.

Kept as data built here, beside the routes in node/api.py; tests/node/test_openapi.py checks that
every route the app registers is described (and nothing else), and that answers to valid and
invalid requests have a documented status and match the documented schema. msgpack bodies are
described as `application/msgpack` with a schema of the decoded value, where a msgpack bin is a
string with `contentMediaType: application/octet-stream`. HEAD is answered wherever GET is.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from contracts.contract import NEWEST_QUERY_MAX
from node.faults import DELAY_MS_MAX
from node.mempool import PENDING_QUERY_MAX
from node.protocol import PROTOCOL_HEADER, PROTOCOL_VERSION, REFUSED_STATUS, subprotocol
from node.sync import FETCH_BLOCKS_MAX

Schema = dict[str, Any]

# Bounds node/api.py enforces (it imports them from here, so the document cannot drift).
WAIT_MS_MAX = 60_000
BLOCK_LIST_MAX = 1000
EVENTS_LIMIT_MAX = 10_000
# No more than the admission queue holds (node/service.py ADMISSION_BACKLOG_MAX): a larger
# batch could never be admitted, however often it were sent again.
TXS_PER_REQUEST_MAX = 8_192
COMMITS_FROM_MAX = 2**62
HEIGHT_MAX = 2**63 - 1

HEX32 = "^[0-9a-fA-F]{64}$"
JSON = "application/json"
MSGPACK = "application/msgpack"


def _bin(description: str) -> Schema:
    return {
        "type": "string",
        "contentMediaType": "application/octet-stream",
        "description": description,
    }


def _hex(bytes_count: int, description: str) -> Schema:
    return {
        "type": "string",
        "pattern": f"^[0-9a-f]{{{2 * bytes_count}}}$",
        "description": description,
    }


def _obj(properties: Schema, *, required: list[str] | None = None, extra: bool = True) -> Schema:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
        "additionalProperties": extra,
    }


INT = {"type": "integer"}
NAT = {"type": "integer", "minimum": 0}
NULLABLE_INT = {"type": ["integer", "null"]}
NULLABLE_STR = {"type": ["string", "null"]}
ANY: Schema = {}

ERROR = _obj(
    {"error": {"type": "string", "minLength": 1, "description": "what was wrong"}}, extra=False
)
TX_SUMMARY = _obj(
    {
        "hash": _hex(32, "sha256 of the signed body"),
        "chain_id": {"type": "string"},
        "sender": _hex(32, "the sender's ed25519 public key"),
        "nonce": NAT,
        "contract": {"type": "string"},
        "method": {"type": "string"},
        "args": {"type": "object"},
    }
)
RECEIPT = _obj(
    {
        "tx_hash": _hex(32, "the transaction"),
        "height": NAT,
        "index": NAT,
        "ok": {"type": "boolean"},
        "error": NULLABLE_STR,
        "result": ANY,
        "events": {"type": "array"},
    }
)
HEADER = _obj(
    {
        "height": NAT,
        "hash": _hex(32, "block hash"),
        "prev_hash": _hex(32, "previous block's hash"),
        "tx_root": _hex(32, "Merkle root of the transactions"),
        "state_height": NAT,
        "state_digest": _hex(32, "state digest the proposer executed up to"),
        "proposer": NAT,
        "view": NAT,
        "timestamp_ms": NAT,
    }
)
CERTIFICATE = _obj(
    {
        "height": NAT,
        "view": NAT,
        "block_hash": _hex(32, "the certified block"),
        "commits": {
            "type": "array",
            "items": _obj({"validator": NAT, "signature": _hex(64, "commit signature")}),
        },
    }
)
BLOCK = _obj(
    {
        "header": HEADER,
        "state_digest_after": _hex(32, "state digest after executing the block"),
        "txs": {
            "type": "array",
            "items": {
                **TX_SUMMARY,
                "properties": {
                    **TX_SUMMARY["properties"],
                    "receipt": {"oneOf": [RECEIPT, {"type": "null"}]},
                },
            },
        },
        "certificate": {"oneOf": [CERTIFICATE, {"type": "null"}]},
    }
)
PEER_LINK = _obj(
    {
        "index": NAT,
        "name": {"type": "string"},
        "url": {"type": "string"},
        "up": {"type": "boolean"},
        "last_ok_ms": NULLABLE_INT,
        "queued": NAT,
        "dropped": NAT,
        "peer_protocol": {
            "type": ["integer", "null"],
            "description": (
                "the protocol version the peer showed when this node last opened a link to it "
                "(in its refusal, or by the stream it took); null before it showed one"
            ),
        },
        "protocol_incompatible": {
            "type": "boolean",
            "description": (
                "whether the peer speaks another protocol version than this node: the link "
                "stays down, and is tried again with its back-off"
            ),
        },
    }
)
STATUS = _obj(
    {
        "name": {"type": "string"},
        "index": INT,
        "chain_id": {"type": "string"},
        "height": NAT,
        "head": _hex(32, "hash of the last committed block"),
        "state_digest": _hex(32, "state digest at the head"),
        "timestamp_ms": NAT,
        "role": {"enum": ["validator", "observer"]},
        "view": NULLABLE_INT,
        "primary": NULLABLE_INT,
        "mempool": NAT,
        "admission_queue": NAT,
        "last_commit_ms": NULLABLE_INT,
        "halted": NULLABLE_STR,
        "fsync": {
            "type": "boolean",
            "description": "whether each database commit is forced to disk (node.json fsync)",
        },
        "protocol_version": {
            "type": "integer",
            "const": PROTOCOL_VERSION,
            "description": "the protocol version this node speaks (node/protocol.py)",
        },
        "peers": {"type": "array", "items": PEER_LINK},
        "counters": _obj(
            {
                "txs_admitted": NAT,
                "txs_committed": NAT,
                "blocks_committed": NAT,
                "messages_received": NAT,
                "messages_rejected": NAT,
                "rejected": {"type": "object", "additionalProperties": NAT},
            }
        ),
    }
)
PAUSE = _obj(
    {
        "armed": {
            "oneOf": [
                _obj({"phase": {"type": "string"}, "seq_min": NAT}),
                {"type": "null"},
            ]
        },
        "paused_at": {"type": ["object", "null"]},
        "held_inputs": NAT,
        "outbound_queued": NAT,
    }
)
FAULTS = _obj(
    {
        "seed": {"type": "integer"},
        "peers": {
            "type": "object",
            "additionalProperties": _obj(
                {
                    "delay_ms": NAT,
                    "jitter_ms": NAT,
                    "loss": {"type": "number"},
                    "duplicate": {"type": "number"},
                    "blocked": {"type": "boolean"},
                    "counters": {"type": "object"},
                }
            ),
        },
    }
)
PHASES = [
    "before-pre-prepare",
    "after-pre-prepare",
    "after-prepare",
    "after-commit",
    "after-execute",
]
SIGNED_TX = _obj(
    {
        "body": _bin(
            "canonical msgpack of {chain_id, sender (32 bytes), nonce, contract, method, args}"
        ),
        "signature": _bin("ed25519 signature (64 bytes) over the domain tag, chain id and body"),
    },
    extra=False,
)

# -- responses -----------------------------------------------------------------------------

REASONS = {
    400: "malformed input; the message says what was wrong and what was expected",
    401: "the signature does not verify",
    403: "the sender or caller is not allowed",
    404: "not found (also: a path parameter holding '{', '}' or '/' matches no route)",
    405: "method not allowed on this path",
    408: "the request body did not arrive within the body timeout",
    409: "a duplicate transaction or an already used nonce",
    413: "the request body is larger than the genesis parameter body_bytes_max",
    429: "over the per-client rate limit; retry after Retry-After seconds",
    503: "mempool busy or full, node halted or paused; retry after Retry-After seconds",
}
# A paused node cannot say when its operator resumes it: no Retry-After (node/errors.py).
PAUSED: Schema = {
    "description": "the node is paused (node/pause.py); ask again later, with a back-off",
    "content": {JSON: {"schema": ERROR}},
}
RETRY_AFTER: Schema = {
    "Retry-After": {
        "description": "seconds to wait before retrying",
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
        "required": True,
    }
}


def _error(status: int) -> Schema:
    answer: Schema = {"description": REASONS[status], "content": {JSON: {"schema": ERROR}}}
    if status in (429, 503):
        answer["headers"] = RETRY_AFTER
    return answer


def _ok(schema: Schema, *, media: str = JSON, description: str = "OK") -> Schema:
    return {"description": description, "content": {media: {"schema": schema}}}


def _responses(ok: dict[int, Schema], errors: list[int], *, limited: bool = True) -> Schema:
    """Answers of one operation; `limited` operations may also answer 429."""
    codes = sorted({*errors, *([429] if limited else [])})
    return {str(code): answer for code, answer in ok.items()} | {
        str(code): _error(code) for code in codes
    }


def _peer_responses(ok: dict[int, Schema], errors: list[int], *, limited: bool = True) -> Schema:
    """Answers of a peer route: those of `_responses`, and the refusal of a request of another
    protocol version."""
    return _responses(ok, errors, limited=limited) | {
        str(REFUSED_STATUS): {
            "description": (
                f"the request states no {PROTOCOL_HEADER} or another than this node's "
                "(node/protocol.py); the message names both versions"
            ),
            "headers": {
                PROTOCOL_HEADER: {
                    "description": "this node's protocol version",
                    "schema": {"type": "string", "pattern": "^[0-9]+$"},
                    "required": True,
                }
            },
            "content": {JSON: {"schema": ERROR}},
        }
    }


def _query(name: str, maximum: int, default: int, description: str, minimum: int = 0) -> Schema:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": {"type": "integer", "minimum": minimum, "maximum": maximum, "default": default},
    }


def _path(name: str, schema: Schema, description: str) -> Schema:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": schema,
    }


def _body(media: str, schema: Schema, description: str) -> Schema:
    return {"required": True, "description": description, "content": {media: {"schema": schema}}}


WAIT_MS = _query("wait_ms", WAIT_MS_MAX, 0, "wait up to this many ms for a commit")
# The cursor of a paged inventory query (contracts/inventory.py): a stock record's key, an item
# and a location name, or within one item a location alone (each contracts.schema.NAME_PATTERN,
# 1-64 characters, never a "/"), or empty.
_NAME = "[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}"
AFTER: Schema = {
    "name": "after",
    "in": "query",
    "required": False,
    "description": (
        "Page through a listing instead of reading it whole; only GET /state/inventory and GET "
        "/state/inventory/{item} take it (the other contracts, and a single stock record, "
        "answer 400). The value is a cursor: empty for the first page, else the next_after of "
        "the previous page. Of the whole list, the cursor is an item/location and the value "
        '{"items": {item: {location: record}}, "more", "next_after"}; of one item, a location '
        'and {"locations": {location: record}, "more", "next_after"}. At most '
        f"{NEWEST_QUERY_MAX} stock records in key order after the cursor, whether more follow, "
        "and the cursor to go on from (null when none follow)."
    ),
    "schema": {"type": "string", "pattern": f"^$|^{_NAME}(/{_NAME})?$"},
}
HASH_PATH = _path("hash", {"type": "string", "pattern": HEX32}, "32 bytes as 64 hex digits")


def _paths() -> Schema:
    state_ok = _ok(_obj({"contract": {"type": "string"}, "path": {"type": "array"}, "value": ANY}))
    return {
        "/tx": {
            "post": {
                "tags": ["client"],
                "summary": "Submit a signed transaction",
                "requestBody": _body(
                    MSGPACK, SIGNED_TX, "a signed transaction (canonical msgpack)"
                ),
                "responses": _responses(
                    {
                        202: _ok(
                            _obj({"hash": _hex(32, "the transaction's hash")}),
                            description="admitted",
                        )
                    },
                    [400, 401, 403, 408, 409, 413, 503],
                ),
            }
        },
        "/txs": {
            "post": {
                "tags": ["client"],
                "summary": "Submit a batch of signed transactions, each admitted on its own",
                "description": "Each transaction takes one token of the client's rate limit.",
                "requestBody": _body(
                    MSGPACK,
                    {
                        "type": "array",
                        "minItems": 1,
                        "maxItems": TXS_PER_REQUEST_MAX,
                        "items": _bin("a signed transaction's wire bytes"),
                    },
                    "a msgpack list of signed transactions",
                ),
                "responses": _responses(
                    {
                        200: _ok(
                            _obj(
                                {
                                    "results": {
                                        "type": "array",
                                        "items": {
                                            "oneOf": [
                                                _obj({"hash": _hex(32, "admitted")}, extra=False),
                                                _obj(
                                                    {
                                                        "error": {"type": "string", "minLength": 1},
                                                        "status": {
                                                            "type": "integer",
                                                            "minimum": 400,
                                                            "maximum": 599,
                                                        },
                                                    },
                                                    extra=False,
                                                ),
                                            ]
                                        },
                                    }
                                }
                            )
                        )
                    },
                    [400, 408, 413, 503],
                ),
            }
        },
        "/commits": {
            "get": {
                "tags": ["client"],
                "summary": "Recent committed blocks from a height (for load generators)",
                "parameters": [
                    _query("from", COMMITS_FROM_MAX, 1, "first height wanted"),
                    WAIT_MS,
                ],
                "responses": _responses(
                    {
                        200: _ok(
                            _obj(
                                {
                                    "head": NAT,
                                    "blocks": {
                                        "type": "array",
                                        "items": {
                                            "type": "array",
                                            "prefixItems": [
                                                NAT,
                                                NAT,
                                                _bin("32-byte tx hashes concatenated"),
                                            ],
                                            "minItems": 3,
                                            "maxItems": 3,
                                        },
                                    },
                                }
                            ),
                            media=MSGPACK,
                        )
                    },
                    [400],
                ),
            }
        },
        "/tx/{hash}": {
            "get": {
                "tags": ["client"],
                "summary": "A transaction, its status and receipt",
                "parameters": [HASH_PATH, WAIT_MS],
                "responses": _responses(
                    {
                        200: _ok(
                            {
                                "oneOf": [
                                    _obj(
                                        {
                                            "status": {"const": "committed"},
                                            "height": NAT,
                                            "settled": {
                                                "type": "boolean",
                                                "description": (
                                                    "the receipt succeeded or the nonce is "
                                                    "used, so no block can run the "
                                                    "transaction again; false for a failure "
                                                    "that used nothing (a later block may "
                                                    "still run it)"
                                                ),
                                            },
                                            "tx": TX_SUMMARY,
                                            "receipt": RECEIPT,
                                        }
                                    ),
                                    _obj({"status": {"const": "pending"}, "tx": TX_SUMMARY}),
                                ]
                            }
                        )
                    },
                    [400, 404],
                ),
            }
        },
        "/blocks": {
            "get": {
                "tags": ["client"],
                "summary": "The newest blocks",
                "parameters": [_query("limit", BLOCK_LIST_MAX, 20, "how many")],
                "responses": _responses(
                    {
                        200: _ok(
                            _obj(
                                {
                                    "blocks": {
                                        "type": "array",
                                        "items": _obj(
                                            {
                                                "height": NAT,
                                                "hash": _hex(32, "block hash"),
                                                "timestamp_ms": NAT,
                                                "tx_count": NAT,
                                                "state_digest": _hex(32, "state digest after"),
                                            }
                                        ),
                                    }
                                }
                            )
                        )
                    },
                    [400],
                ),
            }
        },
        "/blocks/{height}": {
            "get": {
                "tags": ["client"],
                "summary": "A block with its transactions, receipts and commit certificate",
                "parameters": [
                    _path(
                        "height",
                        {"type": "string", "pattern": "^[0-9]+$", "maxLength": 19},
                        f"decimal height, 0 to {HEIGHT_MAX}",
                    )
                ],
                "responses": _responses({200: _ok(BLOCK)}, [400, 404]),
            }
        },
        "/blocks/hash/{hash}": {
            "get": {
                "tags": ["client"],
                "summary": "A block by its hash",
                "parameters": [HASH_PATH],
                "responses": _responses({200: _ok(BLOCK)}, [400, 404]),
            }
        },
        "/status": {
            "get": {
                "tags": ["client"],
                "summary": "Height, head, state digest, view, primary, peers and counters",
                "responses": _responses({200: _ok(STATUS)}, []),
            }
        },
        "/accounts/{key}": {
            "get": {
                "tags": ["client"],
                "summary": "The nonces of a sender",
                "parameters": [
                    _path(
                        "key",
                        {"type": "string", "pattern": HEX32},
                        "ed25519 public key, 64 hex digits",
                    )
                ],
                "responses": _responses(
                    {
                        200: _ok(
                            _obj(
                                {
                                    "public_key": _hex(32, "the key"),
                                    "identity": NULLABLE_STR,
                                    "committed_nonce": NAT,
                                    "next_nonce": NAT,
                                }
                            )
                        )
                    },
                    [400],
                ),
            }
        },
        "/state/{contract}": {
            "get": {
                "tags": ["client"],
                "summary": "A contract's state at the head",
                "parameters": [_path("contract", {"type": "string"}, "contract name"), AFTER],
                "responses": _responses({200: state_ok}, [400, 404]),
            }
        },
        "/state/{contract}/{path}": {
            "get": {
                "tags": ["client"],
                "summary": "Part of a contract's state: path segments separated by /",
                "parameters": [
                    _path("contract", {"type": "string"}, "contract name"),
                    _path("path", {"type": "string"}, "query path, e.g. steel/main (may be empty)"),
                    AFTER,
                ],
                "responses": _responses({200: state_ok}, [400, 404]),
            }
        },
        "/events/{subject}": {
            "get": {
                "tags": ["client"],
                "summary": "The history of one subject (an item, an order, a machine)",
                "parameters": [
                    _path("subject", {"type": "string"}, "e.g. order:ord-1"),
                    _query(
                        "limit",
                        EVENTS_LIMIT_MAX,
                        1000,
                        "how many of the newest events (oldest first)",
                    ),
                ],
                "responses": _responses(
                    {200: _ok(_obj({"subject": {"type": "string"}, "events": {"type": "array"}}))},
                    [400],
                ),
            }
        },
        "/peer/batch": {
            "post": {
                "tags": ["peer"],
                "summary": "Consensus messages and forwarded transactions from a validator",
                "description": (
                    "Messages that do not decode, are badly signed, come from outside the "
                    "validator set or are out of place are dropped and counted "
                    "(millchain_consensus_messages_rejected_total); transactions refused at "
                    "admission are counted by reason (millchain_txs_rejected_total). " + LINK_PROOF
                ),
                "parameters": PEER_HEADERS,
                "requestBody": _body(
                    MSGPACK,
                    _obj(
                        {
                            "sender": NAT,
                            "messages": {
                                "type": "array",
                                "items": _bin("a signed consensus message"),
                            },
                            "txs": {"type": "array", "items": _bin("a signed transaction")},
                        },
                        required=["messages", "txs"],
                    ),
                    "a peer batch (canonical msgpack)",
                ),
                "responses": _peer_responses(
                    {200: _ok(_obj({"ok": {"const": True}}, extra=False))},
                    [400, 403, 408, 413],
                )
                | {"503": PAUSED},
            }
        },
        "/peer/stream": {
            "get": {
                "tags": ["peer"],
                "summary": "A WebSocket carrying a validator's peer batches",
                "description": (
                    "What the validators send each other: each binary frame is one batch as "
                    "POST /peer/batch takes it (canonical msgpack), answered by one binary ack "
                    'frame, msgpack {"status": the status POST /peer/batch would have '
                    'answered, "error": null or what was wrong}, and with a 429 '
                    '"retry_after_s": the Retry-After it would have carried. A batch that takes '
                    "more tokens than the rate limit's burst is answered 413 (here and on POST "
                    "/peer/batch): its sender must split it. A frame larger than the "
                    "chain's body_bytes_max closes the stream with code 1009. The node "
                    f"chooses the WebSocket subprotocol {subprotocol(PROTOCOL_VERSION)} when "
                    "asked for it, so the opener learns its protocol version too. " + LINK_PROOF
                ),
                "parameters": PEER_HEADERS,
                "responses": _peer_responses(
                    {101: {"description": "switching to the WebSocket protocol"}},
                    [400, 403],
                    limited=False,
                ),
            }
        },
        "/peer/pending": {
            "post": {
                "tags": ["peer"],
                "summary": "How far this node holds each sender's ready run",
                "description": (
                    "Asked by a backup whose senders' nonces stalled: for each sender, the first "
                    "nonce this node does not hold past its committed nonce and the consecutive "
                    "pending ones, and when the oldest batch waiting in this node's admission "
                    "queue arrived. The backup then forwards the transactions from there, unless "
                    "they may be waiting in that queue. " + PEER_READ_LIMIT
                ),
                "parameters": PEER_HEADERS,
                "requestBody": _body(
                    MSGPACK,
                    _obj(
                        {
                            "senders": {
                                "type": "array",
                                "maxItems": PENDING_QUERY_MAX,
                                "items": _bin("a sender's 32-byte public key"),
                            }
                        },
                        required=["senders"],
                    ),
                    "the stalled senders (canonical msgpack)",
                ),
                "responses": _peer_responses(
                    {
                        200: _ok(
                            _obj(
                                {
                                    "next_nonces": {"type": "array", "items": NAT},
                                    "queued_since_ms": {
                                        "oneOf": [NAT, {"type": "null"}],
                                        "description": (
                                            "wall-clock ms when the oldest batch waiting for "
                                            "admission here arrived; null if none waits"
                                        ),
                                    },
                                },
                                extra=False,
                            ),
                            media=MSGPACK,
                        )
                    },
                    [400, 403, 408, 413, 503],
                ),
            }
        },
        "/peer/blocks": {
            "get": {
                "tags": ["peer"],
                "summary": "Certified blocks for a peer catching up",
                "description": PEER_READ_LIMIT,
                "parameters": [
                    *PEER_HEADERS,
                    _query("from", HEIGHT_MAX, 1, "first height", minimum=1),
                    _query(
                        "to",
                        HEIGHT_MAX,
                        1,
                        f"last height (at most from + {FETCH_BLOCKS_MAX - 1})",
                        minimum=1,
                    ),
                ],
                "responses": _peer_responses(
                    {
                        200: _ok(
                            {
                                "type": "array",
                                "items": {
                                    "type": "array",
                                    "prefixItems": [_bin("block wire"), _bin("certificate wire")],
                                    "minItems": 2,
                                    "maxItems": 2,
                                },
                            },
                            media=MSGPACK,
                        )
                    },
                    [400, 403],
                ),
            }
        },
        "/peer/history": {
            "get": {
                "tags": ["peer"],
                "summary": "Certified blocks with their receipts and write sets, for catching up",
                "description": (
                    "Each block with its commit certificate, the receipts the node holds for "
                    "it, and its write-set blob (nil if the node kept none); and the proofs of "
                    "the stable checkpoints among those heights (node/history.py). "
                    + PEER_READ_LIMIT
                ),
                "parameters": [
                    *PEER_HEADERS,
                    _query("from", HEIGHT_MAX, 1, "first height", minimum=1),
                    _query(
                        "to",
                        HEIGHT_MAX,
                        1,
                        f"last height (at most from + {FETCH_BLOCKS_MAX - 1})",
                        minimum=1,
                    ),
                ],
                "responses": _peer_responses(
                    {
                        200: _ok(
                            _obj(
                                {
                                    "blocks": {
                                        "type": "array",
                                        "items": {
                                            "type": "array",
                                            "prefixItems": [
                                                _bin("block wire"),
                                                _bin("certificate wire"),
                                                {"type": "array", "items": _bin("receipt")},
                                                {
                                                    "oneOf": [
                                                        _bin("write-set blob"),
                                                        {"type": "null"},
                                                    ]
                                                },
                                            ],
                                            "minItems": 4,
                                            "maxItems": 4,
                                        },
                                    },
                                    "checkpoints": {
                                        "type": "array",
                                        "items": {
                                            "type": "array",
                                            "prefixItems": [NAT, _bin("checkpoint proof")],
                                            "minItems": 2,
                                            "maxItems": 2,
                                        },
                                    },
                                },
                                extra=False,
                            ),
                            media=MSGPACK,
                        )
                    },
                    [400, 403],
                ),
            }
        },
        "/admin/pause": {
            "get": {
                "tags": ["admin"],
                "summary": "The armed pause point and where the node is paused",
                "security": ADMIN_SECURITY,
                "responses": _responses({200: _ok(PAUSE)}, [403], limited=False),
            },
            "post": {
                "tags": ["admin"],
                "summary": "Arm a pause point",
                "security": ADMIN_SECURITY,
                "requestBody": _body(
                    JSON,
                    _obj(
                        {
                            "phase": {"enum": PHASES},
                            "seq_min": {"type": "integer", "minimum": 0, "maximum": HEIGHT_MAX},
                        },
                        required=["phase"],
                        extra=False,
                    ),
                    "the phase and the first sequence number to pause at",
                ),
                "responses": _responses({200: _ok(PAUSE)}, [400, 403, 408, 413], limited=False),
            },
        },
        "/admin/resume": {
            "post": {
                "tags": ["admin"],
                "summary": "Leave a pause",
                "security": ADMIN_SECURITY,
                "responses": _responses({200: _ok(PAUSE)}, [403], limited=False),
            }
        },
        "/admin/faults": {
            "get": {
                "tags": ["admin"],
                "summary": "Per-peer fault rules and their counters (node/faults.py)",
                "security": ADMIN_SECURITY,
                "responses": _responses({200: _ok(FAULTS)}, [403], limited=False),
            },
            "post": {
                "tags": ["admin"],
                "summary": "Set or clear a per-peer fault rule, or reseed the fault layer",
                "security": ADMIN_SECURITY,
                "requestBody": _body(
                    JSON,
                    _obj(
                        {
                            "peer": {"type": "string", "description": "a peer's name, or *"},
                            "clear": {"type": "boolean"},
                            "seed": {"type": "integer"},
                            "delay_ms": {"type": "integer", "minimum": 0, "maximum": DELAY_MS_MAX},
                            "jitter_ms": {
                                "type": "integer",
                                "minimum": 0,
                                "maximum": DELAY_MS_MAX,
                            },
                            "loss": {"type": "number", "minimum": 0, "maximum": 1},
                            "duplicate": {"type": "number", "minimum": 0, "maximum": 1},
                            "blocked": {"type": "boolean"},
                        },
                        extra=False,
                    ),
                    "a rule (fields left out: no such fault), {clear: true}, or {seed: N}",
                ),
                "responses": _responses({200: _ok(FAULTS)}, [400, 403, 408, 413], limited=False),
            },
        },
        "/openapi.json": {
            "get": {
                "tags": ["meta"],
                "summary": "This document",
                "responses": _responses({200: _ok({"type": "object"})}, []),
            }
        },
        "/metrics": {
            "get": {
                "tags": ["meta"],
                "summary": "Prometheus metrics (text format, or OpenMetrics on request)",
                "responses": _responses({200: _ok({"type": "string"}, media="text/plain")}, []),
            }
        },
        "/": {"get": _redirect("The explorer page")},
        "/explorer": {"get": _redirect("The explorer page")},
        "/explorer/": {
            "get": {
                "tags": ["explorer"],
                "summary": "The explorer page",
                "responses": _responses({200: _ok({"type": "string"}, media="text/html")}, []),
            }
        },
        "/explorer/info": _explorer_json("The chain id, this node and the validators"),
        "/explorer/cluster": _explorer_json("Every validator's status as this node sees it"),
        "/explorer/views": _explorer_json("View-change history"),
        "/explorer/events": {
            "get": {
                "tags": ["explorer"],
                "summary": "Server-sent events: `head` whenever the height or view changes",
                "responses": _responses(
                    {200: _ok({"type": "string"}, media="text/event-stream")}, []
                ),
            }
        },
        "/explorer/static/{filename}": {
            "get": {
                "tags": ["explorer"],
                "summary": "The explorer's static files",
                "parameters": [_path("filename", {"type": "string"}, "file under node/static/")],
                "responses": {
                    **_responses({200: {"description": "the file"}}, []),
                    "403": {"description": "outside node/static/ (empty body)"},
                    "404": {"description": "no such file (empty body)"},
                },
            }
        },
    }


ADMIN_SECURITY: list[Schema] = [{}, {"adminToken": []}]
PEER_READ_LIMIT = (
    "Without a validator's Millchain-Peer headers (node/peer_auth.py) a request takes a token "
    "of the client rate limit (429 over it); headers that name a validator without proving it "
    "get 403."
)
LINK_PROOF = (
    "A validator names itself with the Millchain-Peer headers (node/peer_auth.py): then its "
    "transactions are admitted as forwards. Without them they are clients' transactions, and "
    "the batch takes a token of the client rate limit, and one per message and transaction "
    "(429 over it). Headers that name a validator without proving it get 403."
)
PROTOCOL_PARAMETER: Schema = {
    "name": PROTOCOL_HEADER,
    "in": "header",
    "required": True,
    "description": (
        f"the sender's protocol version (node/protocol.py): {PROTOCOL_VERSION} here; a request "
        f"without it, or with another, is refused with {REFUSED_STATUS}"
    ),
    "schema": {"type": "string", "pattern": "^[0-9]+$"},
}
LINK_PROOF_HEADERS: list[Schema] = [
    {
        "name": name,
        "in": "header",
        "required": False,
        "description": description,
        "schema": {"type": "string"},
    }
    for name, description in (
        ("Millchain-Peer", "the sending validator's index"),
        ("Millchain-Peer-Time", "wall-clock milliseconds; within 60 s of the receiver's"),
        (
            "Millchain-Peer-Signature",
            "hex ed25519 signature, domain millchain/peer-link/v1, over [sender, receiver, time]",
        ),
    )
]
PEER_HEADERS: list[Schema] = [PROTOCOL_PARAMETER, *LINK_PROOF_HEADERS]


def _redirect(summary: str) -> Schema:
    return {
        "tags": ["explorer"],
        "summary": summary,
        "responses": _responses(
            {
                302: {
                    "description": "redirect to /explorer/",
                    "headers": {"Location": {"schema": {"const": "/explorer/"}}},
                }
            },
            [],
        ),
    }


def _explorer_json(summary: str) -> Schema:
    return {
        "get": {
            "tags": ["explorer"],
            "summary": summary,
            "responses": _responses({200: _ok({"type": "object"})}, []),
        }
    }


def document() -> Schema:
    """The OpenAPI 3.1 document of the node's HTTP API."""
    return {
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "info": {
            "title": "millchain node API",
            "version": "1",
            "description": (
                "Client, peer and admin API of a millchain node. Errors are JSON "
                '{"error": message} with a 4xx or 503 status. Client routes are rate-limited '
                "per remote address (429 with Retry-After); the admin routes, and what "
                "validators send on their links, are not. "
                "Admin routes answer requests from loopback, or with the node's admin token, "
                "and refuse what a browser sends for a page of another origin (Origin, "
                "Sec-Fetch-Site)."
            ),
        },
        "components": {
            "securitySchemes": {
                "adminToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "the admin_token of the node's config file",
                }
            },
            "schemas": {"Error": ERROR},
        },
        "paths": _with_unrouted(_paths()),
    }


def _with_unrouted(paths: Schema) -> Schema:
    """aiohttp matches no route for a path parameter holding '{', '}' or '/': such a request
    gets 404, so every operation with a path parameter documents it."""
    for template, item in paths.items():
        if "{" in template:
            for operation in item.values():
                operation["responses"].setdefault("404", _error(404))
    return paths


DOCUMENT_KEY = web.AppKey("openapi", dict)


async def get_openapi(request: web.Request) -> web.Response:
    return web.json_response(request.app[DOCUMENT_KEY])


def setup_openapi(app: web.Application) -> None:
    app[DOCUMENT_KEY] = document()
    app.router.add_get("/openapi.json", get_openapi)
