"""An ASGI guard for upload bodies: Django reads a whole request body (spooling it to disk)
before any view runs, so the view's 413 alone would still let a client fill the disk. This
middleware, wrapped around the HTTP application, refuses a ``/v1/`` body over
``WSS_MAX_UPLOAD_BYTES`` (plus the form's overhead) while it streams in: what is over the cap is
read and discarded, never stored, and the client gets OpenAI's 413.

Wiring (``openasr_site/asgi.py``): ``"http": UploadLimitMiddleware(django_asgi_app)``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from django.conf import settings

from transcription.openai_rest.errors import OpenAIError

FORM_OVERHEAD_BYTES = 64 * 1024  # the other form fields and the multipart framing
GUARDED_PREFIX = "/v1/"

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def body_limit() -> int:
    """The most bytes a ``/v1/`` request body may have."""
    return int(settings.OPENASR.max_upload_bytes) + FORM_OVERHEAD_BYTES


def too_large() -> OpenAIError:
    return OpenAIError(
        413,
        f"The file is larger than {settings.OPENASR.max_upload_bytes} bytes (WSS_MAX_UPLOAD_BYTES)",
        param="file",
        code="file_too_large",
    )


async def _drain(receive: Receive) -> None:
    """Read the rest of the body and drop it: a client still uploading reads a response
    only once its request is sent (an early close would look like a network error)."""
    while True:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            return


async def _send_error(send: Send, error: OpenAIError) -> None:
    response = error.response()
    headers = [(k.lower().encode("latin1"), v.encode("latin1")) for k, v in response.items()]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.content})


class UploadLimitMiddleware:
    """Called for every ASGI HTTP request; only ``/v1/`` bodies are counted."""

    def __init__(self, inner: ASGIApp) -> None:
        self.inner = inner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http" or not str(scope.get("path", "")).startswith(GUARDED_PREFIX):
            await self.inner(scope, receive, send)
            return
        limit = body_limit()
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _drain(receive)
            await _send_error(send, too_large())
            return
        received = 0
        exceeded = False

        async def limited() -> Message:
            nonlocal received, exceeded
            if exceeded:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # Django stops reading on a disconnect and answers nothing; we answer.
                    exceeded = True
                    if message.get("more_body", False):
                        await _drain(receive)
                    return {"type": "http.disconnect"}
            return message

        await self.inner(scope, limited, send)
        if exceeded:
            await _send_error(send, too_large())


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
