"""The protocol version: which peers a node can run a chain with, and which logs it can replay.

One number covers everything one node's code must read as another's wrote it: the consensus
messages and what their signatures cover (consensus/messages.py, consensus/codec.py), the blocks,
transactions and certificates they carry (ledger/), the peer routes (node/api.py), and the
consensus log a node keeps in its database (node/wal.py). Nodes of two versions cannot run one
chain: at best they agree until the first message whose meaning changed (a view change, for 1
and 2), then the chain stalls. So they refuse each other up front, and say why.

The number lives here rather than in consensus/ or ledger/ because it versions what the node
shell exchanges and stores, which is more than either package defines (the peer routes, the
log), and those packages stay free of peers and disks; a change in any of them that makes old and
new nodes misread each other raises it, and adds a line below.

Versions:
  1  the protocol before the number was stated: a link or a database that states none speaks 1.
  2  a view change is signed over its summary (consensus.messages.ViewChangeSummary: each
     prepared proof with its block by header), and a NEW-VIEW carries those summaries with each
     re-proposed block once; blocks are bounded by Genesis.block_bytes_max. A view change or a
     logged NEW-VIEW of version 1 no longer verifies.

Where it is checked:
  - every request under /peer/ states the sender's version in PROTOCOL_HEADER; node/api.py
    answers one that states none or another with REFUSED_STATUS, its body naming both versions
    and the answer's PROTOCOL_HEADER this node's, before reading anything else of the request;
  - a link (node/peers.py) asks for the WebSocket subprotocol `subprotocol(PROTOCOL_VERSION)`,
    which a peer of this version chooses: a peer that takes the stream without it predates the
    number (version 1), and the link is dropped as by a refusal;
  - the database records the version its chain and log were written with (node/storage.py): a
    node upgrades one of version 1 in place, and refuses to start on one of a later version.
"""

from __future__ import annotations

from contracts.schema import is_decimal

PROTOCOL_VERSION = 2
# What a peer or a database that states no version speaks.
UNSTATED_VERSION = 1
PROTOCOL_HEADER = "Millchain-Protocol"
# 409 Conflict: the request is well formed, and conflicts with what this node runs. (426 would
# ask the sender to upgrade, which is wrong when the sender is the newer one.)
REFUSED_STATUS = 409
_SUBPROTOCOL_PREFIX = "millchain."
# Characters of a stated version quoted back in a refusal.
_QUOTED_MAX = 32


def stated_version(text: str | None) -> int | None:
    """The version a PROTOCOL_HEADER value states: UNSTATED_VERSION when there is none, None when
    it is not a version at all."""
    if text is None:
        return UNSTATED_VERSION
    if not is_decimal(text) or len(text) > _QUOTED_MAX:
        return None
    return int(text)


def describe(version: int | None) -> str:
    """A version as a refusal names it."""
    if version is None:
        return "an unreadable version"
    if version == UNSTATED_VERSION:
        return f"protocol {UNSTATED_VERSION} (states no version: from before versions were stated)"
    return f"protocol {version}"


def refusal(text: str | None) -> str | None:
    """Why a peer request whose PROTOCOL_HEADER is `text` is refused, or None if it is not."""
    version = stated_version(text)
    if version == PROTOCOL_VERSION:
        return None
    stated = "" if text is None or version is not None else f" ({text[:_QUOTED_MAX]!r})"
    return (
        f"this node speaks millchain protocol {PROTOCOL_VERSION}; the request speaks "
        f"{describe(version)}{stated}. Nodes of different protocol versions cannot run one chain: "
        "run the same millchain version on every node"
    )


def subprotocol(version: int) -> str:
    """The WebSocket subprotocol of a peer stream of `version`."""
    return f"{_SUBPROTOCOL_PREFIX}{version}"


def subprotocol_version(chosen: str | None) -> int | None:
    """The version of the subprotocol a peer chose for a stream: UNSTATED_VERSION when it chose
    none, None when it chose one that names no version."""
    if chosen is None:
        return UNSTATED_VERSION
    if not chosen.startswith(_SUBPROTOCOL_PREFIX):
        return None
    return stated_version(chosen.removeprefix(_SUBPROTOCOL_PREFIX))
