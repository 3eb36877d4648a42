"""The WebSocket consumer at ``/transcribe``: the OpenASR (seed) wire protocol.

It parses each frame (``protocol.parse_client_message``), turns it into a call on the session
that ``SessionConsumer`` holds, and encodes the session's events (``protocol.encode``): one
frame per event.
Normative: docs/PROTOCOL.md "Client messages", "Server events".
"""

from __future__ import annotations

from django.conf import settings

from transcription import protocol
from transcription.connection import SessionConsumer
from transcription.events import ClientError, Event
from transcription.protocol import ConfigDefaults, SpeechConfig, SpeechEnd


class TranscriptionConsumer(SessionConsumer):
    """One ``/transcribe`` connection."""

    # --- client messages ---

    async def on_frame(self, text: str | None, data: bytes | None, now: float) -> None:
        if data is not None:
            self.rate.check(len(data), binary=True, now=now)
            await self.feed_audio(data, now)
        elif text is not None:
            await self._on_text(text, now)

    async def _on_text(self, text: str, now: float) -> None:
        try:
            message = protocol.parse_client_message(text, self._defaults())
        except ClientError:
            self.rate.check(0, binary=False, now=now)  # over the rate: refused as such
            raise
        # speech.end counts against the rate but is never refused: it ends the session.
        self.rate.check(0, binary=False, now=now, exempt=isinstance(message, SpeechEnd))
        if isinstance(message, SpeechConfig):
            await self.start_session(message, now)
        else:
            await self.end_session(now)

    # --- events ---

    def frames(self, event: Event) -> list[str]:
        return [protocol.encode(event, self.session.session_id)]

    def _defaults(self) -> ConfigDefaults:
        cfg = settings.OPENASR
        return ConfigDefaults(
            language=cfg.language,
            window_duration_ms=cfg.window_ms,
            overlap_duration_ms=cfg.overlap_ms,
            model_id=self.model.model_id,
        )
