"""The WebSocket consumer at ``/v1/realtime?intent=transcription``: the OpenAI Realtime API in
transcription mode, on the same sessions, workers, admission, keys and metrics as
``/transcribe`` (``SessionConsumer``).

The session starts at the first ``session.update`` or ``input_audio_buffer.append`` (so the
audio format is known); ``input_audio_buffer.commit`` is ``Session.flush``, ``.clear`` is
``Session.clear``, and ``server_vad`` is the session's turn detection with an endpoint at
``silence_duration_ms``. Wire format: ``realtime/protocol.py`` and ``realtime/config.py``.
"""

from __future__ import annotations

from django.conf import settings

from transcription.auth.middleware import openai_denial
from transcription.connection import SessionConsumer
from transcription.denial import Denial
from transcription.events import ClientError, Event, SpeechStopped
from transcription.protocol import SpeechConfig
from transcription.realtime import protocol
from transcription.realtime.config import RealtimeConfig, SessionUpdate, error, new_id
from transcription.realtime.protocol import (
    MIN_COMMIT_MS,
    Append,
    Clear,
    Commit,
    RealtimeEncoder,
    frame,
)
from transcription.session_state import State, TurnOptions

# What the audio path is built from when the session starts: fixed from then on.
FIXED_ONCE_STARTED = frozenset({"format", "language"})


def turn_options(config: RealtimeConfig) -> TurnOptions | None:
    """``server_vad`` as the session's turn detection (None: the client commits)."""
    vad = config.turn_detection
    if vad is None:
        return None
    silence = vad.silence_duration_ms
    return TurnOptions(
        stop_after_ms=(silence,), flush_after_ms=silence, vad_threshold=vad.threshold
    )


class RealtimeConsumer(SessionConsumer):
    """One Realtime transcription connection."""

    api = "openai_realtime"
    resumable = False  # the API has no resume: its checkpoints are not stored

    def shape_denial(self, denial: Denial) -> Denial:
        return openai_denial(denial)

    async def connect(self) -> None:
        """Called on the upgrade; a connection that was accepted gets ``session.created``."""
        self.encoder = RealtimeEncoder()
        self.realtime_id = new_id("sess")
        self.uncommitted_ms = 0.0  # audio appended since the last commit or clear
        await super().connect()
        if self._counted:  # accepted (a refused upgrade was answered with HTTP)
            await self.send(
                frame("session.created", session=self.encoder.config.ga(self.realtime_id))
            )

    # --- client messages ---

    async def on_frame(self, text: str | None, data: bytes | None, now: float) -> None:
        if text is None:
            self.rate.check(len(data or b""), binary=True, now=now)
            raise error(
                "Binary frames are not part of the Realtime API: send audio as "
                "input_audio_buffer.append with base64 audio",
                "invalid_event",
            )
        try:
            _event_id, event = protocol.parse_client_event(text, self.encoder.config)
        except ClientError:
            self.rate.check(0, binary=False, now=now)
            raise
        if isinstance(event, Append):
            self.rate.check(len(event.audio), binary=True, now=now)
            await self._on_append(event, now)
            return
        self.rate.check(0, binary=False, now=now)
        if isinstance(event, SessionUpdate):
            await self._on_session_update(event, now)
        elif isinstance(event, Commit):
            await self._on_commit(now)
        elif isinstance(event, Clear):
            await self._on_clear(now)

    async def _on_session_update(self, event: SessionUpdate, now: float) -> None:
        started = self.session.state is not State.CONNECTED
        old = self.encoder.config
        fixed = {
            name
            for name in event.changed & FIXED_ONCE_STARTED
            if getattr(old, name) != getattr(event.config, name)
        }
        if started and fixed:
            raise error(
                f"Cannot change {', '.join(sorted(fixed))} once the session has started (at the "
                "first session.update or append): set it in the first session.update",
                "invalid_value",
            )
        if not started:
            await self._start(event.config, now)  # a refused start keeps the old config
        self.encoder.config = event.config
        self.session.set_turns(turn_options(event.config))
        if event.beta:
            await self.send(
                frame("transcription_session.updated", session=event.config.beta(self.realtime_id))
            )
        else:
            await self.send(frame("session.updated", session=event.config.ga(self.realtime_id)))

    async def _on_append(self, event: Append, now: float) -> None:
        config = self.encoder.config
        if self.session.state is State.CONNECTED:
            self.session.set_turns(turn_options(config))
            await self._start(config, now)
        bytes_per_ms = config.sample_rate / 1000 * (2 if config.format == "pcm16" else 1)
        self.uncommitted_ms += len(event.audio) / bytes_per_ms
        await self.feed_audio(event.audio, now)

    async def _on_commit(self, now: float) -> None:
        if self.uncommitted_ms < MIN_COMMIT_MS or self.session.state is State.CONNECTED:
            raise error(
                "Error committing input audio buffer: buffer too small. Expected at least "
                f"{MIN_COMMIT_MS}ms of audio, but buffer only has "
                f"{self.uncommitted_ms:.2f}ms of audio.",
                "input_audio_buffer_commit_empty",
            )
        self.uncommitted_ms = 0
        await self.send(self.encoder.commit())
        await self.flush_session(now)

    async def _on_clear(self, now: float) -> None:
        self.uncommitted_ms = 0
        if self.session.state is State.CONFIGURED:
            await self.send(frame("input_audio_buffer.cleared"))
            await self.clear_session(now)
        else:
            await self.send(frame("input_audio_buffer.cleared"))

    async def _start(self, config: RealtimeConfig, now: float) -> None:
        cfg = settings.OPENASR
        await self.start_session(
            SpeechConfig(
                language=config.language or cfg.language,
                sample_rate=config.sample_rate,
                encoding=config.encoding,
                window_duration_ms=cfg.window_ms,
                overlap_duration_ms=cfg.overlap_ms,
                # whisper-1, gpt-4o-transcribe...: the default model; a served id: its pool
                model_id=config.model,
            ),
            now,
        )

    # --- events ---

    def frames(self, event: Event) -> list[str]:
        if isinstance(event, SpeechStopped) and event.flushing:
            self.uncommitted_ms = 0  # server_vad committed the buffer
        return self.encoder.frames(event)
