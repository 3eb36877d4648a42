"""One-call helpers: transcribe a whole audio file (async and sync)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from openasr_client.audio import open_audio
from openasr_client.events import Event
from openasr_client.transcriber import Transcriber, stream_audio
from openasr_client.transcript import Transcript

DEFAULT_URL = "ws://localhost:9090/transcribe"
API_KEY_ENV = "OPENASR_API_KEY"


def default_api_key() -> str | None:
    """``$OPENASR_API_KEY`` when set and non-empty."""
    return os.environ.get(API_KEY_ENV) or None


async def atranscribe_file(
    path: str | Path,
    url: str = DEFAULT_URL,
    api_key: str | None = None,
    *,
    on_event: Callable[[Event], None] | None = None,
    **options: Any,
) -> Transcript:
    """Stream a file through a session and return its transcript; ``options`` go to
    ``Transcriber`` (``window_ms``, ``language``, ``realtime``, ...)."""
    source = open_audio(path)
    async with Transcriber(
        url, api_key or default_api_key(), sample_rate=source.sample_rate, **options
    ) as transcriber:
        events = await stream_audio(transcriber, source.chunks(), on_event)
    return Transcript.from_events(events)


def transcribe_file(
    path: str | Path,
    url: str = DEFAULT_URL,
    api_key: str | None = None,
    **options: Any,
) -> Transcript:
    """Blocking ``atranscribe_file`` (runs its own event loop)."""
    return asyncio.run(atranscribe_file(path, url, api_key, **options))
