"""WebSocket routes: ``/transcribe`` only; any other path is refused (HTTP 404 with the
denial-response extension, see ``openasr_site/server.py``)."""

from __future__ import annotations

from typing import Any

from channels.routing import URLRouter
from django.urls import path

from transcription.consumer import TranscriptionConsumer

websocket_urlpatterns = [path("transcribe", TranscriptionConsumer.as_asgi())]


async def _not_found(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Deny an unknown WebSocket path with HTTP 404 (or a plain close without the extension)."""
    if "websocket.http.response" in scope.get("extensions", {}):
        await send(
            {
                "type": "websocket.http.response.start",
                "status": 404,
                "headers": [(b"content-type", b"text/plain")],
            }
        )
        await send({"type": "websocket.http.response.body", "body": b"Not Found: use /transcribe"})
    else:
        await send({"type": "websocket.close", "code": 1008})


class _Router:
    """``/transcribe`` → consumer; anything else → 404."""

    def __init__(self) -> None:
        self.router = URLRouter(websocket_urlpatterns)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("path", "").rstrip("/") != "/transcribe":
            await receive()  # websocket.connect
            await _not_found(scope, receive, send)
            return
        await self.router(scope, receive, send)


def build_websocket_application() -> Any:
    """The WebSocket stack: auth/origin middleware (when present) around the router."""
    try:
        from transcription.auth.middleware import HandshakeAuthMiddleware
    except ImportError:
        return _Router()
    return HandshakeAuthMiddleware(_Router())


websocket_application = build_websocket_application()
