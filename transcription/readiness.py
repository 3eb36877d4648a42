"""Is this node ready for a new session? Model/worker availability, queue room, free sessions.

Without Redis the worker runs in this process: the model is ready once it is loaded. With Redis
the workers are other processes, ready while at least one heartbeat is fresh
(``inference/heartbeat.py``). This module only aggregates.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from transcription import admission
from transcription.inference.heartbeat import lookup
from transcription.inference.loader import backend_status
from transcription.registry import NODE

log = logging.getLogger(__name__)

QUEUE_LIMIT = 100  # the seed's inference queue depth


@dataclass(frozen=True)
class Readiness:
    model_ready: bool
    queue_ok: bool
    sessions_available: bool
    workers: tuple[dict[str, Any], ...] = ()
    capacity_available: bool = True  # admission.py: one more session fits the measured speed
    redis_ok: bool = True  # Redis answered (always true without REDIS_URL)

    @property
    def ready(self) -> bool:
        return (
            self.model_ready
            and self.queue_ok
            and self.sessions_available
            and self.capacity_available
            and self.redis_ok
        )


async def readiness() -> Readiness:
    cfg = settings.OPENASR
    redis_ok = True
    if cfg.redis_url:
        # A Redis outage shows as redis_ok false, and clears by itself once it answers.
        found = await lookup(cfg.redis_url)
        redis_ok = found is not None
        workers = found or ()
        model_ready = bool(workers)
    else:
        workers = ()
        model_ready = backend_status()[0]
    return Readiness(
        model_ready=model_ready,
        queue_ok=NODE.inference_pending < QUEUE_LIMIT,
        sessions_available=NODE.active_sessions < cfg.max_sessions and not NODE.draining,
        workers=workers,
        capacity_available=await admission.room_for_one(cfg.window_ms, cfg.overlap_ms),
        redis_ok=redis_ok,
    )
