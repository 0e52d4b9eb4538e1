"""Which validator opened a peer link: a signed proof in the headers of the request.

A validator's node opens its stream to a peer (GET /peer/stream, node/peers.py) with three
headers besides its protocol version's (node/protocol.py): its index, the time, and its
signature (domain PEER_LINK) over [its index, the peer's index, the time]. The peer takes the
link as that validator's when the index is another validator's, the signature its key's, and
the time within PROOF_WINDOW_MS of its own clock.

What rides on it: transactions forwarded on a validator's link are admitted as forwards, out of
the clients' share of the pool and past the client rate limit (every validator admitted them
from a client already, under those limits). On any other link (an observer forwarding what its
clients sent, or anybody at all) they are admitted as clients' transactions, under the same
limits as POST /txs. Consensus messages need no such proof: each is signed by its sender.

A proof names the receiving validator, so it cannot open a link to another node; within its
window it can be replayed by whoever saw the headers, which on the links this simulator runs
(loopback, or namespaces on one host) is somebody who could read the nodes' key files as well.
"""

from __future__ import annotations

from collections.abc import Mapping

from contracts.schema import is_decimal
from ledger import crypto
from ledger.crypto import Domain, KeyPair
from ledger.encoding import encode
from ledger.errors import SignatureError
from ledger.genesis import Genesis
from node.errors import NodeError

PEER_HEADER = "Millchain-Peer"
TIME_HEADER = "Millchain-Peer-Time"
SIGNATURE_HEADER = "Millchain-Peer-Signature"
PROOF_WINDOW_MS = 60_000


class LinkProofError(NodeError):
    """Headers that name a validator as the opener of a link without proving it."""


def _payload(sender: int, receiver: int, time_ms: int) -> bytes:
    return encode([sender, receiver, time_ms])


def link_headers(
    keys: KeyPair, chain_id: str, *, sender: int, receiver: int, now_ms: int
) -> dict[str, str]:
    """The headers with which validator `sender` opens a link to validator `receiver`."""
    signature = keys.sign(Domain.PEER_LINK, chain_id, _payload(sender, receiver, now_ms))
    return {
        PEER_HEADER: str(sender),
        TIME_HEADER: str(now_ms),
        SIGNATURE_HEADER: signature.hex(),
    }


def linked_validator(
    headers: Mapping[str, str], genesis: Genesis, *, receiver: int, now_ms: int
) -> int | None:
    """The index of the validator that opened a link to `receiver`, by the request's headers;
    None when they name none. Raises LinkProofError when they name one without proving it."""
    named = headers.get(PEER_HEADER)
    if named is None:
        return None
    time_text = headers.get(TIME_HEADER, "")
    signature_text = headers.get(SIGNATURE_HEADER, "")
    if not (is_decimal(named) and is_decimal(time_text)):
        raise LinkProofError(f"{PEER_HEADER} and {TIME_HEADER} must be decimal integers")
    sender, time_ms = int(named), int(time_text)
    if not 0 <= sender < genesis.n or sender == receiver:
        raise LinkProofError(f"{PEER_HEADER} {sender} is no other validator of this chain")
    if abs(now_ms - time_ms) > PROOF_WINDOW_MS:
        raise LinkProofError(
            f"{TIME_HEADER} {time_ms} is more than {PROOF_WINDOW_MS} ms from this node's clock "
            f"({now_ms})"
        )
    try:
        signature = bytes.fromhex(signature_text)
        crypto.verify(
            genesis.validators[sender].public_key,
            Domain.PEER_LINK,
            genesis.chain_id,
            _payload(sender, receiver, time_ms),
            signature,
        )
    except (ValueError, SignatureError) as exc:
        raise LinkProofError(f"the link's proof is not validator {sender}'s: {exc}") from exc
    return sender
