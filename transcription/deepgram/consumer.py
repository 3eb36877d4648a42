"""The WebSocket consumer at ``/v1/listen``: Deepgram's live streaming API, on the same
sessions, workers, admission, keys and metrics as ``/transcribe`` (``SessionConsumer``).

The query string configures the session (``deepgram/protocol.py``: a bad option is refused
with HTTP 400 in Deepgram's error shape, as Deepgram does); binary frames are audio;
``Finalize`` is ``Session.flush``, ``CloseStream`` is the end of the stream (the last results,
then ``Metadata`` and a normal close); ``KeepAlive`` only keeps the connection alive.
"""

from __future__ import annotations

import hashlib
import uuid

from django.conf import settings

from transcription.auth.middleware import deepgram_denial
from transcription.connection import SessionConsumer
from transcription.deepgram import protocol
from transcription.deepgram.protocol import DeepgramEncoder, ListenOptions, ModelInfo, QueryError
from transcription.denial import Denial, deny
from transcription.events import Event, Phrase
from transcription.protocol import SpeechConfig
from transcription.session_state import State, TurnOptions

# Interim results need windows that return often: a short window commits at pauses and
# re-hears the utterance so far for interim text every window (``policy/windowed.py``).
INTERIM_WINDOW_MS = 2000


def turn_options(options: ListenOptions) -> TurnOptions | None:
    """``endpointing`` / ``utterance_end_ms`` / ``vad_events`` as the session's turn
    detection (None when none is asked for)."""
    stops = options.stop_after_ms
    if not stops:
        return None
    return TurnOptions(stop_after_ms=stops, flush_after_ms=options.effective_endpointing_ms)


class DeepgramConsumer(SessionConsumer):
    """One Deepgram live connection."""

    api = "deepgram"
    resumable = False  # the API has no resume: its checkpoints are not stored

    def shape_denial(self, denial: Denial) -> Denial:
        return deepgram_denial(denial)

    async def connect(self) -> None:
        """Called on the upgrade: the query is validated before anything else is held."""
        try:
            self.options = protocol.parse_query(self.scope.get("query_string", b""))
        except QueryError as exc:
            await deny(
                self.scope, self.base_send, deepgram_denial(Denial(400, "bad_request", str(exc)))
            )
            return
        self.audio_hash = hashlib.sha256()
        await super().connect()
        self.encoder = DeepgramEncoder(
            self.options, ModelInfo(self.model.model_id), str(uuid.uuid4())
        )

    # --- client messages ---

    async def on_frame(self, text: str | None, data: bytes | None, now: float) -> None:
        if text is not None:
            try:
                message = protocol.parse_control(text)
            except Exception:
                self.rate.check(0, binary=False, now=now)
                raise
            self.rate.check(0, binary=False, now=now, exempt=message == "CloseStream")
            # Any message starts the session, KeepAlive too: a client may keep a connection
            # open before its first audio (then the idle timeout applies, not the config one).
            await self._ensure_started(now)
            if message == "KeepAlive":
                return
            if message == "Finalize":
                await self._on_finalize(now)
            else:
                await self._on_close_stream(now)
            return
        audio = data or b""
        self.rate.check(len(audio), binary=True, now=now, exempt=not audio)
        await self._ensure_started(now)
        if not audio:
            # The older way to close the stream: an empty binary message.
            await self._on_close_stream(now)
            return
        self.audio_hash.update(audio)
        await self.feed_audio(audio, now)

    async def _on_finalize(self, now: float) -> None:
        # Wanted in SessionConsumer: a public ``flush_session(now)`` like ``end_session``.
        await self.flush_session(now)

    async def _on_close_stream(self, now: float) -> None:
        if self.session.state is State.CONFIGURED:
            await self.end_session(now)

    async def _ensure_started(self, now: float) -> None:
        if self.session.state is not State.CONNECTED:
            return
        cfg = settings.OPENASR
        window_ms, overlap_ms = cfg.window_ms, cfg.overlap_ms
        if self.options.interim_results and window_ms > INTERIM_WINDOW_MS:
            window_ms, overlap_ms = INTERIM_WINDOW_MS, min(overlap_ms, INTERIM_WINDOW_MS // 4)
        self.session.set_turns(turn_options(self.options))
        await self.start_session(
            SpeechConfig(
                language=self.options.language,
                sample_rate=self.options.sample_rate,
                encoding=self.options.session_encoding,
                window_duration_ms=window_ms,
                overlap_duration_ms=overlap_ms,
                # nova-3 and Deepgram's other names: the default model; a served id: its pool
                model_id=self.options.model,
            ),
            now,
        )
        self.encoder.model = ModelInfo(self.model.model_id)  # the pool that serves

    # --- events ---

    def frames(self, event: Event) -> list[str]:
        if isinstance(event, Phrase) and event.status == "EndOfStream":
            self.encoder.sha256 = self.audio_hash.hexdigest()
        return self.encoder.frames(event)
