"""The inference worker: takes windows off the channel layer, runs whisper.cpp, replies.

Contract (STYLE.md "Make the worker contract explicit"): a job is an ``asr.transcribe`` message
on ``INFERENCE_CHANNEL`` carrying everything the reply needs (reply channel, session id, window
index, attempt). The worker answers ``asr.accepted`` when it starts a job and ``asr.result``
(``ok`` true or false) when it ends; it never dies on a bad job. Delivery is at-most-once, so
the sender owns timeouts and retries (``consumer.py``).

The same ``InferenceConsumer`` runs under ``manage.py runworker asr.inference`` (Redis) and inside
the daphne process on the in-memory layer (no ``REDIS_URL``): one code path.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from channels.consumer import AsyncConsumer
from channels.layers import get_channel_layer
from channels.worker import Worker
from django.conf import settings

from transcription import metrics
from transcription.inference.types import InferenceRequest, Segment, Word

log = logging.getLogger(__name__)

INFERENCE_CHANNEL = "asr.inference"
JOB_TYPE = "asr.transcribe"
ACCEPTED_TYPE = "asr.accepted"
RESULT_TYPE = "asr.result"
SAMPLE_RATE_HZ = 16000

# --- wire encoding of jobs and results (msgpack-friendly: bytes, str, int, float, lists) ---


def encode_samples(samples: np.ndarray) -> bytes:
    """16 kHz float32 → s16le bytes: half the size on Redis, no audible loss."""
    return (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


def decode_samples(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0


def segments_to_wire(segments: list[Segment]) -> list[dict[str, Any]]:
    return [
        {
            "text": s.text,
            "start_ms": s.start_ms,
            "end_ms": s.end_ms,
            "no_speech_prob": s.no_speech_prob,
            "words": [[w.text, w.start_ms, w.end_ms, w.probability] for w in s.words],
        }
        for s in segments
    ]


def segments_from_wire(data: list[dict[str, Any]]) -> list[Segment]:
    return [
        Segment(
            text=s["text"],
            start_ms=int(s["start_ms"]),
            end_ms=int(s["end_ms"]),
            no_speech_prob=float(s.get("no_speech_prob", 0.0)),
            words=tuple(Word(str(t), int(a), int(b), float(p)) for t, a, b, p in s["words"]),
        )
        for s in data
    ]


def max_tokens_for(seconds: float) -> int:
    """Tokens one segment may take: fast speech is ~4 tokens/s; more is a decoding loop."""
    return 32 + int(8 * seconds)


# --- the process's model (loaded once per process) ---

_backend: Any = None
_backend_lock = threading.Lock()
_backend_error: str | None = None
_executor: ThreadPoolExecutor | None = None


def get_backend() -> Any:
    """Load the backend once per process (blocking; call from a thread at start-up)."""
    global _backend, _backend_error, _executor
    with _backend_lock:
        if _backend is None:
            from transcription.inference.backend import load_backend
            from transcription.modelinfo import resolve_serving_model

            cfg = settings.OPENASR
            try:
                model = resolve_serving_model(cfg)
                started = time.monotonic()
                if cfg.backend == "fake":
                    from transcription.inference.fake import FakeBackend

                    _backend = FakeBackend(
                        concurrency=cfg.worker_concurrency,
                        seconds_per_audio_second=cfg.fake_backend_rtf,
                    )
                else:
                    _backend = load_backend(
                        cfg.backend,
                        model.path,
                        concurrency=cfg.worker_concurrency,
                        n_threads=cfg.effective_threads,
                    )
                _executor = ThreadPoolExecutor(
                    max_workers=cfg.worker_concurrency, thread_name_prefix="whisper"
                )
                log.info(
                    "model %s loaded in %.2f s (backend=%s, concurrency=%d, threads=%d)",
                    model.model_id,
                    time.monotonic() - started,
                    cfg.backend,
                    cfg.worker_concurrency,
                    cfg.effective_threads,
                )
                _backend_error = None
            except Exception as exc:
                _backend_error = str(exc)
                log.exception("loading the inference backend failed")
                raise
        return _backend


def backend_status() -> tuple[bool, str | None]:
    """(loaded, last load error) of this process's backend."""
    return _backend is not None, _backend_error


def set_backend_for_tests(backend: Any) -> None:
    """Install a backend (e.g. the fake one) for this process; used by protocol tests."""
    global _backend, _executor
    _backend = backend
    _executor = ThreadPoolExecutor(max_workers=max(1, backend.concurrency))


