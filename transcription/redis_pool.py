"""The one place Redis clients are made: one pool per URL and event loop.

redis-py's asyncio connections belong to the loop that opened them, so a client is cached per
(URL, loop); daphne and a worker each run one loop, tests run several. Timeouts are short: every
caller has a fallback (in-process state, a retry on the next tick) and must not hang a handler.
"""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

SOCKET_TIMEOUT_S = 2.0

_clients: dict[tuple[str, int], aioredis.Redis] = {}


def get_redis(url: str) -> aioredis.Redis:
    """The shared client for ``url`` on the running loop (or a loop-free one outside a loop)."""
    try:
        loop_id = id(asyncio.get_running_loop())
    except RuntimeError:
        loop_id = 0
    client = _clients.get((url, loop_id))
    if client is None:
        client = aioredis.from_url(
            url, socket_timeout=SOCKET_TIMEOUT_S, socket_connect_timeout=SOCKET_TIMEOUT_S
        )
        _clients[(url, loop_id)] = client
    return client
