"""Fixed-window limits (docs/PROTOCOL.md "Transport and auth", "Flow control and limits"):

* per client IP, auth failures: after ``WSS_AUTH_FAILURE_LIMIT`` failures in
  ``WSS_AUTH_FAILURE_WINDOW_S`` seconds, handshakes without a valid key get HTTP 429 with
  ``Retry-After`` until the window ends (``get_limiter``);
* per API key, session starts: more than ``WSS_MAX_NEW_SESSIONS_PER_KEY_PER_MIN`` new or resumed
  sessions in a minute get ``RATE_LIMITED`` (``allow_new_session``).

Counts live in Redis when ``REDIS_URL`` is set, so every node sees the same count, else in this
process. A fixed window (one counter with a TTL) is enough here: the limits slow guessing and
churn, and 256-bit keys make guessing hopeless anyway. The stores follow Django's session
backends (``aload``/``ahit``/``adelete``, one key builder per limit, a TTL). A Redis outage must
never lock clients out: a limiter then counts in this process and says so in the log and
``openasr_redis_errors``.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from transcription import metrics
from transcription.redis_pool import Redis, get_redis

log = logging.getLogger(__name__)

KEY_PREFIX = "openasr:authfail:"
SESSION_KEY_PREFIX = "openasr:newsessions:"
SESSION_WINDOW_S = 60
REDIS_TIMEOUT_S = 0.5  # the handshake waits on this: keep it short
REDIS_RETRY_AFTER_ERROR_S = 5.0  # after an error, count locally for this long before retrying
_MAX_LOCAL_ENTRIES = 50_000

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def failure_key(subject: str) -> str:
    """The store key counting auth failures of one client address."""
    return f"{KEY_PREFIX}{subject}"


def new_sessions_key(key_id: str) -> str:
    """The store key counting session starts of one API key (``KeyIdentity["id"]``)."""
    return f"{SESSION_KEY_PREFIX}{key_id}"


# --- client address ---


@lru_cache(maxsize=8)
def trusted_networks(entries: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    """Parse ``WSS_TRUSTED_PROXIES`` (addresses or CIDR networks)."""
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ImproperlyConfigured(
                f"WSS_TRUSTED_PROXIES has entry {entry!r}: not an IP address or network"
            ) from None
    return tuple(networks)


def parse_ip(raw: str) -> IPAddress | None:
    """An address from a peer or ``X-Forwarded-For`` hop (``[v6]:port``/``v4:port`` too)."""
    text = raw.strip().strip('"')
    if text.startswith("["):  # [2001:db8::1]:443
        text = text[1 : text.find("]")] if "]" in text else text
    elif text.count(":") == 1:  # 203.0.113.9:443
        text = text.split(":", 1)[0]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _is_trusted(ip: IPAddress, trusted: Sequence[IPNetwork]) -> bool:
    return any(ip.version == net.version and ip in net for net in trusted)


def client_ip(peer: str | None, forwarded_for: Iterable[str], trusted: Sequence[str]) -> str:
    """The client's address: the direct peer, or, when the peer is a trusted proxy, the
    right-most ``X-Forwarded-For`` hop that is not a trusted proxy (hops to its left are
    whatever the client chose to send)."""
    peer_ip = parse_ip(peer) if peer else None
    if peer_ip is None:
        return peer or "unknown"
    networks = trusted_networks(tuple(trusted))
    if not networks or not _is_trusted(peer_ip, networks):
        return str(peer_ip)
    hops = [hop for value in forwarded_for for hop in value.split(",") if hop.strip()]
    current = peer_ip
    for hop in reversed(hops):
        ip = parse_ip(hop)
        if ip is None:
            break  # garbage from a trusted hop: the last good address is the best we know
        current = ip
        if not _is_trusted(ip, networks):
            break
    return str(current)


def rate_limit_subject(ip: str) -> str:
    """What the limit counts: the address, or its /64 for IPv6 (one subscriber usually holds
    a whole /64, so counting single v6 addresses would not limit anyone)."""
    parsed = parse_ip(ip)
    if isinstance(parsed, ipaddress.IPv6Address):
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return str(parsed) if parsed is not None else ip


# --- stores ---


@dataclass(frozen=True)
class WindowCount:
    """Hits of one subject in the current window, and seconds until the window ends."""

    count: int
    retry_after_s: int


class CountStore(Protocol):
    """Counts hits per subject for a fixed window; ``key`` builds the store key of a subject."""

    key: Callable[[str], str]

    async def ahit(self, subject: str, window_s: int) -> WindowCount:
        """Record one hit; return the count including it."""
        ...

    async def aload(self, subject: str) -> WindowCount:
        """The current count (0 when none)."""
        ...

    async def adelete(self, subject: str) -> None:
        """Forget a subject's hits."""
        ...


