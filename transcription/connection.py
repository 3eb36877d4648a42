"""What every wire protocol's consumer shares: one connection, one ``Session``, the channel
layer, and a cleanup that always runs.

The sans-IO ``Session`` owns the connection state, the audio, the transcript and the job in
flight; ``limits.py`` owns the per-connection limits. ``SessionConsumer`` moves messages between
them and the channel layer, stores checkpoints, and makes sure that whatever happens,
``_cleanup`` runs once and leaves nothing behind (docs/PROTOCOL.md "Session state machine",
"Close codes"). A protocol's consumer subclasses it: it parses its frames into calls of
``start_session`` / ``feed_audio`` / ``end_session`` and encodes events (``frames``).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Coroutine
from typing import Any

from channels.exceptions import ChannelFull, StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from openasr_site.logconfig import key_name_var, session_id_var
from transcription import admission, checkpoints, live, metrics
from transcription.auth.keys import KeyIdentity, akey_active
from transcription.denial import Denial, deny
from transcription.events import (
    Backpressure,
    Checkpoint,
    ClientError,
    Close,
    CloseCode,
    Error,
    ErrorCode,
    Event,
)
from transcription.inference import heartbeat
from transcription.inference.client import InferenceTimes
from transcription.inference.messages import JobAccepted, JobResult, TranscribeJob
from transcription.layer import OutageTolerantReceive, cancel_and_wait
from transcription.limits import Deadlines, ErrorBudget, RateWindow, SessionLimits, abuse_error
from transcription.modelinfo import resolve_serving_model, route
from transcription.protocol import SpeechConfig
from transcription.registry import NODE
from transcription.session import Session
from transcription.session_state import Outputs, ResumeState, State
from transcription.worker import ensure_inprocess_worker

log = logging.getLogger(__name__)

TICK_S = 0.5  # inference deadlines, idle and config deadlines, key revocation
# The measured inference times every session's deadlines derive from (inference/client.py).
INFERENCE_TIMES = InferenceTimes()


def new_session_id() -> str:
    """128-bit random hex (the seed's ``session_id``)."""
    return secrets.token_hex(16)


class SessionConsumer(OutageTolerantReceive, AsyncWebsocketConsumer):
    """One client connection and its session, whatever the wire protocol. A Redis outage
    never closes it (``layer.py``): the audio buffers, the window in flight is re-sent once
    the layer answers (``inference/client.py``)."""

    api = "openasr"  # the wire API, a label of openasr_api_sessions_total
    resumable = True  # the protocol can resume a session from its stored checkpoint
    session: Session
    key: KeyIdentity | None = None
    _counted = False  # counted in NODE.connections
    _registered = False  # session registered in NODE.sessions with a live marker
    _pending = False  # counted in NODE.inference_pending
    _cleaned = False
    _unsaved: Checkpoint | None = None  # the store refused it (Redis away): retried

    # --- lifecycle ---

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Run the consumer; whatever ends it (close, crash, cancellation), clean up."""
        self._tasks: set[asyncio.Task[Any]] = set()
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._cleanup()

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Every handler runs here: an unexpected exception is logged with its traceback, the
        client gets ``INTERNAL_ERROR`` and the connection closes with 1011."""
        try:
            await super().dispatch(message)
        except StopConsumer:
            raise
        except Exception:
            log.exception("unexpected error handling %s", message.get("type"))
            metrics.INTERNAL_ERRORS.inc()
            await self._send_error(
                ClientError(
                    ErrorCode.INTERNAL_ERROR,
                    "Internal server error; the last checkpoint is stored: resume with it",
                    close_code=CloseCode.INTERNAL_ERROR,
                )
            )

    async def connect(self) -> None:
        """Called on the upgrade request (auth already passed in the middleware)."""
        cfg = settings.OPENASR
        now = time.monotonic()
        ensure_inprocess_worker()
        self.key = self.scope.get("openasr.key")
        self.model = resolve_serving_model(cfg)
        self.session = Session(
            SessionLimits.from_config(cfg),
            reply_channel=self.channel_name,
            inference_times=INFERENCE_TIMES,
        )
        self.rate = RateWindow(cfg.max_messages_per_s, cfg.max_audio_bytes_per_s, now)
        self.errors = ErrorBudget(now)
        self.deadlines = Deadlines(
            config_timeout_s=cfg.config_timeout_s, idle_timeout_s=cfg.idle_timeout_s, now=now
        )
        session_id_var.set(None)  # the task's context may carry an earlier session's id
        key_name_var.set(self.key["name"] if self.key else None)
        refusal = admission.refuse_connection(self.key)
        if refusal is not None:
            await deny(self.scope, self.base_send, self.shape_denial(refusal))
            return
        self._counted = True
        NODE.connection_opened(self._key_id())
        metrics.CONNECTIONS.inc()
        await self.accept(self.scope.get("openasr.subprotocol"))
        self._spawn(self._ticker())

    async def disconnect(self, code: int) -> None:
        """Called when the socket closes, for any reason."""
        await self._cleanup(code)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Called for each WebSocket frame; one error funnel for client mistakes."""
        now = time.monotonic()
        self.deadlines.on_frame(now)
        if self.session.state is State.ENDED:
            return  # closing: frames still in flight are ignored
        try:
            await self.on_frame(text_data, bytes_data, now)
        except ClientError as exc:
            await self._send_error(exc)

    async def on_frame(self, text: str | None, data: bytes | None, now: float) -> None:
        """Called with each frame of a live connection; the protocol's own parsing."""
        raise NotImplementedError

    def shape_denial(self, denial: Denial) -> Denial:
        """A refusal of the upgrade in the protocol's own error shape (ours by default)."""
        return denial

    def frames(self, event: Event) -> list[str]:
        """The text frames of ``event`` in the protocol's wire format (none, one or more:
        another protocol may have no message for a checkpoint, or two for one phrase)."""
        raise NotImplementedError

    # --- the session, for the protocols ---

    async def start_session(self, config: SpeechConfig, now: float) -> None:
        """Configure the session (its model, admission, resume, live marker), then
        acknowledge."""
        self.session.check_can_configure()
        self.model = route(settings.OPENASR, config.model_id, config.language, config.task)
        self.session.check_config(config, self.model.model_id, self.model.multilingual)
        await admission.check_session_caps(self.key)
        await admission.admit(self.channel_name, config, self.model.model_id)
        try:
            session_id, resume = await self._resolve(config)
            await live.claim(self.channel_layer, self.channel_name, session_id)
        except ClientError:
            admission.release(self.channel_name)
            raise
        outputs = self.session.start(
            session_id,
            config,
            model_id=self.model.model_id,
            multilingual=self.model.multilingual,
            resume=resume,
            signer=lambda cp: checkpoints.sign(cp, self._key_id()),
            now=now,
        )
        self._registered = True
        session_id_var.set(session_id)
        NODE.session_started(session_id, self.channel_name, self._key_id())
        self._spawn(live.refresh_forever(self.channel_name, session_id))
        metrics.SESSIONS_CREATED.inc()
        metrics.API_SESSIONS.labels(api=self.api).inc()
        metrics.MODEL_SESSIONS.labels(model=self.model.model_id).inc()
        if self.key:
            metrics.KEY_SESSIONS.labels(key_name=self.key["name"]).inc()
        log.info(
            "session %s (%s, %d Hz, window %d/%d ms, model %s, api %s)",
            "resumed" if resume else "created",
            config.encoding,
            config.sample_rate,
            config.window_duration_ms,
            config.overlap_duration_ms,
            self.model.model_id,
            self.api,
        )
        await self._send_outputs(outputs)

    async def _resolve(self, config: SpeechConfig) -> tuple[str, ResumeState | None]:
        """A new session id, or the resumed session's id and state."""
        if config.resume_checkpoint is None:
            return new_session_id(), None
        return await checkpoints.resolve_resume(
            config.resume_checkpoint, self._key_id(), checkpoints.get_store()
        )

    async def feed_audio(self, data: bytes, now: float) -> None:
        """One frame of audio (rate-checked by the caller)."""
        started = time.perf_counter()
        outputs = self.session.feed_audio(data, now)
        metrics.AUDIO_BYTES_RECEIVED.inc(len(data))
        metrics.AUDIO_CHUNKS_RECEIVED.inc()
        if outputs.refused_ms:
            metrics.AUDIO_REFUSED_MS.inc(outputs.refused_ms)
        await self._send_outputs(outputs)
        metrics.FRAME_HANDLE.observe(time.perf_counter() - started)

    async def flush_session(self, now: float) -> None:
        """Commit everything heard so far; the session goes on (Finalize, commit)."""
        await self._send_outputs(self.session.flush(now))

    async def clear_session(self, now: float) -> None:
        """Drop the audio no window has committed yet; the session goes on."""
        await self._send_outputs(self.session.clear(now))

    async def end_session(self, now: float) -> None:
        """No more audio: flush, then the final events and the close."""
        await self._send_outputs(self.session.end(now))

    # --- channel-layer events ---

    async def asr_accepted(self, message: dict[str, Any]) -> None:
        """A worker started one of our windows."""
        self.session.on_accepted(JobAccepted.from_message(message), time.monotonic())

    async def asr_result(self, message: dict[str, Any]) -> None:
        """A worker finished (or failed) one of our windows."""
        result = JobResult.from_message(message)
        metrics.observe_result(result)
        if not result.ok:
            log.warning("window %d failed on a worker: %s", result.window_index, result.error)
        elif result.priority != "interim":  # an interim pass hears less, faster
            config = self.session.configured.config
            admission.observe(
                result, config.window_duration_ms, config.overlap_duration_ms, self.model.model_id
            )
        outputs = self.session.on_result(result, time.monotonic())
        await self._send_outputs(outputs)
        if outputs.latency_s is not None:
            metrics.WINDOW_LATENCY.labels(model=self.model.model_id).observe(outputs.latency_s)
            # One line per window for benchmarks/latency.py.
            log.debug(
                "window-timing index=%d latency_s=%.4f inference_s=%.4f queue_wait_s=%.4f "
                "audio_s=%.3f",
                result.window_index,
                outputs.latency_s,
                result.inference_s,
                result.queue_wait_s,
                result.audio_s,
            )

    async def answer_early(self, message: dict[str, Any]) -> bool:
        """A live probe is answered as it arrives: the prober waits only
        ``LIVE_PROBE_TIMEOUT_S`` before taking the session over (``live.py``)."""
        if message.get("type") != live.PROBE_TYPE:
            return False
        await self.asr_live_probe(message)
        return True

    async def asr_live_probe(self, message: dict[str, Any]) -> None:
        """Another connection wants to resume a session: answer if this one owns it."""
        try:
            await live.answer_probe(self.channel_layer, message, self.session.session_id)
        except Exception:  # Redis away: the prober takes silence for a dead owner
            metrics.REDIS_ERRORS.labels(operation="live_probe").inc()
            log.warning("could not answer a live probe", exc_info=True)

    # --- outgoing ---

    async def _send_outputs(self, outputs: Outputs) -> None:
        """Store the checkpoint, send the events in order, submit the jobs, close if told."""
        checkpoint = next((e for e in reversed(outputs.events) if isinstance(e, Checkpoint)), None)
        # Store before sending: a client never holds a checkpoint that resume-by-session_id
        # cannot find (a node may die right after the send).
        if checkpoint is not None and self.resumable and self.session.has_progress:
            await self._store_checkpoint(checkpoint)
        metrics.ERRORS.inc(sum(isinstance(e, Error) for e in outputs.events))
        events, abusive, held = self.errors.admit(outputs.events, time.monotonic())
        metrics.ERRORS_SUPPRESSED.inc(held)
        if abusive:
            metrics.CONNECTIONS_CLOSED_POLICY.inc()
            events += self.session.fail(abuse_error()).events
        for event in events:
            if isinstance(event, Close):
                await self.close(code=int(event.code))
                break
            for frame in self.frames(event):
                await self.send(text_data=frame)
        metrics.BACKPRESSURE_EVENTS.inc(sum(isinstance(e, Backpressure) for e in events))
        metrics.VAD_SKIPPED_WINDOWS.inc(outputs.windows_skipped)
        metrics.INFERENCE_RETRIES.inc(outputs.resends)
        for job in outputs.jobs:
            if not await self._send_job(job):
                self.session.inference.on_send_failed(job.window_index, time.monotonic())
        self._count_pending()

    async def _send_error(self, exc: ClientError) -> None:
        log.info("client error %s: %s", exc.code, exc.message)
        if self.session.state is State.ENDED:
            return
        await self._send_outputs(self.session.fail(exc))

    async def _send_job(self, job: TranscribeJob) -> bool:
        """Submit a job; False when the channel layer did not answer (the inference client
        re-sends it on every tick until it does)."""
        message = job.to_message()
        message["enqueued_at"] = time.time()
        metrics.INFERENCE_JOBS_SUBMITTED.inc()
        if job.priority == "interim":
            metrics.INTERIM_PASSES.inc()
        try:
            await self.channel_layer.send(job.channel, message)
        except ChannelFull:
            # The inference client re-sends it when its deadline passes.
            metrics.INFERENCE_JOBS_DROPPED.inc()
            log.warning("inference queue full; window %d will be re-sent", message["window_index"])
        except Exception:
            metrics.REDIS_ERRORS.labels(operation="job_send").inc()
            log.warning("could not submit window %d", message["window_index"], exc_info=True)
            return False
        return True

    async def _store_checkpoint(self, checkpoint: Checkpoint) -> None:
        """Store ``checkpoint``; one the store refused is kept and retried on every tick
        until it (or a newer one) is stored."""
        retrying, self._unsaved = self._unsaved is not None, None
        try:
            await checkpoints.get_store().asave(self.session.session_id, checkpoint.payload)
        except Exception:
            # The client still gets the checkpoint; resume with the full object works.
            self._unsaved = checkpoint
            metrics.REDIS_ERRORS.labels(operation="checkpoint_save").inc()
            if not retrying:
                log.warning("could not store the checkpoint; retrying", exc_info=True)

    # --- timers ---

    async def _ticker(self) -> None:
        """Inference deadlines, the config and idle deadlines, and key revocation."""
        next_key_check = time.monotonic()
        while self.session.state is not State.ENDED:
            await asyncio.sleep(TICK_S)
            workers = None
            if settings.OPENASR.redis_url:
                workers = await heartbeat.worker_view(settings.OPENASR.redis_url)
            now = time.monotonic()
            await self._send_outputs(self.session.tick(now, workers))
            if self._unsaved is not None:
                await self._store_checkpoint(self._unsaved)
            busy = self.session.inference.in_flight is not None or (
                self.session.state is State.ENDING
            )
            expired = self.deadlines.expired(
                now, configured=self.session.state is not State.CONNECTED, busy=busy
            )
            if expired is not None:
                await self._send_error(expired)
            elif now >= next_key_check:
                next_key_check = now + settings.OPENASR.api_key_cache_s
                if not await akey_active(self.key):
                    metrics.SESSIONS_REVOKED.inc()
                    await self._send_error(
                        ClientError(
                            ErrorCode.UNAUTHORIZED,
                            "The API key of this session was revoked or has expired",
                            close_code=CloseCode.KEY_REVOKED,
                        )
                    )

    # --- cleanup ---

    async def _cleanup(self, code: int | None = None) -> None:
        """Release everything the connection holds; safe to run twice, never raises."""
        if self._cleaned:
            return
        self._cleaned = True
        current = asyncio.current_task()
        # Cancelled until they end: a task in a Redis call can shrug off one cancel.
        await cancel_and_wait(t for t in getattr(self, "_tasks", ()) if t is not current)
        admission.release(getattr(self, "channel_name", ""))
        session: Session | None = getattr(self, "session", None)
        if session is not None:
            session.abandon()
        self._count_pending()
        if self._registered:
            self._registered = False
            assert session is not None
            await live.release(self.channel_name, session.session_id)
            NODE.session_ended(session.session_id)
            metrics.SESSIONS_DESTROYED.inc()
            log.info("session closed (code %s)", code)
        if self._counted:
            self._counted = False
            NODE.connection_closed(self._key_id())

    # --- helpers ---

    def _count_pending(self) -> None:
        """Keep ``NODE.inference_pending`` in step with the session's job in flight."""
        session: Session | None = getattr(self, "session", None)
        pending = session is not None and session.inference.in_flight is not None
        if pending and not self._pending:
            NODE.job_submitted()
        elif self._pending and not pending:
            NODE.job_finished()
        self._pending = pending

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task failed", exc_info=task.exception())

    def _key_id(self) -> str | None:
        return self.key["id"] if self.key else None