class InferenceConsumer(AsyncConsumer):
    """Runs ``asr.transcribe`` jobs; at most ``concurrency`` at once (slots held by the worker)."""

    async def asr_transcribe(self, message: dict[str, Any]) -> None:
        """Called for each job taken off the inference channel; runs it in a tracked task."""
        slots: asyncio.Semaphore | None = self.scope.get("openasr.slots")
        task = asyncio.ensure_future(self._run(message, slots))
        self._tasks = getattr(self, "_tasks", set())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, message: dict[str, Any], slots: asyncio.Semaphore | None) -> None:
        reply_channel = message.get("reply_channel")
        base = {
            "session_id": message.get("session_id"),
            "window_index": message.get("window_index"),
            "attempt": message.get("attempt", 0),
        }
        started = time.time()
        try:
            if not isinstance(reply_channel, str):
                raise ValueError("job has no reply_channel")
            queue_wait = max(0.0, started - float(message.get("enqueued_at", started)))
            await self.channel_layer.send(reply_channel, {"type": ACCEPTED_TYPE, **base})
            loop = asyncio.get_running_loop()
            backend = await loop.run_in_executor(None, get_backend)
            samples = decode_samples(message["audio"])
            request = InferenceRequest(
                language=str(message.get("language", "en")),
                prompt=str(message.get("prompt", "")),
                beam_size=int(message.get("beam_size", 1)),
                n_threads=int(message.get("n_threads", 1)),
                audio_ctx=int(message.get("audio_ctx", 0)),
                max_tokens=max_tokens_for(len(samples) / SAMPLE_RATE_HZ),
            )
            t0 = time.monotonic()
            segments = await loop.run_in_executor(_executor, backend.transcribe, samples, request)
            inference_s = time.monotonic() - t0
            audio_s = len(samples) / SAMPLE_RATE_HZ
            # No metrics here: the server records these figures from the reply
            # (metrics.observe_result), where Prometheus scrapes them in both deployments.
            reply = {
                "type": RESULT_TYPE,
                **base,
                "ok": True,
                "segments": segments_to_wire(segments),
                "inference_s": inference_s,
                "queue_wait_s": queue_wait,
                "audio_s": audio_s,
                "worker": WORKER_ID,
            }
        except Exception as exc:  # one bad job never kills the worker
            log.exception("inference job failed (session %s)", base["session_id"])
            reply = {"type": RESULT_TYPE, **base, "ok": False, "error": str(exc)[:500]}
        finally:
            if slots is not None:
                slots.release()
        if not isinstance(reply_channel, str):
            metrics.INFERENCE_JOBS_DROPPED.inc()  # no reply to carry it: only the worker knows
            return
        try:
            await self.channel_layer.send(reply_channel, reply)
        except Exception:
            metrics.INFERENCE_JOBS_DROPPED.inc()
            log.exception("could not deliver a result to %s", reply_channel)


WORKER_ID = f"{os.uname().nodename}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class InferenceWorker(Worker):
    """channels' Worker that takes a job off the layer only when an inference slot is free.

    channels' own listener moves every queued message into an unbounded in-process queue, so
    one worker would hoard the whole backlog and the others would idle; holding a slot before
    ``receive`` leaves waiting jobs on the shared layer for whichever worker is free.
    """

    def __init__(self, application: Any, channels: list[str], channel_layer: Any) -> None:
        super().__init__(application, channels, channel_layer)
        self.concurrency = settings.OPENASR.worker_concurrency
        self.slots: asyncio.Semaphore | None = None

    async def handle(self) -> None:
        self.slots = asyncio.Semaphore(self.concurrency)
        await asyncio.get_running_loop().run_in_executor(None, get_backend)
        if settings.OPENASR.redis_url:
            from transcription.readiness import heartbeat_forever

            info = {"worker_id": WORKER_ID, "concurrency": self.concurrency}
            self._heartbeat = asyncio.ensure_future(heartbeat_forever(info))
        log.info("inference worker %s listening on %s", WORKER_ID, ", ".join(self.channels))
        await super().handle()

    async def listener(self, channel: str) -> None:
        assert self.slots is not None
        while True:
            await self.slots.acquire()
            try:
                message = await self.channel_layer.receive(channel)
            except BaseException:
                self.slots.release()
                raise
            if message.get("type") != JOB_TYPE:
                log.warning("ignoring message of type %r on %s", message.get("type"), channel)
                self.slots.release()
                continue
            scope = {"type": "channel", "channel": channel, "openasr.slots": self.slots}
            queue = self.get_or_create_application_instance(channel, scope)
            await queue.put(message)


_inprocess_task: asyncio.Task[None] | None = None


def ensure_inprocess_worker() -> None:
    """Start the worker inside this (daphne) process when no Redis is configured.

    Called on the event loop at the first request; a no-op with ``REDIS_URL`` set, where
    ``manage.py runworker asr.inference`` processes do the work.
    """
    global _inprocess_task
    if settings.OPENASR.redis_url or (_inprocess_task and not _inprocess_task.done()):
        return
    from openasr_site.asgi import channel_application

    worker = InferenceWorker(channel_application, [INFERENCE_CHANNEL], get_channel_layer())
    _inprocess_task = asyncio.ensure_future(worker.arun())
    _inprocess_task.add_done_callback(_log_worker_exit)


def _log_worker_exit(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("in-process inference worker stopped", exc_info=task.exception())