class InMemoryCountStore:
    """Single-node store (no ``REDIS_URL``), also the fallback while Redis is unreachable."""

    def __init__(self, key: Callable[[str], str] = failure_key) -> None:
        self.key = key
        self._data: dict[str, tuple[float, int]] = {}  # key → (window end, count)

    async def ahit(self, subject: str, window_s: int) -> WindowCount:
        now = time.monotonic()
        key = self.key(subject)
        end, count = self._data.get(key, (0.0, 0))
        if end <= now:
            if len(self._data) >= _MAX_LOCAL_ENTRIES:  # bound memory: drop ended windows
                self._data = {k: v for k, v in self._data.items() if v[0] > now}
            end, count = now + window_s, 0
        self._data[key] = (end, count + 1)
        return WindowCount(count + 1, max(1, math.ceil(end - now)))

    async def aload(self, subject: str) -> WindowCount:
        now = time.monotonic()
        end, count = self._data.get(self.key(subject), (0.0, 0))
        if end <= now:
            return WindowCount(0, 0)
        return WindowCount(count, max(1, math.ceil(end - now)))

    async def adelete(self, subject: str) -> None:
        self._data.pop(self.key(subject), None)


class RedisCountStore:
    """Counts in Redis, shared by every node: ``SET NX EX`` + ``INCR`` + ``TTL`` in one
    transaction, so a counter can never be left without its expiry."""

    def __init__(self, url: str, key: Callable[[str], str] = failure_key) -> None:
        self.key = key
        self.url = url

    @property
    def _redis(self) -> Redis:
        return get_redis(self.url, REDIS_TIMEOUT_S)

    async def ahit(self, subject: str, window_s: int) -> WindowCount:
        key = self.key(subject)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(key, 0, ex=window_s, nx=True)
            pipe.incr(key)
            pipe.ttl(key)
            _, count, ttl = await pipe.execute()
        if ttl < 0:  # written by something else without a TTL: never block forever
            await self._redis.expire(key, window_s)
            ttl = window_s
        return WindowCount(int(count), max(1, int(ttl)))

    async def aload(self, subject: str) -> WindowCount:
        key = self.key(subject)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.get(key)
            pipe.ttl(key)
            raw, ttl = await pipe.execute()
        if raw is None:
            return WindowCount(0, 0)
        return WindowCount(int(raw), max(1, int(ttl)))

    async def adelete(self, subject: str) -> None:
        await self._redis.delete(self.key(subject))

    async def aclose(self) -> None:
        """Nothing to close: connections belong to the process's pool (redis_pool)."""


class FailOpenCounter:
    """A fixed-window counter on a shared store that falls back to this process's memory for
    ``REDIS_RETRY_AFTER_ERROR_S`` after a store error (logged, ``openasr_redis_errors``)."""

    def __init__(self, store: CountStore | None, key: Callable[[str], str], operation: str) -> None:
        self.store = store  # None: this process only
        self.local = InMemoryCountStore(key)
        self.operation = operation
        self._skip_store_until = 0.0

    async def _hit(self, subject: str, window_s: int) -> WindowCount:
        if self.store is not None and time.monotonic() >= self._skip_store_until:
            try:
                return await self.store.ahit(subject, window_s)
            except Exception:
                # Fail open: a shared-store outage must not refuse everyone; count locally.
                self._skip_store_until = time.monotonic() + REDIS_RETRY_AFTER_ERROR_S
                metrics.REDIS_ERRORS.labels(operation=self.operation).inc()
                log.warning(
                    "%s store unreachable; counting in this process for %.0f s",
                    self.operation,
                    REDIS_RETRY_AFTER_ERROR_S,
                    exc_info=True,
                )
        return await self.local.ahit(subject, window_s)


