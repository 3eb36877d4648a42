"""The one way a WebSocket upgrade is refused with an HTTP status (docs/PROTOCOL.md
"Transport and auth"): the ASGI "WebSocket Denial Response" extension when the server offers
it (``openasr_site/server.py`` adds it to daphne), else a plain close, which daphne turns
into HTTP 403."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

DENIAL_EXTENSION = "websocket.http.response"

Send = Callable[[dict[str, Any]], Awaitable[None]]


async def deny(
    scope: Mapping[str, Any],
    send: Send,
    status: int,
    message: str,
    *,
    retry_after_s: int | None = None,
    headers: tuple[tuple[bytes, bytes], ...] = (),
) -> None:
    """Answer the upgrade request with ``status`` and a JSON body ``{"error": message}``."""
    if DENIAL_EXTENSION not in scope.get("extensions", {}):
        await send({"type": "websocket.close", "code": 1008})
        return
    all_headers = [(b"content-type", b"application/json"), *headers]
    if retry_after_s is not None:
        all_headers.append((b"retry-after", str(retry_after_s).encode()))
    await send({"type": "websocket.http.response.start", "status": status, "headers": all_headers})
    body = json.dumps({"error": message}).encode()
    await send({"type": "websocket.http.response.body", "body": body})
