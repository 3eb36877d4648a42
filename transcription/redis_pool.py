"""The one place Redis clients are made: one pool per URL and event loop, through Redis Sentinel
when ``REDIS_SENTINELS`` is set.

redis-py's asyncio connections belong to the loop that opened them, so a client is cached per
(URL, loop); daphne and a worker each run one loop, tests run several. Timeouts are short: every
caller has a fallback (in-process state, a retry on the next tick) and must not hang a handler.
With Sentinel, every new connection asks the Sentinels for the current master, so after a
failover the next command reaches the promoted replica (docs/DEPLOYING.md "Redis").
"""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as aioredis
from django.conf import settings
from redis.asyncio.connection import parse_url
from redis.asyncio.sentinel import Sentinel

from openasr_site.config import ServerConfig

Redis = aioredis.Redis

SOCKET_TIMEOUT_S = 2.0
# Asking a Sentinel for the master: it answers from memory, so a slow one is a dead one.
SENTINEL_TIMEOUT_S = 0.5

_clients: dict[tuple[str, float, int], Redis] = {}


def master_kwargs(url: str) -> dict[str, Any]:
    """What a connection to the Sentinel-named master takes from ``url``: credentials, db."""
    return {k: v for k, v in parse_url(url).items() if k in ("username", "password", "db")}


def sentinel_kwargs(cfg: ServerConfig) -> dict[str, Any]:
    """How the Sentinels themselves are reached (no password: they answer only inside the
    deployment's network, docs/DEPLOYING.md "Redis")."""
    return {"socket_timeout": SENTINEL_TIMEOUT_S}


def channel_layer_host(cfg: ServerConfig, socket_timeout_s: float) -> dict[str, Any]:
    """The ``hosts`` entry of channels_redis's layer: the URL, or the Sentinel master."""
    if not cfg.redis_sentinels:
        return {"address": cfg.redis_url, "socket_timeout": socket_timeout_s}
    return {
        "master_name": cfg.redis_sentinel_master,
        "sentinels": cfg.sentinel_addresses,
        "sentinel_kwargs": sentinel_kwargs(cfg),
        "socket_timeout": socket_timeout_s,
        "socket_connect_timeout": SOCKET_TIMEOUT_S,
        **master_kwargs(cfg.redis_url),
    }


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
        cfg: ServerConfig = settings.OPENASR
        if cfg.redis_sentinels:
            sentinel = Sentinel(  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
                cfg.sentinel_addresses, sentinel_kwargs=sentinel_kwargs(cfg)
            )
            client = sentinel.master_for(
                cfg.redis_sentinel_master,
                socket_timeout=timeout_s,
                socket_connect_timeout=timeout_s,
                **master_kwargs(url),
            )
        else:
            client = aioredis.from_url(
                url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
            )
        _clients[key] = client
    return client
