"""A file transcribed as a client would stream it: one ``Session`` fed the decoded audio as fast as
its buffer takes it, its windows sent to the inference workers at batch priority, its committed
phrases collected.

The file goes through the same path as a live session (speech gate, windows cut at pauses, the
word merge, the sans-IO ``InferenceClient`` with its deadlines and retries) with limits for a
file: no real-time speed limit, a buffer that holds a long window, ``WSS_MAX_UPLOAD_S`` of audio.
Its jobs go to ``BATCH_CHANNEL``, which a worker serves only when no live window waits.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass, replace
from typing import Any

from channels.exceptions import ChannelFull
from django.conf import settings

from transcription import admission, metrics
from transcription.audio import SAMPLE_RATE_HZ
from transcription.events import ClientError, Error, ErrorCode, Phrase
from transcription.inference.messages import JobAccepted, JobResult, TranscribeJob
from transcription.limits import SessionLimits
from transcription.modelinfo import ModelInfo
from transcription.openai_rest.audiofile import AudioFile
from transcription.openai_rest.errors import OpenAIError
from transcription.protocol import SpeechConfig
from transcription.registry import NODE
from transcription.session import Session
from transcription.session_state import Outputs, State

log = logging.getLogger(__name__)

# Long windows: with whisper.cpp's padded 30 s context (WSS_AUDIO_CTX=full) a window costs the
# same whatever its length, and a window cut at a pause within its last quarter stays <= 30 s.
FILE_WINDOW_MS = 24_000
FILE_OVERLAP_MS = 2_000
FILE_BUFFER_MS = 60_000  # usable 45 s: a full window plus its pause search
# A file is not paced: the token bucket never binds (the buffer does). Finite, since the bucket
# multiplies it by elapsed time.
UNPACED_SPEED = 1e9
READ_MS = 10_000  # decoded per thread hop
FEED_MS = 1_000  # per feed_audio call, as a client's frames
TICK_S = 0.5  # inference deadlines (InferenceClient.tick)


def file_limits(cfg: Any) -> SessionLimits:
    """The session limits of a file job (everything else as the server's sessions)."""
    return replace(
        SessionLimits.from_config(cfg),
        audio_buffer_ms=max(FILE_BUFFER_MS, cfg.audio_buffer_ms),
        max_audio_speed=UNPACED_SPEED,
        max_session_ms=(cfg.max_upload_s + 1) * 1000,
    )


def file_config(language: str, model: ModelInfo) -> SpeechConfig:
    return SpeechConfig(
        language=language,
        sample_rate=SAMPLE_RATE_HZ,
        encoding="pcm_s16le",
        window_duration_ms=FILE_WINDOW_MS,
        overlap_duration_ms=FILE_OVERLAP_MS,
        model_id=model.model_id,
    )


@dataclass(frozen=True, slots=True)
class Finished:
    """The end of a file: the whole transcript and how much audio it had."""

    text: str
    duration_s: float


def _as_openai_error(code: ErrorCode, message: str) -> OpenAIError:
    if code is ErrorCode.SERVICE_UNAVAILABLE:
        return OpenAIError(503, message, code="service_unavailable", retry_after_s=5)
    if code is ErrorCode.AUDIO_ERROR:
        return OpenAIError(400, message, param="file", code="invalid_file_format")
    if code is ErrorCode.RATE_LIMITED:
        return OpenAIError(413, message, param="file", code="transcript_too_long")
    return OpenAIError(500, message, code="server_error")


class FileJob:
    """One file's session, driven to its end; ``phrases()`` yields what it commits."""

    def __init__(
        self,
        audio: AudioFile,
        *,
        session_id: str,
        language: str,
        prompt: str,
        model: ModelInfo,
        channel_layer: Any,
    ) -> None:
        self.audio = audio
        self.session_id = session_id
        self.language = language
        self.prompt = prompt
        self.model = model
        self.layer = channel_layer
        self.session: Session | None = None
        self._pending = False  # counted in NODE.inference_pending
        self._feeding: asyncio.Future[Outputs] | None = None  # a _feed running on a thread

    async def phrases(self) -> AsyncGenerator[Phrase | Finished, None]:
        """Committed phrases (``status == "Success"``) in order, then ``Finished``. Raises
        ``OpenAIError`` when the file cannot be transcribed (bad audio, no worker answered)."""
        reply = await self.layer.new_channel("openai.file.")
        session = self.session = Session(file_limits(settings.OPENASR), reply_channel=reply)
        receive: asyncio.Task[dict[str, Any]] | None = None
        try:
            config = file_config(self.language, self.model)
            now = time.monotonic()
            outputs = session.start(
                self.session_id,
                config,
                model_id=self.model.model_id,
                multilingual=self.model.multilingual,
                now=now,
            )
            next_tick = now + TICK_S
            while session.state is not State.ENDED:
                if session.state is State.CONFIGURED and self._room_samples() > 0:
                    self._feeding = asyncio.ensure_future(
                        asyncio.to_thread(self._feed, time.monotonic())
                    )
                    outputs = await self._feeding
                else:
                    if receive is None:
                        receive = asyncio.ensure_future(self.layer.receive(reply))
                    done, _ = await asyncio.wait({receive}, timeout=TICK_S)
                    now = time.monotonic()
                    outputs = Outputs()
                    if receive in done:
                        message, receive = receive.result(), None
                        outputs = self._on_reply(message, now)
                    if now >= next_tick:
                        next_tick = now + TICK_S
                        _merge(outputs, session.tick(now))
                for item in await self._handle(outputs):
                    yield item
        finally:
            if receive is not None:
                receive.cancel()
            if self._feeding is not None and not self._feeding.done():
                # Cancelled mid-feed (the client went away): a thread cannot be stopped, and
                # the decoder must not be closed under it. One hop is at most READ_MS of audio.
                await asyncio.wait({self._feeding})
            session.abandon()
            self._count_pending()

    # --- inside ---

    def _room_samples(self) -> int:
        """Audio the session takes now: what its buffer holds free (the allowance never binds)."""
        session = self.session
        assert session is not None
        if self.audio.exhausted:
            return 1  # nothing left: the next _feed ends the session
        free_ms = session.buffer.free_ms
        # Feed only once a window's worth is free, not every released millisecond.
        return free_ms * SAMPLE_RATE_HZ // 1000 if free_ms >= FEED_MS else 0

    def _feed(self, now: float) -> Outputs:
        """On a thread: decode up to what the buffer takes and feed it in frame-sized pieces;
        ``speech.end`` once the file is exhausted. The session is touched by this job only."""
        session = self.session
        assert session is not None
        out = Outputs()
        free = session.buffer.free_ms
        allowed = session.configured.allowance.available_ms(now)
        want = min(free, allowed, READ_MS) * SAMPLE_RATE_HZ // 1000
        data = self.audio.read(want) if want > 0 else b""
        step = FEED_MS * SAMPLE_RATE_HZ // 1000 * 2
        for i in range(0, len(data), step):
            _merge(out, session.feed_audio(data[i : i + step], now))
        if self.audio.exhausted:
            _merge(out, session.end(now))
        return out

    def _on_reply(self, message: dict[str, Any], now: float) -> Outputs:
        session = self.session
        assert session is not None
        if message.get("type") == JobAccepted.TYPE:
            session.on_accepted(JobAccepted.from_message(message), now)
            return Outputs()
        if message.get("type") != JobResult.TYPE:
            log.warning("ignoring a %r message on a file job's channel", message.get("type"))
            return Outputs()
        result = JobResult.from_message(message)
        metrics.observe_result(result)
        if result.ok:
            admission.observe(result, model_id=self.model.model_id)
        else:
            log.warning("file window %d failed on a worker: %s", result.window_index, result.error)
        outputs = session.on_result(result, now)
        if outputs.latency_s is not None:
            # Not the live window-latency histogram: a file's windows wait behind live ones.
            log.debug(
                "file-window-timing index=%d latency_s=%.4f inference_s=%.4f audio_s=%.3f",
                result.window_index,
                outputs.latency_s,
                result.inference_s,
                result.audio_s,
            )
        return outputs

    async def _handle(self, outputs: Outputs) -> list[Phrase | Finished]:
        """Send the jobs; turn the events into phrases, ``Finished`` or an ``OpenAIError``."""
        items: list[Phrase | Finished] = []
        for event in outputs.events:
            if isinstance(event, Error):
                raise _as_openai_error(event.code, event.message)
            if isinstance(event, Phrase):
                if event.status == "EndOfStream":
                    items.append(Finished(event.text, self.audio.seconds_read))
                elif event.words:
                    items.append(event)
        metrics.VAD_SKIPPED_WINDOWS.inc(outputs.windows_skipped)
        metrics.INFERENCE_RETRIES.inc(outputs.resends)
        for job in outputs.jobs:
            await self._send(job)
        self._count_pending()
        return items

    async def _send(self, job: TranscribeJob) -> None:
        prompt = " ".join(p for p in (self.prompt, job.prompt) if p)
        job = replace(job, priority="batch", prompt=prompt, enqueued_at=time.time())
        metrics.INFERENCE_JOBS_SUBMITTED.inc()
        try:
            await self.layer.send(job.channel, job.to_message())
        except ChannelFull:
            # The inference client re-sends it when its deadline passes.
            metrics.INFERENCE_JOBS_DROPPED.inc()
            log.warning("batch queue full; file window %d will be re-sent", job.window_index)
        except Exception:
            metrics.REDIS_ERRORS.labels(operation="job_send").inc()
            log.warning("could not submit file window %d", job.window_index, exc_info=True)

    def _count_pending(self) -> None:
        """Keep ``NODE.inference_pending`` in step with the job in flight."""
        session = self.session
        pending = session is not None and session.inference.in_flight is not None
        if pending and not self._pending:
            NODE.job_submitted()
        elif self._pending and not pending:
            NODE.job_finished()
        self._pending = pending


def _merge(into: Outputs, more: Outputs) -> None:
    into.events += more.events
    into.jobs += more.jobs
    into.windows_skipped += more.windows_skipped
    into.refused_ms += more.refused_ms
    into.resends += more.resends


def check_language(language: str, model: ModelInfo) -> None:
    """400 before anything is reserved: an English-only model takes English only."""
    try:
        Session.check_config(file_config(language, model), model.model_id, model.multilingual)
    except ClientError as exc:
        raise OpenAIError(400, exc.message, param="language", code="unsupported_language") from None
