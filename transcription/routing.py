"""WebSocket routes: ``/transcribe`` only; any other path is refused (HTTP 404 with the
denial-response extension, see ``openasr_site/server.py``)."""

from __future__ import annotations

from typing import Any

from channels.routing import URLRouter
from django.urls import path

from transcription.auth.middleware import HandshakeAuthMiddleware
from transcription.consumer import TranscriptionConsumer
from transcription.denial import Denial, deny

websocket_urlpatterns = [path("transcribe", TranscriptionConsumer.as_asgi())]


async def _not_found(scope: dict[str, Any], send: Any) -> None:
    """Deny an unknown WebSocket path with HTTP 404."""
    await deny(scope, send, Denial(404, "not_found", "Not Found: use /transcribe"))


class _Router:
    """``/transcribe`` → consumer; anything else → 404."""

    def __init__(self) -> None:
        self.router = URLRouter(websocket_urlpatterns)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("path", "").rstrip("/") != "/transcribe":
            await receive()  # websocket.connect
            await _not_found(scope, send)
            return
        await self.router(scope, receive, send)


def build_websocket_application() -> Any:
    """The WebSocket stack: the auth/origin middleware around the router."""
    return HandshakeAuthMiddleware(_Router())


websocket_application = build_websocket_application()
