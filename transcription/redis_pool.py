"""The one place Redis clients are made: one pool per URL and event loop.

redis-py's asyncio connections belong to the loop that opened them, so a client is cached per
(URL, loop); daphne and a worker each run one loop, tests run several. Timeouts are short: every
caller has a fallback (in-process state, a retry on the next tick) and must not hang a handler.
"""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

Redis = aioredis.Redis

SOCKET_TIMEOUT_S = 2.0

_clients: dict[tuple[str, float, int], Redis] = {}


def get_redis(url: str, timeout_s: float = SOCKET_TIMEOUT_S) -> Redis:
    """The shared client for ``url`` on the running loop (or a loop-free one outside a
    loop); ``timeout_s`` for callers that must answer fast (the handshake)."""
    try:
        loop_id = id(asyncio.get_running_loop())
    except RuntimeError:
        loop_id = 0
    key = (url, timeout_s, loop_id)
    client = _clients.get(key)
    if client is None:
        client = aioredis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        _clients[key] = client
    return client
