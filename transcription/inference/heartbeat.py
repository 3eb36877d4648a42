"""Worker heartbeats in Redis: each ``runworker`` process says it is alive and how many
inferences it runs at once; daphne nodes read them for ``/ready`` and admission.

A heartbeat is a key with a TTL (``worker_key``), refreshed every ``HEARTBEAT_INTERVAL_S``; a
worker that dies disappears within ``HEARTBEAT_TTL_S``. The lookup is cached for a second, so
probes never wait on Redis more than once a second.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from transcription import metrics
from transcription.redis_pool import get_redis

log = logging.getLogger(__name__)

WORKER_KEY_PREFIX = "openasr:worker:"
HEARTBEAT_INTERVAL_S = 3.0
HEARTBEAT_TTL_S = 10
LOOKUP_CACHE_S = 1.0

_cached: tuple[float, tuple[dict[str, Any], ...]] | None = None


def worker_key(worker_id: str) -> str:
    """The Redis key of one worker's heartbeat."""
    return f"{WORKER_KEY_PREFIX}{worker_id}"


def clear_cache() -> None:
    """Forget the cached lookup (tests, and a settings change)."""
    global _cached
    _cached = None


async def live_workers(redis_url: str) -> tuple[dict[str, Any], ...]:
    """Heartbeats of the workers serving this deployment (cached for a second)."""
    global _cached
    now = time.monotonic()
    if _cached is not None and now - _cached[0] < LOOKUP_CACHE_S:
        return _cached[1]
    workers: list[dict[str, Any]] = []
    try:
        client = get_redis(redis_url)
        keys = [k async for k in client.scan_iter(match=f"{WORKER_KEY_PREFIX}*", count=100)]
        if keys:
            for raw in await client.mget(keys):
                if raw:
                    workers.append(json.loads(raw))
    except Exception:
        metrics.REDIS_ERRORS.labels(operation="worker_lookup").inc()
        log.warning("worker heartbeat lookup failed", exc_info=True)
    # Stamped after the lookup: a lookup that waited out the Redis timeout must still serve
    # the next second of probes.
    _cached = (time.monotonic(), tuple(workers))
    return _cached[1]


async def heartbeat_forever(redis_url: str, info: dict[str, Any]) -> None:
    """Run in each ``runworker`` process with Redis: keep this worker's heartbeat fresh."""
    key = worker_key(str(info["worker_id"]))
    while True:
        try:
            payload = json.dumps({**info, "at": time.time()})
            await get_redis(redis_url).set(key, payload, ex=HEARTBEAT_TTL_S)
        except Exception:
            metrics.REDIS_ERRORS.labels(operation="heartbeat").inc()
            log.warning("worker heartbeat failed", exc_info=True)
        await asyncio.sleep(HEARTBEAT_INTERVAL_S)
