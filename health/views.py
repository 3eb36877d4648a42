"""``/health`` (liveness) and ``/ready`` (readiness) with the seed's JSON fields.

Both are cheap: they read process state only (no model call, no blocking I/O on the loop).
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, JsonResponse

from transcription.readiness import readiness
from transcription.registry import NODE


async def health(request: HttpRequest) -> JsonResponse:
    """Liveness: the process answers. Always 200 while the event loop runs."""
    return JsonResponse(
        {
            "status": "ok",
            "active_sessions": NODE.active_sessions,
            "max_sessions": settings.OPENASR.max_sessions,
            "inference_pending": NODE.inference_pending,
            "active_connections": NODE.connections,  # beyond the seed
        }
    )


async def ready(request: HttpRequest) -> JsonResponse:
    """Readiness: 200 when a model/worker is available, the queue has room and sessions are
    free; 503 otherwise (with the same fields, so the operator sees which one failed)."""
    state = await readiness()
    body = {
        "status": "ready" if state.ready else "not_ready",
        "model_ready": state.model_ready,
        "queue_ok": state.queue_ok,
        "sessions_available": state.sessions_available,
        "redis_ok": state.redis_ok,  # beyond the seed: false while Redis does not answer
        # beyond the seed: each served model (worker pool) and whether it can serve now
        "models": dict(state.models),
    }
    return JsonResponse(body, status=200 if state.ready else 503)
