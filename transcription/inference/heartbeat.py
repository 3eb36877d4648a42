"""Worker heartbeats in Redis: each ``runworker`` process says it is alive, how many inferences
it runs at once and how many it is running; daphne nodes read them for ``/ready``, admission
and to notice a dead worker's window (``inference/client.py``).

A heartbeat is a key with a TTL (``worker_key``), refreshed every ``HEARTBEAT_INTERVAL_S``; a
worker that dies disappears within ``HEARTBEAT_TTL_MS``, which is what bounds how soon a window
it held is re-sent (docs/DEPLOYING.md "What a failure costs"). Five refreshes fit in one TTL,
so a worker whose loop is briefly starved of CPU is not declared dead (at worst a false
verdict costs one duplicate inference: the sender ignores the second answer). The keys are listed in
one set (``WORKERS_KEY``), so a lookup costs two commands however many keys Redis holds. The
lookup is cached for ``LOOKUP_CACHE_S``, so the probes and the sessions of a node ask Redis at
most four times a second.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from transcription import metrics
from transcription.inference.client import WorkerView
from transcription.redis_pool import get_redis

log = logging.getLogger(__name__)

WORKER_KEY_PREFIX = "openasr:worker:"
WORKERS_KEY = "openasr:workers"  # the set of worker ids that have a heartbeat key
HEARTBEAT_INTERVAL_S = 0.3
HEARTBEAT_TTL_MS = 1500
LOOKUP_CACHE_S = 0.25

Heartbeat = dict[str, Any]  # worker_id, concurrency, running, channels, at

# (when looked up, the heartbeats or None when Redis did not answer)
_cached: tuple[float, tuple[Heartbeat, ...] | None] | None = None


def worker_key(worker_id: str) -> str:
    """The Redis key of one worker's heartbeat."""
    return f"{WORKER_KEY_PREFIX}{worker_id}"


def clear_cache() -> None:
    """Forget the cached lookup (tests, and a settings change)."""
    global _cached
    _cached = None


async def lookup(redis_url: str) -> tuple[Heartbeat, ...] | None:
    """Heartbeats of the workers serving this deployment, or None when Redis did not answer
    (cached for ``LOOKUP_CACHE_S`` either way)."""
    global _cached
    now = time.monotonic()
    if _cached is not None and now - _cached[0] < LOOKUP_CACHE_S:
        return _cached[1]
    workers: list[Heartbeat] | None = []
    try:
        client = get_redis(redis_url)
        members = await client.smembers(WORKERS_KEY)
        ids = sorted(m.decode() if isinstance(m, bytes) else str(m) for m in members)
        if ids:
            values = await client.mget([worker_key(i) for i in ids])
            gone = [i for i, raw in zip(ids, values, strict=True) if raw is None]
            workers = [json.loads(raw) for raw in values if raw is not None]
            if gone:
                await client.srem(WORKERS_KEY, *gone)
    except Exception:
        workers = None
        metrics.REDIS_ERRORS.labels(operation="worker_lookup").inc()
        log.warning("worker heartbeat lookup failed", exc_info=True)
    # Stamped after the lookup: a lookup that waited out the Redis timeout must still serve
    # the next probes from the cache.
    _cached = (time.monotonic(), None if workers is None else tuple(workers))
    return _cached[1]


async def live_workers(redis_url: str) -> tuple[Heartbeat, ...]:
    """Heartbeats of the live workers (none when Redis does not answer)."""
    return await lookup(redis_url) or ()


async def worker_view(redis_url: str) -> WorkerView | None:
    """What the inference client needs to know (None when Redis does not answer): stamped with
    the monotonic time of the lookup it comes from."""
    workers = await lookup(redis_url)
    if workers is None or _cached is None:
        return None
    idle = {
        str(channel)
        for w in workers
        if int(w.get("running", 0)) < int(w.get("concurrency", 1))
        for channel in w.get("channels", ())
    }
    alive = frozenset(str(w.get("worker_id")) for w in workers)
    return WorkerView(at=_cached[0], alive=alive, idle_channels=frozenset(idle))


async def beat(redis_url: str, info: Heartbeat) -> None:
    """Write one heartbeat (raises when Redis does not answer)."""
    worker_id = str(info["worker_id"])
    payload = json.dumps({**info, "at": time.time()})
    async with get_redis(redis_url).pipeline(transaction=True) as pipe:
        pipe.set(worker_key(worker_id), payload, px=HEARTBEAT_TTL_MS)
        pipe.sadd(WORKERS_KEY, worker_id)
        await pipe.execute()


async def heartbeat_forever(redis_url: str, info: Callable[[], Heartbeat]) -> None:
    """Run in each ``runworker`` process with Redis: keep this worker's heartbeat fresh, through
    any Redis outage (each failure is counted and logged, then retried on the next beat)."""
    failing = False
    while True:
        try:
            await beat(redis_url, info())
        except Exception:
            metrics.REDIS_ERRORS.labels(operation="heartbeat").inc()
            if not failing:
                log.warning("worker heartbeat failed; retrying", exc_info=True)
            failing = True
        else:
            if failing:
                log.info("worker heartbeat restored")
            failing = False
        await asyncio.sleep(HEARTBEAT_INTERVAL_S)
