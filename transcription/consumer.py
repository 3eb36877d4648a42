"""The WebSocket consumer at ``/transcribe``: a thin shell around ``Session``.

It moves bytes between the socket, the sans-IO ``Session`` and the channel layer, and owns what
needs I/O: the connection state machine (PROTOCOL.md "Session state machine"), job submission
with timeouts and retries (the worker contract of ``worker.py``), checkpoint storage and resume,
limits, and metrics. Every client mistake is a ``ClientError`` and goes through ``_send_error``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from typing import Any

from channels.exceptions import ChannelFull
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from openasr_site.logconfig import key_name_var, session_id_var
from transcription import admission, checkpoints, metrics, protocol
from transcription.modelinfo import ModelInfo, resolve_serving_model
from transcription.protocol import ClientError, ConfigDefaults, ErrorCode, SpeechConfig, SpeechEnd
from transcription.registry import NODE
from transcription.session import Job, Outputs, ResumeState, Session, SessionLimits, State
from transcription.worker import (
    INFERENCE_CHANNEL,
    JOB_TYPE,
    encode_samples,
    ensure_inprocess_worker,
    segments_from_wire,
)

log = logging.getLogger(__name__)

IDLE_CHECK_INTERVAL_S = 1.0


def new_session_id() -> str:
    """128-bit random hex (PROTOCOL.md / seed ``session_id``)."""
    return secrets.token_hex(16)


class RateWindow:
    """Counts messages and bytes per one-second window for the per-session limits."""

    def __init__(self, max_messages: int, max_bytes: int) -> None:
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self.window_start = time.monotonic()
        self.messages = 0
        self.bytes = 0

    def allow(self, size: int) -> bool:
        now = time.monotonic()
        if now - self.window_start >= 1.0:
            self.window_start, self.messages, self.bytes = now, 0, 0
        self.messages += 1
        self.bytes += size
        return self.messages <= self.max_messages and self.bytes <= self.max_bytes


class TranscriptionConsumer(AsyncWebsocketConsumer):
    """One client connection; at most one session."""

    state: State
    session: Session | None

    async def connect(self) -> None:
        """Called on the upgrade request (auth already passed in the middleware)."""
        cfg = settings.OPENASR
        ensure_inprocess_worker()
        self.state = State.CONNECTED
        self.session = None
        self.key: dict[str, Any] | None = self.scope.get("openasr.key")
        self.model: ModelInfo = resolve_serving_model(cfg)
        self.tasks: set[asyncio.Task[Any]] = set()
        self.pending: dict[str, Any] | None = None  # the job in flight, for retries
        self.watchdog: asyncio.Task[Any] | None = None
        self.last_activity = time.monotonic()
        self.rate = RateWindow(cfg.max_messages_per_s, cfg.max_audio_bytes_per_s)
        self.counted = False
        if NODE.connections >= cfg.max_connections or NODE.draining:
            metrics.CONNECTIONS_REJECTED_LIMIT.inc()
            await self._deny(503, "server full or draining: try again later")
            return
        self.counted = True
        NODE.connection_opened()
        metrics.CONNECTIONS.inc()
        # This task's context was copied from whatever reactor callback created it, which may
        # carry an earlier session's id (logconfig._in_plain_loop_callback): start clean.
        session_id_var.set(None)
        key_name_var.set(self.key["name"] if self.key else None)
        await self.accept(self.scope.get("openasr.subprotocol"))
        self._spawn(self._idle_watchdog())

    async def _deny(self, status: int, reason: str) -> None:
        """Refuse the upgrade with an HTTP status (denial-response extension) or a close."""
        if "websocket.http.response" in self.scope.get("extensions", {}):
            await self.send(
                {
                    "type": "websocket.http.response.start",
                    "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"retry-after", b"5")],
                }
            )
            body = json.dumps({"error": reason}).encode()
            await self.send({"type": "websocket.http.response.body", "body": body})
        else:
            await self.close()

    async def disconnect(self, code: int) -> None:
        """Called when the socket closes, for any reason: leave nothing behind."""
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)
        self.tasks.clear()
        admission.release(self.channel_name)
        if self.pending is not None:
            NODE.job_finished()
            self.pending = None
        if self.session is not None:
            await self._release_live(self.session.session_id)
            NODE.session_ended(self.session.session_id)
            metrics.SESSIONS_DESTROYED.inc()
            log.info("session closed (code %s)", code)
            self.session = None
        if self.counted:
            NODE.connection_closed()
            self.counted = False

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Called for each WebSocket frame; one error funnel for client mistakes."""
        self.last_activity = time.monotonic()
        started = time.perf_counter()
        size = len(bytes_data) if bytes_data is not None else len(text_data or "")
        try:
            # Only audio frames are throttled: control messages are few by construction (one
            # config, one end), and refusing a speech.end would strand the transcript.
            if bytes_data is not None and not self.rate.allow(size):
                raise ClientError(
                    ErrorCode.RATE_LIMITED,
                    f"Too many messages: at most {self.rate.max_messages} messages and "
                    f"{self.rate.max_bytes} bytes per second per session",
                )
            if bytes_data is not None:
                await self._on_audio(bytes_data)
            elif text_data is not None:
                message = protocol.parse_client_message(text_data, self._defaults())
                if isinstance(message, SpeechConfig):
                    await self._on_speech_config(message)
                elif isinstance(message, SpeechEnd):
                    await self._on_speech_end()
        except ClientError as exc:
            await self._send_error(exc)
        if bytes_data is not None:
            metrics.FRAME_HANDLE.observe(time.perf_counter() - started)

    # --- client messages ---

    async def _on_speech_config(self, config: SpeechConfig) -> None:
        if self.state is not State.CONNECTED:
            raise ClientError(ErrorCode.INVALID_STATE, "speech.config was already received")
        cfg = settings.OPENASR
        if not self.model.multilingual and config.language.lower() not in {"en", "en-us", "en-gb"}:
            raise protocol.invalid(
                f"Invalid 'language': the serving model {self.model.model_id} is English-only"
            )
        if NODE.active_sessions >= cfg.max_sessions or NODE.draining:
            metrics.CONNECTIONS_REJECTED_LIMIT.inc()
            raise ClientError(
                ErrorCode.SESSION_LIMIT,
                f"Maximum concurrent sessions reached ({cfg.max_sessions}); try again later",
            )
        key_limit = self.key.get("max_sessions") if self.key else None
        if key_limit is not None and NODE.sessions_of_key(self._key_id() or "") >= key_limit:
            metrics.CONNECTIONS_REJECTED_LIMIT.inc()
            raise ClientError(
                ErrorCode.SESSION_LIMIT,
                f"Maximum concurrent sessions for this API key reached ({key_limit}); "
                "try again later",
            )
        await admission.admit(self.channel_name, config)
        resume: ResumeState | None = None
        session_id = new_session_id()
        if config.resume_checkpoint is not None:
            session_id, resume = await checkpoints.resolve_resume(
                config.resume_checkpoint, self._key_id(), checkpoints.get_store()
            )
            if session_id in NODE.sessions:
                raise ClientError(
                    ErrorCode.SESSION_NOT_FOUND,
                    f"Cannot resume: session {session_id} is live on another connection",
                )
        await self._claim_live(session_id)
        session = Session(
            session_id,
            config,
            self._limits(),
            model_id=self.model.model_id,
            resume=resume,
            signer=lambda cp: checkpoints.sign(cp, self._key_id()),
        )
        self.session = session
        self.state = State.CONFIGURED
        session_id_var.set(session_id)
        NODE.session_started(session_id, self.channel_name, self._key_id())
        self._spawn(self._refresh_live(session_id))
        metrics.SESSIONS_CREATED.inc()
        if self.key:
            metrics.KEY_SESSIONS.labels(key_name=self.key["name"]).inc()
        log.info(
            "session %s (%s, %d Hz, window %d/%d ms, model %s)",
            "resumed" if resume else "created",
            config.encoding,
            config.sample_rate,
            config.window_duration_ms,
            config.overlap_duration_ms,
            self.model.model_id,
        )
        extra: dict[str, Any] = {}
        if resume is not None:
            extra["resumed"] = True
            extra["last_audio_ms"] = resume.last_audio_ms
        await self.send(
            text_data=protocol.config_ack_event(
                session_id, config.effective(self.model.model_id), **extra
            )
        )

    async def _on_audio(self, data: bytes) -> None:
        if self.session is None or self.state is not State.CONFIGURED:
            if self.state is State.CONNECTED:
                raise ClientError(ErrorCode.INVALID_STATE, "Audio before speech.config")
            raise ClientError(ErrorCode.INVALID_STATE, "Audio after speech.end")
        if not data:
            return  # an empty frame is ignored (PROTOCOL.md "Audio")
        metrics.AUDIO_BYTES_RECEIVED.inc(len(data))
        metrics.AUDIO_CHUNKS_RECEIVED.inc()
        refused_before = self.session.refused_ms_total
        outputs = self.session.feed_audio(data)
        if self.session.refused_ms_total > refused_before:
            # The session reports the refusal as a speech.error of its own (not a ClientError:
            # the session goes on), so it is counted here rather than in _send_error.
            metrics.AUDIO_REFUSED_MS.inc(self.session.refused_ms_total - refused_before)
            metrics.ERRORS.inc()
        await self._apply(outputs)

    async def _on_speech_end(self) -> None:
        if self.session is None or self.state is State.CONNECTED:
            raise ClientError(ErrorCode.INVALID_STATE, "speech.end before speech.config")
        if self.state is not State.CONFIGURED:
            raise ClientError(ErrorCode.INVALID_STATE, "speech.end was already received")
        self.state = State.ENDING
        await self._apply(self.session.end())

    # --- channel-layer events ---

    async def asr_accepted(self, message: dict[str, Any]) -> None:
        """A worker started our window: restart the timeout for the inference itself."""
        if self._is_current(message):
            self.pending["accepted_at"] = time.monotonic()  # type: ignore[index]
            self._arm_watchdog()

    async def asr_result(self, message: dict[str, Any]) -> None:
        """A worker finished a window (or failed it)."""
        metrics.observe_result(message)
        if self.session is None or not self._is_current(message):
            return  # stale: a retried window answered twice, or the session is gone
        pending = self.pending
        assert pending is not None
        if not message.get("ok"):
            log.warning(
                "window %s failed on a worker: %s",
                message.get("window_index"),
                message.get("error"),
            )
            await self._retry(pending, reason="worker error")
            return
        self._clear_pending()
        admission.observe(message)
        try:
            outputs = self.session.on_result(
                int(message["window_index"]), segments_from_wire(message["segments"])
            )
            await self._apply(outputs)
            latency_s = time.monotonic() - pending["window_complete_at"]
            metrics.WINDOW_LATENCY.observe(latency_s)
            # One line per window for benchmarks/latency.py.
            log.debug(
                "window-timing index=%s latency_s=%.4f inference_s=%.4f queue_wait_s=%.4f "
                "audio_s=%.3f",
                message["window_index"],
                latency_s,
                float(message.get("inference_s", -1)),
                float(message.get("queue_wait_s", -1)),
                float(message.get("audio_s", -1)),
            )
        except ClientError as exc:
            await self._send_error(exc)

    async def asr_live_probe(self, message: dict[str, Any]) -> None:
        """Another connection wants to resume a session: answer if this one still owns it."""
        if self.session is not None and self.session.session_id == message.get("session_id"):
            await self.channel_layer.send(
                message["reply_channel"],
                {"type": "asr.live_ack", "session_id": message["session_id"]},
            )

    # --- outgoing ---

    async def _apply(self, outputs: Outputs) -> None:
        """Store the session's checkpoint, send its events in order, submit its jobs, close."""
        # Store before sending: a client never holds a checkpoint that resume-by-session_id
        # cannot find (a node may die right after the send).
        if outputs.checkpoint is not None and self.session is not None:
            await self._store_checkpoint(outputs.checkpoint)
        for event in outputs.events:
            await self.send(text_data=event)
        if outputs.backpressure_events:
            metrics.BACKPRESSURE_EVENTS.inc(outputs.backpressure_events)
        if outputs.windows_skipped:
            metrics.VAD_SKIPPED_WINDOWS.inc(outputs.windows_skipped)
        for job in outputs.jobs:
            await self._submit(job)
        if outputs.close_code is not None:
            self.state = State.ENDED
            await self.close(code=outputs.close_code)

    async def _send_error(self, exc: ClientError) -> None:
        metrics.ERRORS.inc()
        sid = self.session.session_id if self.session else None
        log.info("client error %s: %s", exc.code, exc.message)
        await self.send(text_data=protocol.error_event(sid, exc.code, exc.message))
        if exc.close_code is not None:
            await self.close(code=exc.close_code)

    async def _store_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        assert self.session is not None
        try:
            await checkpoints.get_store().asave(self.session.session_id, checkpoint)
        except Exception:
            # The client still got the checkpoint; resume with the full object works.
            metrics.REDIS_ERRORS.labels(operation="checkpoint_save").inc()
            log.warning("could not store the checkpoint", exc_info=True)

    # --- live-session markers ---

    async def _claim_live(self, session_id: str) -> None:
        """Mark ``session_id`` live on this connection, across nodes (PROTOCOL.md "Checkpoints
        and resume"). A marker whose owner does not answer a probe is taken over at once, so a
        resume right after a node was SIGKILLed does not wait for the marker's TTL."""
        live = checkpoints.get_live_sessions()
        try:
            owner = await live.aclaim(session_id, self.channel_name)
            if owner is None:
                return
            if owner and not await self._owner_answers(owner, session_id):
                if await live.atakeover(session_id, owner, self.channel_name):
                    log.info("took over session %s from %s (owner gone)", session_id, owner)
                    return
        except Exception:
            # Redis away: without the marker the refusal holds on this node only (NODE
            # .sessions); better than refusing every session. Counted and logged.
            metrics.REDIS_ERRORS.labels(operation="live_claim").inc()
            log.warning("could not claim live marker of %s", session_id, exc_info=True)
            return
        raise ClientError(
            ErrorCode.SESSION_NOT_FOUND,
            f"Cannot resume: session {session_id} is live on another connection",
        )

    async def _owner_answers(self, owner: str, session_id: str) -> bool:
        """Probe the owning consumer over the channel layer; a dead node's channel is silent.
        Waits on a channel of its own: this consumer's dispatch is busy with speech.config."""
        reply = await self.channel_layer.new_channel()
        await self.channel_layer.send(
            owner, {"type": "asr.live_probe", "session_id": session_id, "reply_channel": reply}
        )
        try:
            await asyncio.wait_for(
                self.channel_layer.receive(reply), checkpoints.LIVE_PROBE_TIMEOUT_S
            )
        except TimeoutError:
            return False
        return True

    async def _refresh_live(self, session_id: str) -> None:
        live = checkpoints.get_live_sessions()
        while True:
            await asyncio.sleep(checkpoints.LIVE_REFRESH_S)
            try:
                if not await live.arefresh(session_id, self.channel_name):
                    # Lost (expired during a Redis outage, or taken over): claim it back.
                    await live.aclaim(session_id, self.channel_name)
            except Exception:
                metrics.REDIS_ERRORS.labels(operation="live_refresh").inc()
                log.warning("could not refresh live marker of %s", session_id, exc_info=True)

    async def _release_live(self, session_id: str) -> None:
        try:
            await checkpoints.get_live_sessions().arelease(session_id, self.channel_name)
        except Exception:
            metrics.REDIS_ERRORS.labels(operation="live_release").inc()
            log.warning("could not release live marker of %s", session_id, exc_info=True)

    # --- inference jobs ---

    async def _submit(self, job: Job) -> None:
        assert self.session is not None
        self.pending = {
            "job": job,
            "attempt": 0,
            "window_complete_at": time.monotonic(),
        }
        NODE.job_submitted()
        await self._send_job()

    async def _send_job(self) -> None:
        pending = self.pending
        assert pending is not None and self.session is not None
        job: Job = pending["job"]
        message = {
            "type": JOB_TYPE,
            "reply_channel": self.channel_name,
            "session_id": self.session.session_id,
            "window_index": job.window_index,
            "attempt": pending["attempt"],
            "audio": encode_samples(job.samples),
            "language": job.language,
            "prompt": job.prompt,
            "beam_size": job.beam_size,
            "n_threads": job.n_threads,
            "audio_ctx": job.audio_ctx,
            "enqueued_at": time.time(),
        }
        metrics.INFERENCE_JOBS_SUBMITTED.inc()
        try:
            await self.channel_layer.send(INFERENCE_CHANNEL, message)
        except ChannelFull:
            metrics.INFERENCE_JOBS_DROPPED.inc()
            log.warning("inference queue full; window %d will be re-sent", job.window_index)
        except Exception:
            metrics.REDIS_ERRORS.labels(operation="job_send").inc()
            log.warning("could not submit window %d", job.window_index, exc_info=True)
        self._arm_watchdog()

    def _arm_watchdog(self) -> None:
        if self.watchdog is not None:
            self.watchdog.cancel()
        self.watchdog = self._spawn(self._job_watchdog())

    async def _job_watchdog(self) -> None:
        await asyncio.sleep(settings.OPENASR.inference_timeout_s)
        if self.pending is not None:
            self.watchdog = None
            await self._retry(self.pending, reason="timeout")

    async def _retry(self, pending: dict[str, Any], *, reason: str) -> None:
        """Re-send the window in flight (same index: the session ignores a late duplicate)."""
        cfg = settings.OPENASR
        if pending["attempt"] >= cfg.inference_retries:
            self._clear_pending()
            await self._send_error(
                ClientError(
                    ErrorCode.SERVICE_UNAVAILABLE,
                    f"No inference worker answered for window {pending['job'].window_index} "
                    f"after {cfg.inference_retries + 1} attempts ({reason}); the last checkpoint "
                    "is stored: resume with it later",
                    close_code=protocol.CLOSE_TRY_AGAIN,
                )
            )
            return
        pending["attempt"] += 1
        metrics.INFERENCE_RETRIES.inc()
        log.warning(
            "re-sending window %d (attempt %d, %s)",
            pending["job"].window_index,
            pending["attempt"],
            reason,
        )
        await self._send_job()

    def _is_current(self, message: dict[str, Any]) -> bool:
        return (
            self.pending is not None
            and message.get("window_index") == self.pending["job"].window_index
        )

    def _clear_pending(self) -> None:
        if self.pending is not None:
            self.pending = None
            NODE.job_finished()
        if self.watchdog is not None:
            self.watchdog.cancel()
            self.watchdog = None

    # --- helpers ---

    async def _idle_watchdog(self) -> None:
        timeout = settings.OPENASR.idle_timeout_s
        while True:
            await asyncio.sleep(min(IDLE_CHECK_INTERVAL_S, timeout))
            busy = self.pending is not None or self.state is State.ENDING
            if not busy and time.monotonic() - self.last_activity > timeout:
                await self._send_error(
                    ClientError(
                        ErrorCode.INVALID_STATE,
                        f"Idle timeout: no message for {timeout} s; closing",
                        close_code=protocol.CLOSE_IDLE_TIMEOUT,
                    )
                )
                return

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task failed", exc_info=task.exception())

    def _key_id(self) -> str | None:
        return self.key["id"] if self.key else None

    def _defaults(self) -> ConfigDefaults:
        cfg = settings.OPENASR
        return ConfigDefaults(
            language=cfg.language,
            window_duration_ms=cfg.window_ms,
            overlap_duration_ms=cfg.overlap_ms,
            model_id=self.model.model_id,
        )

    def _limits(self) -> SessionLimits:
        cfg = settings.OPENASR
        return SessionLimits(
            audio_buffer_ms=cfg.audio_buffer_ms,
            max_transcript_bytes=cfg.max_transcript_bytes,
            max_session_ms=cfg.max_session_s * 1000,
            vad=cfg.vad,
            vad_threshold=cfg.vad_threshold,
            streaming_policy=cfg.streaming_policy,
            beam_size=cfg.beam_size,
            n_threads=cfg.effective_threads,
            audio_ctx_auto=cfg.audio_ctx == "auto",
            prompt=cfg.prompt == "transcript",
        )
