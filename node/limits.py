"""Overload limits of the HTTP API: per-client token buckets, body and idle timeouts, the admin
token.

A client (one remote address; all of loopback, or an IPv6 /64, counts as one: see `client_key`)
has a bucket of `rate_limit_burst` tokens refilled at `rate_limit_per_s`; every client API request
takes one token and a batch of transactions one per transaction. A request that finds too few
tokens is refused with 429 and a Retry-After saying when enough will be back; it changes nothing.
The defaults are far above what one machine's benchmark sends (`millchain bench` submits from 32
senders, all from 127.0.0.1), so only a client flooding the node is slowed down. The admin routes
and what validators send on their links are not counted: throttling them would slow consensus
itself. A peer batch on any other link takes tokens as a client's request does, and so does a
peer read (blocks, history, pending) that no validator's link headers vouch for (node/api.py).
A peer batch refused for the rate is kept by its sender and sent again after the Retry-After
(node/peers.py); one that takes more tokens than the burst is answered 413, as a batch too
large for the peer, so that its sender splits it instead of retrying it for ever.
"""

from __future__ import annotations

import functools
import hmac
import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from node.errors import Rejection

RATE_PER_S_DEFAULT = 20_000
RATE_BURST_DEFAULT = 40_000
IDLE_TIMEOUT_S_DEFAULT = 30.0
BODY_TIMEOUT_S_DEFAULT = 10.0
# Buckets remembered at most; the least recently seen client is forgotten first (a forgotten
# client starts again with a full bucket, which is the generous direction).
CLIENTS_MAX = 10_000


# An IPv6 client's bucket covers its /64: one host is routinely given a whole /64 and may send
# from any address in it.
IPV6_PREFIX_BITS = 64
LOOPBACK_KEY = "loopback"


@functools.lru_cache(maxsize=CLIENTS_MAX)
def client_key(remote: str) -> str:
    """The bucket a remote address draws on: the address itself for IPv4, its /64 for IPv6, and
    one bucket for all of loopback. Any local process may send from any of 127.0.0.0/8's 16
    million addresses, and a host from any address of its /64, each of which used to start with
    a full bucket of its own. Anything that is not an IP address (a Unix socket's peer, say)
    is its own key."""
    try:
        address = ipaddress.ip_address(remote)
    except ValueError:
        return remote
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_loopback:
        return LOOPBACK_KEY
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((address, IPV6_PREFIX_BITS), strict=False))
    return str(address)


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiLimits:
    """The node's HTTP limits (from its config file; see node/config.py)."""

    rate_limit_per_s: float = RATE_PER_S_DEFAULT
    rate_limit_burst: int = RATE_BURST_DEFAULT
    # Seconds a connection may stay idle between requests, and at most to send a request's
    # line and headers after connecting.
    idle_timeout_s: float = IDLE_TIMEOUT_S_DEFAULT
    # Seconds a client may take to send a request's body once its headers arrived.
    body_timeout_s: float = BODY_TIMEOUT_S_DEFAULT
    admin_token: str | None = None

    def __post_init__(self) -> None:
        for name in ("rate_limit_per_s", "rate_limit_burst", "idle_timeout_s", "body_timeout_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        if self.admin_token is not None and len(self.admin_token) < 16:
            raise ValueError("admin_token must be at least 16 characters when set")


class RateLimited(Rejection):
    """A client over its request rate: 429, retry after `retry_after_s`. `exceeds_burst`: the
    request takes more tokens than the bucket ever holds, so no wait lets it through; only
    smaller requests can pass."""

    status = 429

    def __init__(self, message: str, *, retry_after_s: int, exceeds_burst: bool = False) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.exceeds_burst = exceeds_burst


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated_s: float


class RateLimiter:
    """Token buckets per client key (a remote address's `client_key`)."""

    def __init__(
        self,
        *,
        rate_per_s: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        clients_max: int = CLIENTS_MAX,
    ) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._clock = clock
        self._clients_max = clients_max
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self.refused = 0

    def take(self, client: str, tokens: int = 1) -> None:
        """Take `tokens` from the client's bucket, or raise RateLimited and take nothing."""
        now = self._clock()
        key = client_key(client)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = _Bucket(tokens=float(self.burst), updated_s=now)
            self._buckets[key] = bucket
            if len(self._buckets) > self._clients_max:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            elapsed = max(0.0, now - bucket.updated_s)
            bucket.tokens = min(float(self.burst), bucket.tokens + elapsed * self.rate_per_s)
            bucket.updated_s = now
        if tokens > self.burst:
            self.refused += 1
            raise RateLimited(
                f"a request of {tokens} transactions (or peer messages) exceeds the rate "
                f"limit's burst of {self.burst}; send smaller batches",
                retry_after_s=1,
                exceeds_burst=True,
            )
        if bucket.tokens < tokens:
            self.refused += 1
            wait_s = (tokens - bucket.tokens) / self.rate_per_s
            raise RateLimited(
                f"rate limit exceeded for {client}: {self.rate_per_s:g} requests per second "
                f"(burst {self.burst}); retry after {wait_s:.3f} s",
                retry_after_s=max(1, math.ceil(wait_s)),
            )
        bucket.tokens -= tokens


def token_matches(header: str | None, token: str | None) -> bool:
    """Whether an Authorization header carries `Bearer <token>` (compared in constant time)."""
    if token is None or header is None:
        return False
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(presented.strip().encode("utf-8", "surrogateescape"), token.encode())
