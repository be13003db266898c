"""Per-client-IP rate limits of the API: a token bucket per IP, the public limit or a trusted network's.

Every client IP gets ``api.rate_limit_per_s`` requests a second with bursts of ``api.rate_limit_burst``;
past it the API answers 429 with ``Retry-After``.  An IP inside one of ``api.trusted_networks`` gets
that network's limit instead -- per IP too, with its own buckets -- or none when its rate is 0, so
an operator's own monitoring is not limited with the public.  When networks overlap, the most
specific one (the longest prefix) holds the IP.  An IPv4 address seen as IPv6 (``::ffff:10.0.0.1``)
is matched as the IPv4 address; a client that is not an IP address (a malformed X-Forwarded-For hop)
is a public client.

Behind a reverse proxy on the same machine every request comes from the proxy's address: set
``api.trust_forwarded_for`` there, or a trusted loopback network would exempt the whole public.
"""
from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable, Iterable

from aiohttp import web

from pool.config import TrustedNetwork

#: Client IPs whose network was looked up, kept for the next request of the same client.
_MAX_REMEMBERED = 100_000


class RateLimiter:
    """A token bucket per client IP: ``rate`` tokens a second, at most ``burst``; bounded memory."""

    def __init__(self, rate: float, burst: int, *, max_clients: int = 100_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.max_clients = max_clients
        self.clock = clock
        self.buckets: dict[str, list[float]] = {}

    def take(self, client: str) -> float:
        """0 when the request may go on, else the seconds until it would."""
        if self.rate <= 0:
            return 0.0
        now = self.clock()
        bucket = self.buckets.get(client)
        if bucket is None:
            if len(self.buckets) >= self.max_clients:
                self._forget(now)
            bucket = self.buckets[client] = [self.burst, now]
        tokens = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
        bucket[1] = now
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return 0.0
        bucket[0] = tokens
        return (1.0 - tokens) / self.rate

    def _forget(self, now: float) -> None:
        """Drop the clients whose bucket has refilled (they lose nothing); the oldest half if none has."""
        full_after = self.burst / self.rate
        for client in [c for c, (_, last) in self.buckets.items() if now - last >= full_after]:
            del self.buckets[client]
        if len(self.buckets) >= self.max_clients:
            for client in sorted(self.buckets, key=lambda c: self.buckets[c][1])[: len(self.buckets) // 2]:
                del self.buckets[client]


class RateLimits:
    """The public limit and one limiter per trusted network (see the module docstring)."""

    def __init__(self, rate: float, burst: int, networks: Iterable[TrustedNetwork] = (), *,
                 max_clients: int = 100_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.public = RateLimiter(rate, burst, max_clients=max_clients, clock=clock)
        # Most specific first: the first network that holds an IP is its network.
        self.networks = [
            (trusted.network, RateLimiter(trusted.rate_limit_per_s, trusted.rate_limit_burst or burst,
                                          max_clients=max_clients, clock=clock))
            for trusted in sorted(networks, key=lambda trusted: -trusted.network.prefixlen)]
        self._limiter_of: dict[str, RateLimiter] = {}

    def limiter_for(self, client: str) -> RateLimiter:
        if not self.networks:
            return self.public
        limiter = self._limiter_of.get(client)
        if limiter is None:
            limiter = self._lookup(client)
            if len(self._limiter_of) >= _MAX_REMEMBERED:
                self._limiter_of.clear()
            self._limiter_of[client] = limiter
        return limiter

    def _lookup(self, client: str) -> RateLimiter:
        try:
            address = ipaddress.ip_address(client)
        except ValueError:
            return self.public
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        for network, limiter in self.networks:
            if address.version == network.version and address in network:
                return limiter
        return self.public

    def take(self, client: str) -> float:
        """0 when the request may go on, else the seconds until it would."""
        return self.limiter_for(client).take(client)


def client_ip(request: web.Request, trust_forwarded_for: bool) -> str:
    if trust_forwarded_for:
        forwarded = request.headers.get("X-Forwarded-For", "")
        hop = forwarded.rsplit(",", 1)[-1].strip()
        if hop:
            return hop[:64]
    return request.remote or ""
