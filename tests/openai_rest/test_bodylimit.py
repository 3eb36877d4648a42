"""Tests for transcription/openai_rest/bodylimit.py: a /v1/ body over the upload cap is read and
dropped, never handed on, and answered with OpenAI's 413; everything else passes through."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from django.conf import settings

from transcription.openai_rest.bodylimit import FORM_OVERHEAD_BYTES, UploadLimitMiddleware

MAX = 10_000
LIMIT = MAX + FORM_OVERHEAD_BYTES


@pytest.fixture(autouse=True)
def small_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        settings, "OPENASR", dataclasses.replace(settings.OPENASR, max_upload_bytes=MAX)
    )


class Client:
    """Feeds a body in chunks and records what the app sends back."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = list(chunks)
        self.sent: list[dict[str, Any]] = []

    async def receive(self) -> dict[str, Any]:
        body = self.chunks.pop(0)
        return {"type": "http.request", "body": body, "more_body": bool(self.chunks)}

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    @property
    def status(self) -> int:
        return int(self.sent[0]["status"])


class Inner:
    """An app that reads the whole body (as Django does) and answers 200."""

    def __init__(self) -> None:
        self.body = b""
        self.disconnected = False

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                self.disconnected = True
                return  # Django: RequestAborted, no response
            self.body += message.get("body", b"")
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def scope(path: str, length: int | None = None) -> dict[str, Any]:
    headers = [] if length is None else [(b"content-length", str(length).encode())]
    return {"type": "http", "path": path, "headers": headers}


async def test_a_declared_length_over_the_cap_is_a_413_without_calling_the_app() -> None:
    """Content-Length says too much: the body is drained, the app never runs."""
    inner, client = Inner(), Client([b"x" * 40_000] * 3)
    await UploadLimitMiddleware(inner)(
        scope("/v1/audio/transcriptions", LIMIT + 1), client.receive, client.send
    )
    assert client.status == 413 and not client.chunks and inner.body == b""
    error = json.loads(client.sent[1]["body"])["error"]
    assert (error["code"], error["param"]) == ("file_too_large", "file")


async def test_a_chunked_body_over_the_cap_is_cut_off_and_answered_413() -> None:
    """No length given: the app sees at most the cap, then a disconnect; the rest is dropped."""
    inner, client = Inner(), Client([b"x" * 30_000] * 5)
    await UploadLimitMiddleware(inner)(
        scope("/v1/audio/transcriptions"), client.receive, client.send
    )
    assert inner.disconnected and len(inner.body) <= LIMIT
    assert client.status == 413 and not client.chunks


async def test_a_body_within_the_cap_and_other_paths_pass_through() -> None:
    """Under the cap, or outside /v1/, the app gets the whole body and answers."""
    for path, chunks in (
        ("/v1/audio/transcriptions", [b"x" * 1000] * 3),
        ("/admin/", [b"x" * 200_000]),
    ):
        inner, client = Inner(), Client(chunks)
        await UploadLimitMiddleware(inner)(scope(path), client.receive, client.send)
        assert client.status == 200 and len(inner.body) == sum(map(len, chunks))