@dataclass(frozen=True)
class Verdict:
    """Outcome of one failed handshake: refuse with 401, or with 429 and ``Retry-After``."""

    blocked: bool
    count: int
    retry_after_s: int


class AuthFailureLimiter(FailOpenCounter):
    """Counts a failed handshake against its address and says whether the address is blocked."""

    def __init__(self, store: CountStore | None) -> None:
        super().__init__(store, failure_key, "auth_ratelimit")

    async def record_failure(self, ip: str) -> Verdict:
        """Called once per refused handshake (before choosing 401 or 429)."""
        cfg = settings.OPENASR
        subject = rate_limit_subject(ip)
        hit = await self._hit(subject, cfg.auth_failure_window_s)
        return Verdict(hit.count > cfg.auth_failure_limit, hit.count, hit.retry_after_s)


@dataclass(frozen=True)
class SessionStartVerdict:
    """Outcome of one session start: allowed, or refused until ``retry_after_s`` from now."""

    allowed: bool
    count: int  # session starts of this key in the current minute, this one included
    limit: int  # WSS_MAX_NEW_SESSIONS_PER_KEY_PER_MIN (0: off)
    retry_after_s: int  # 0 when allowed


ALLOWED = SessionStartVerdict(allowed=True, count=0, limit=0, retry_after_s=0)


class SessionStartLimiter(FailOpenCounter):
    """Counts session starts (new and resumed) per API key over a one-minute fixed window."""

    def __init__(self, store: CountStore | None) -> None:
        super().__init__(store, new_sessions_key, "session_ratelimit")

    async def check(self, key_id: str | None) -> SessionStartVerdict:
        """Called once per ``speech.config`` (with or without ``resume_checkpoint``) before the
        session is created. Every call counts, refused ones included."""
        limit = settings.OPENASR.max_new_sessions_per_key_per_min
        if not limit or key_id is None:  # off, or dev mode (no key to count against)
            return ALLOWED
        hit = await self._hit(key_id, SESSION_WINDOW_S)
        if hit.count <= limit:
            return SessionStartVerdict(True, hit.count, limit, 0)
        return SessionStartVerdict(False, hit.count, limit, hit.retry_after_s)


_limiter: AuthFailureLimiter | None = None
_session_limiter: SessionStartLimiter | None = None


def get_limiter() -> AuthFailureLimiter:
    """The process's auth-failure limiter, on Redis when ``REDIS_URL`` is set."""
    global _limiter
    if _limiter is None:
        url = settings.OPENASR.redis_url
        _limiter = AuthFailureLimiter(RedisCountStore(url, failure_key) if url else None)
    return _limiter


def get_session_limiter() -> SessionStartLimiter:
    """The process's session-start limiter, on Redis when ``REDIS_URL`` is set."""
    global _session_limiter
    if _session_limiter is None:
        url = settings.OPENASR.redis_url
        store = RedisCountStore(url, new_sessions_key) if url else None
        _session_limiter = SessionStartLimiter(store)
    return _session_limiter


async def check_new_session(key_id: str | None) -> SessionStartVerdict:
    """Count one session start of ``key_id`` (``KeyIdentity["id"]``; None in dev mode) and say
    whether it may go ahead: see ``allow_new_session``; the verdict adds the count and when to
    retry, for the ``RATE_LIMITED`` message."""
    return await get_session_limiter().check(key_id)


async def allow_new_session(key_id: str | None) -> bool:
    """Whether the API key ``key_id`` may start one more session now: False once it started
    more than ``WSS_MAX_NEW_SESSIONS_PER_KEY_PER_MIN`` sessions (new or resumed, refused
    attempts included) in the current one-minute window, counted across nodes in Redis (in this
    process without ``REDIS_URL``, or for 5 s after a Redis error: fails open). Always True for
    None (dev mode) and when the setting is 0. Never raises for a Redis error."""
    return (await check_new_session(key_id)).allowed
