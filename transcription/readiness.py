"""Is this node ready for a new session? Model/worker availability, queue room, free sessions.

Without Redis the worker runs in this process: the model is ready once it is loaded. With Redis
the workers are other processes: each writes a heartbeat key with a TTL (``worker_key``) and a
node is ready while at least one heartbeat is fresh. The lookup is async and cached for a
second, so probes never block the event loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from transcription import admission, metrics
from transcription.registry import NODE

log = logging.getLogger(__name__)

WORKER_KEY_PREFIX = "openasr:worker:"
HEARTBEAT_INTERVAL_S = 3.0
HEARTBEAT_TTL_S = 10
QUEUE_LIMIT = 100  # the seed's inference queue depth
_CACHE_S = 1.0


def worker_key(worker_id: str) -> str:
    """The Redis key of one worker's heartbeat."""
    return f"{WORKER_KEY_PREFIX}{worker_id}"


@dataclass(frozen=True)
class Readiness:
    model_ready: bool
    queue_ok: bool
    sessions_available: bool
    workers: tuple[dict[str, Any], ...] = ()
    capacity_available: bool = True  # admission.py: one more session fits the measured speed

    @property
    def ready(self) -> bool:
        return (
            self.model_ready
            and self.queue_ok
            and self.sessions_available
            and self.capacity_available
        )


_redis: Any = None
_cached: tuple[float, tuple[dict[str, Any], ...]] | None = None


def _client() -> Any:
    global _redis
    if _redis is None:
        import redis.asyncio as aioredis

        _redis = aioredis.from_url(
            settings.OPENASR.redis_url, socket_timeout=1, socket_connect_timeout=1
        )
    return _redis


async def live_workers() -> tuple[dict[str, Any], ...]:
    """Heartbeats of the workers serving this deployment (cached for a second)."""
    global _cached
    now = time.monotonic()
    if _cached is not None and now - _cached[0] < _CACHE_S:
        return _cached[1]
    workers: list[dict[str, Any]] = []
    try:
        client = _client()
        keys = [k async for k in client.scan_iter(match=f"{WORKER_KEY_PREFIX}*", count=100)]
        if keys:
            for raw in await client.mget(keys):
                if raw:
                    workers.append(json.loads(raw))
    except Exception:
        metrics.REDIS_ERRORS.labels(operation="worker_lookup").inc()
        log.warning("worker heartbeat lookup failed", exc_info=True)
    # Stamped after the lookup: a lookup that waited out the Redis timeout must still serve
    # the next second of probes (and readiness's own second call via admission).
    _cached = (time.monotonic(), tuple(workers))
    return _cached[1]


async def readiness() -> Readiness:
    cfg = settings.OPENASR
    if cfg.redis_url:
        workers = await live_workers()
        model_ready = bool(workers)
    else:
        from transcription.worker import backend_status

        workers = ()
        model_ready = backend_status()[0]
    return Readiness(
        model_ready=model_ready,
        queue_ok=NODE.inference_pending < QUEUE_LIMIT,
        sessions_available=NODE.active_sessions < cfg.max_sessions and not NODE.draining,
        workers=workers,
        capacity_available=await admission.room_for_one(cfg.window_ms, cfg.overlap_ms),
    )


async def heartbeat_forever(info: dict[str, Any]) -> None:
    """Run in each ``runworker`` process with Redis: keep this worker's heartbeat fresh."""
    client = _client()
    key = worker_key(info["worker_id"])
    while True:
        try:
            await client.set(key, json.dumps({**info, "at": time.time()}), ex=HEARTBEAT_TTL_S)
        except Exception:
            metrics.REDIS_ERRORS.labels(operation="heartbeat").inc()
            log.warning("worker heartbeat failed", exc_info=True)
        await asyncio.sleep(HEARTBEAT_INTERVAL_S)
