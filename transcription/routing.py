"""WebSocket routes: ``/transcribe`` (our protocol), ``/v1/realtime`` (OpenAI Realtime
transcription) and ``/v1/listen`` (Deepgram live); any other path is refused (HTTP 404 with
the denial-response extension, see ``openasr_site/server.py``)."""

from __future__ import annotations

from typing import Any

from channels.routing import URLRouter
from django.urls import path

from transcription.auth.middleware import HandshakeAuthMiddleware
from transcription.consumer import TranscriptionConsumer
from transcription.deepgram.consumer import DeepgramConsumer
from transcription.denial import Denial, deny
from transcription.realtime.consumer import RealtimeConsumer

websocket_urlpatterns = [
    path("transcribe", TranscriptionConsumer.as_asgi()),
    path("v1/realtime", RealtimeConsumer.as_asgi()),
    path("v1/listen", DeepgramConsumer.as_asgi()),
]
PATHS = frozenset({"/transcribe", "/v1/realtime", "/v1/listen"})


async def _not_found(scope: dict[str, Any], send: Any) -> None:
    """Deny an unknown WebSocket path with HTTP 404."""
    await deny(
        scope,
        send,
        Denial(404, "not_found", "Not Found: use /transcribe, /v1/realtime or /v1/listen"),
    )


class _Router:
    """The three WebSocket APIs → their consumers; anything else → 404."""

    def __init__(self) -> None:
        self.router = URLRouter(websocket_urlpatterns)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope.get("path", "").rstrip("/")
        if path not in PATHS:
            await receive()  # websocket.connect
            await _not_found(scope, send)
            return
        # URLRouter matches the path as given: a trailing slash is accepted as before.
        await self.router({**scope, "path": path}, receive, send)


def build_websocket_application() -> Any:
    """The WebSocket stack: the auth/origin middleware around the router."""
    return HandshakeAuthMiddleware(_Router())


websocket_application = build_websocket_application()
