"""Is this node ready for a new session? Model/worker availability, queue room, free sessions.

Without Redis the workers run in this process: a model is ready once it is loaded. With Redis
the workers are other processes, a model ready while at least one heartbeat of a worker serving
it is fresh (``inference/heartbeat.py``). The node is ready when its default model is (a
session of any id can be served); ``models`` reports every pool. This module only aggregates.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from transcription import admission
from transcription.inference.heartbeat import lookup
from transcription.inference.loader import backend_status
from transcription.modelinfo import served_models
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
    models: tuple[tuple[str, bool], ...] = ()  # (model id, ready) per served model

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
    served = served_models(cfg)
    redis_ok = True
    if cfg.redis_url:
        # A Redis outage shows as redis_ok false, and clears by itself once it answers.
        found = await lookup(cfg.redis_url)
        redis_ok = found is not None
        workers = found or ()
        default = served[0].model_id
        serving = {w.get("model") or default for w in workers}
        models = tuple((m.model_id, m.model_id in serving) for m in served)
    else:
        workers = ()
        models = tuple((m.model_id, backend_status(m.model_id)[0]) for m in served)
    return Readiness(
        model_ready=models[0][1],
        models=models,
        queue_ok=NODE.inference_pending < QUEUE_LIMIT,
        sessions_available=NODE.active_sessions < cfg.max_sessions and not NODE.draining,
        workers=workers,
        capacity_available=await admission.room_for_one(cfg.window_ms, cfg.overlap_ms),
        redis_ok=redis_ok,
    )
