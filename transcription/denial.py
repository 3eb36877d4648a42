"""The one way a WebSocket upgrade is refused with an HTTP status (docs/PROTOCOL.md
"Transport and auth"): the ASGI "WebSocket Denial Response" extension, which
``openasr_site/server.py`` adds to daphne, else a close before accept (daphne answers 403)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

DENIAL_EXTENSION = "websocket.http.response"
CLOSE_POLICY_VIOLATION = 1008

Send = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class Denial:
    """An HTTP refusal of the upgrade: status, a short JSON reason (never key material)."""

    status: int
    error: str  # a stable word: "unauthorized", "forbidden", "busy", ...
    message: str
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)

    @classmethod
    def retry_later(cls, status: int, error: str, message: str, retry_after_s: int) -> Denial:
        """A refusal the client may retry after ``retry_after_s`` (429, 503)."""
        return cls(status, error, message, [(b"retry-after", str(retry_after_s).encode())])

    def body(self) -> bytes:
        return json.dumps({"error": self.error, "message": self.message}).encode()


async def deny(scope: Mapping[str, Any], send: Send, denial: Denial) -> None:
    """Send the refusal as an HTTP response, or close before accept without the extension."""
    if DENIAL_EXTENSION not in scope.get("extensions", {}):
        await send({"type": "websocket.close", "code": CLOSE_POLICY_VIOLATION})
        return
    await send(
        {
            "type": "websocket.http.response.start",
            "status": denial.status,
            "headers": [(b"content-type", b"application/json"), *denial.headers],
        }
    )
    await send({"type": "websocket.http.response.body", "body": denial.body()})
