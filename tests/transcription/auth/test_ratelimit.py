"""Auth-failure limit, session-start limit and client address
(``transcription/auth/ratelimit.py``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis
from django.core.exceptions import ImproperlyConfigured
from django_prometheus.testutils import assert_metric_diff, save_registry
from hypothesis import assume, given
from hypothesis import strategies as st

from tests.support.redisdb import flush_if_ours, redis_test_url
from transcription.auth.ratelimit import (
    AuthFailureLimiter,
    InMemoryCountStore,
    RedisCountStore,
    SessionStartLimiter,
    allow_new_session,
    check_new_session,
    client_ip,
    failure_key,
    get_limiter,
    get_session_limiter,
    new_sessions_key,
    rate_limit_subject,
    trusted_networks,
)

REDIS_DB = 13


def redis_url(db: int = REDIS_DB) -> str:
    return redis_test_url(db, flush=False)


# --- client address ---


@pytest.mark.parametrize(
    ("peer", "xff", "trusted", "expected"),
    [
        # no trusted proxies: the peer, whatever the header says
        ("198.51.100.7", ["1.2.3.4"], (), "198.51.100.7"),
        # an untrusted peer cannot choose its address with the header
        ("198.51.100.7", ["1.2.3.4"], ("127.0.0.1",), "198.51.100.7"),
        # a trusted proxy: the hop it appended
        ("127.0.0.1", ["203.0.113.9"], ("127.0.0.1",), "203.0.113.9"),
        # the right-most untrusted hop; the client-chosen left part is ignored
        ("127.0.0.1", ["6.6.6.6, 203.0.113.9"], ("127.0.0.1",), "203.0.113.9"),
        # a chain of trusted proxies (CIDR) is walked through
        ("10.0.0.2", ["6.6.6.6, 203.0.113.9, 10.0.0.7"], ("10.0.0.0/8",), "203.0.113.9"),
        # several header lines are one list
        ("127.0.0.1", ["6.6.6.6", "203.0.113.9"], ("127.0.0.1",), "203.0.113.9"),
        # all hops trusted: the left-most
        ("10.0.0.2", ["10.0.0.9, 10.0.0.7"], ("10.0.0.0/8",), "10.0.0.9"),
        # garbage from the trusted side: the last good address
        ("127.0.0.1", ["1.2.3.4, not-an-ip"], ("127.0.0.1",), "127.0.0.1"),
        # no header from a trusted proxy: the proxy
        ("127.0.0.1", [], ("127.0.0.1",), "127.0.0.1"),
        # ports and brackets are stripped, IPv4-mapped IPv6 is IPv4
        ("127.0.0.1", ["203.0.113.9:4711"], ("127.0.0.1",), "203.0.113.9"),
        ("127.0.0.1", ["[2001:db8::1]:443"], ("127.0.0.1",), "2001:db8::1"),
        ("::ffff:198.51.100.7", [], (), "198.51.100.7"),
        ("::1", ["2001:db8::5"], ("::1",), "2001:db8::5"),
    ],
)
def test_client_ip(peer: str, xff: list[str], trusted: tuple[str, ...], expected: str) -> None:
    """X-Forwarded-For counts only from trusted proxies: the right-most untrusted hop."""
    assert client_ip(peer, xff, trusted) == expected


def test_client_ip_without_peer() -> None:
    """A scope without a client address (unix socket) is one 'unknown' client."""
    assert client_ip(None, ["1.2.3.4"], ("127.0.0.1",)) == "unknown"


def test_bad_trusted_proxy_entry_names_the_setting() -> None:
    """A typo in WSS_TRUSTED_PROXIES is a configuration error naming the variable."""
    with pytest.raises(ImproperlyConfigured, match="WSS_TRUSTED_PROXIES"):
        trusted_networks(("10.0.0.0/8", "proxy.local"))


def test_ipv6_clients_are_counted_per_64() -> None:
    """Addresses of one IPv6 /64 share a counter; IPv4 addresses are counted one by one."""
    assert rate_limit_subject("2001:db8:1:2::1") == rate_limit_subject("2001:db8:1:2:ffff::9")
    assert rate_limit_subject("2001:db8:1:2::1") != rate_limit_subject("2001:db8:1:3::1")
    assert rate_limit_subject("203.0.113.9") == "203.0.113.9"


def test_failure_keys_are_built_in_one_place() -> None:
    """Redis keys are openasr:authfail:<address>."""
    assert failure_key("203.0.113.9") == "openasr:authfail:203.0.113.9"


# --- in-process store ---


async def test_in_memory_store_counts_per_address_within_the_window() -> None:
    """Each failure counts for its own address; the window ends and the count restarts."""
    store = InMemoryCountStore()
    assert (await store.ahit("a", 1)).count == 1
    hit = await store.ahit("a", 1)
    assert hit.count == 2 and hit.retry_after_s == 1
    assert (await store.ahit("b", 1)).count == 1
    assert (await store.aload("a")).count == 2
    await asyncio.sleep(1.05)
    assert (await store.aload("a")).count == 0
    assert (await store.ahit("a", 1)).count == 1
    await store.adelete("a")
    assert (await store.aload("a")).count == 0


# --- Redis store ---


@pytest.fixture
async def redis_store() -> AsyncIterator[RedisCountStore]:
    flush_if_ours(redis_url())  # never a Redis the suite did not start (tests/support/redisdb.py)
    store = RedisCountStore(redis_url())
    yield store
    await store.aclose()


async def test_redis_store_counts_with_a_ttl(redis_store: RedisCountStore) -> None:
    """INCR on openasr:authfail:<ip>, with the window as TTL set atomically."""
    for n in range(1, 4):
        hit = await redis_store.ahit("203.0.113.9", 60)
        assert hit.count == n and 55 <= hit.retry_after_s <= 60
    raw = redis.Redis.from_url(redis_url())
    assert int(raw.get("openasr:authfail:203.0.113.9")) == 3  # type: ignore[arg-type]
    assert 0 < raw.ttl("openasr:authfail:203.0.113.9") <= 60  # type: ignore[operator]
    assert (await redis_store.aload("203.0.113.9")).count == 3
    assert (await redis_store.aload("198.51.100.1")).count == 0
    await redis_store.adelete("203.0.113.9")
    assert (await redis_store.aload("203.0.113.9")).count == 0


async def test_redis_store_is_shared_between_nodes(redis_store: RedisCountStore) -> None:
    """Two stores on one Redis (two nodes) add up to one count."""
    other = RedisCountStore(redis_url())
    try:
        await redis_store.ahit("203.0.113.10", 60)
        assert (await other.ahit("203.0.113.10", 60)).count == 2
    finally:
        await other.aclose()


async def test_redis_store_repairs_a_counter_without_ttl(redis_store: RedisCountStore) -> None:
    """A counter left without expiry (written by something else) is given one."""
    redis.Redis.from_url(redis_url()).set("openasr:authfail:203.0.113.11", 5)
    hit = await redis_store.ahit("203.0.113.11", 30)
    assert hit.count == 6 and hit.retry_after_s == 30
    assert redis.Redis.from_url(redis_url()).ttl("openasr:authfail:203.0.113.11") > 0


async def test_redis_window_expires(redis_store: RedisCountStore) -> None:
    """After the window the address starts from zero."""
    await redis_store.ahit("203.0.113.12", 1)
    await asyncio.sleep(1.1)
    assert (await redis_store.ahit("203.0.113.12", 1)).count == 1


# --- limiter ---


async def test_limiter_blocks_after_the_limit(configure: Any) -> None:
    """Failures 1..limit are 401s; the next one is a block with Retry-After."""
    configure(auth_failure_limit=3, auth_failure_window_s=60)
    limiter = AuthFailureLimiter(None)
    verdicts = [await limiter.record_failure("203.0.113.9") for _ in range(4)]
    assert [v.blocked for v in verdicts] == [False, False, False, True]
    assert 1 <= verdicts[-1].retry_after_s <= 60
    assert not (await limiter.record_failure("203.0.113.10")).blocked


async def test_limiter_on_real_redis(configure: Any, redis_store: RedisCountStore) -> None:
    """The limiter counts in Redis when given a Redis store."""
    configure(auth_failure_limit=2)
    limiter = AuthFailureLimiter(redis_store)
    verdicts = [(await limiter.record_failure("198.51.100.20")).blocked for _ in range(3)]
    assert verdicts == [False, False, True]
    assert (await redis_store.aload("198.51.100.20")).count == 3


async def test_limiter_fails_open_when_redis_is_down(configure: Any) -> None:
    """Redis unreachable: no lock-out, a logged error and a metric; counting goes local."""
    configure(auth_failure_limit=2)
    store = RedisCountStore("redis://127.0.0.1:1/0")
    limiter = AuthFailureLimiter(store)
    before = save_registry()
    try:
        first = await limiter.record_failure("198.51.100.30")
        assert not first.blocked
        assert_metric_diff(before, 1, "openasr_redis_errors_total", operation="auth_ratelimit")
        # the local fallback still limits guessing on this node
        assert not (await limiter.record_failure("198.51.100.30")).blocked
        assert (await limiter.record_failure("198.51.100.30")).blocked
        assert not (await limiter.record_failure("198.51.100.31")).blocked
    finally:
        await store.aclose()


def test_get_limiter_uses_redis_only_with_redis_url(configure: Any) -> None:
    """REDIS_URL set: Redis store; unset: this process."""
    from transcription.auth import ratelimit

    assert get_limiter().store is None
    ratelimit._limiter = None
    configure(redis_url=redis_url())
    assert isinstance(get_limiter().store, RedisCountStore)


# --- session starts per key ---


def test_new_session_keys_are_built_in_one_place() -> None:
    """One key builder: openasr:newsessions:<key id>."""
    assert new_sessions_key("17") == "openasr:newsessions:17"


async def test_session_starts_are_limited_per_key_per_minute(configure: Any) -> None:
    """Starts 1..limit are allowed; the next is refused with a retry time within the minute;
    another key has its own count."""
    configure(max_new_sessions_per_key_per_min=3)
    verdicts = [await check_new_session("7") for _ in range(4)]
    assert [v.allowed for v in verdicts] == [True, True, True, False]
    assert verdicts[-1].count == 4 and verdicts[-1].limit == 3
    assert 1 <= verdicts[-1].retry_after_s <= 60
    assert await allow_new_session("8")
    assert not await allow_new_session("7")  # refused attempts count too


async def test_session_start_limit_off_and_dev_mode(configure: Any) -> None:
    """0 turns the limit off; no key (dev mode) is never counted."""
    configure(max_new_sessions_per_key_per_min=0)
    assert all([await allow_new_session("7") for _ in range(200)])
    configure(max_new_sessions_per_key_per_min=1)
    assert all([await allow_new_session(None) for _ in range(5)])


async def test_session_starts_are_counted_across_nodes_in_redis(
    configure: Any, redis_store: RedisCountStore
) -> None:
    """Two nodes (two limiters on one Redis) share one count per key, with a one-minute TTL."""
    configure(max_new_sessions_per_key_per_min=2)
    node_a = SessionStartLimiter(RedisCountStore(redis_url(), new_sessions_key))
    node_b = SessionStartLimiter(RedisCountStore(redis_url(), new_sessions_key))
    try:
        assert (await node_a.check("42")).allowed
        assert (await node_b.check("42")).allowed
        assert not (await node_a.check("42")).allowed
        assert (await node_b.check("43")).allowed
    finally:
        for node in (node_a, node_b):
            assert isinstance(node.store, RedisCountStore)
            await node.store.aclose()
    raw = redis.Redis.from_url(redis_url())
    assert int(raw.get("openasr:newsessions:42")) == 3  # type: ignore[arg-type]
    assert 0 < raw.ttl("openasr:newsessions:42") <= 60  # type: ignore[operator]


async def test_session_start_limit_fails_open_when_redis_is_down(configure: Any) -> None:
    """Redis unreachable: the start is allowed, the error counted in openasr_redis_errors
    (operation session_ratelimit), and this node keeps limiting on its own."""
    configure(max_new_sessions_per_key_per_min=2)
    store = RedisCountStore("redis://127.0.0.1:1/0", new_sessions_key)
    limiter = SessionStartLimiter(store)
    before = save_registry()
    try:
        assert (await limiter.check("9")).allowed
        assert_metric_diff(before, 1, "openasr_redis_errors_total", operation="session_ratelimit")
        assert (await limiter.check("9")).allowed
        assert not (await limiter.check("9")).allowed
    finally:
        await store.aclose()


def test_get_session_limiter_uses_redis_only_with_redis_url(configure: Any) -> None:
    """REDIS_URL set: Redis store; unset: this process."""
    from transcription.auth import ratelimit

    assert get_session_limiter().store is None
    ratelimit._session_limiter = None
    configure(redis_url=redis_url())
    assert isinstance(get_session_limiter().store, RedisCountStore)


# --- properties ---

_ipv4 = st.ip_addresses(v=4).map(str)


@given(spoofed=st.lists(st.one_of(_ipv4, st.text(max_size=20)), max_size=6), real=_ipv4)
def test_hops_a_client_prepends_never_change_its_address(spoofed: list[str], real: str) -> None:
    """Whatever a client writes into X-Forwarded-For, the trusted proxy's hop is its address."""
    assume(real != "127.0.0.1")
    header = ", ".join([*[s.replace(",", "") for s in spoofed], real])
    assert client_ip("127.0.0.1", [header], ("127.0.0.1",)) == real
