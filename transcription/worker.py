"""The inference worker: takes windows off the channel layer, runs whisper.cpp, replies.

The contract is ``inference/messages.py``: a ``TranscribeJob`` on ``INFERENCE_CHANNEL``; the
worker answers ``JobAccepted`` when it starts a job and ``JobResult`` when it ends. It never dies
on a bad job: every exception becomes a failed ``JobResult``. Delivery is at-most-once, so the
sender owns timeouts and retries (``inference/client.py``).

The same ``InferenceConsumer`` runs under ``manage.py runworker asr.inference`` (Redis) and inside
the daphne process on the in-memory layer (no ``REDIS_URL``): one code path.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from typing import Any

from channels.consumer import AsyncConsumer
from channels.layers import get_channel_layer
from channels.routing import ChannelNameRouter
from channels.worker import Worker
from django.conf import settings

from transcription import metrics
from transcription.inference import loader
from transcription.inference.heartbeat import heartbeat_forever
from transcription.inference.messages import (
    INFERENCE_CHANNEL,
    JobAccepted,
    JobResult,
    MessageError,
    TranscribeJob,
)

log = logging.getLogger(__name__)

WORKER_ID = f"{os.uname().nodename}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
SLOTS_SCOPE_KEY = "openasr.slots"


class InferenceConsumer(AsyncConsumer):
    """Runs ``asr.transcribe`` jobs; at most ``concurrency`` at once (slots held by the worker)."""

    async def asr_transcribe(self, message: dict[str, Any]) -> None:
        """Called for each job taken off the inference channel; runs it in a tracked task so
        the next job can start while this one computes."""
        slots: asyncio.Semaphore | None = self.scope.get(SLOTS_SCOPE_KEY)
        tasks: set[asyncio.Task[None]] = self.__dict__.setdefault("_tasks", set())
        task = asyncio.ensure_future(self._run(message, slots))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def _run(self, message: dict[str, Any], slots: asyncio.Semaphore | None) -> None:
        started = time.time()
        reply_channel = message.get("reply_channel")
        try:
            job = TranscribeJob.from_message(message)
            await self.channel_layer.send(
                job.reply_channel,
                JobAccepted(job.session_id, job.window_index, job.attempt).to_message(),
            )
            result = await self._transcribe(job, started)
        except Exception as exc:  # one bad job never kills the worker
            if not isinstance(exc, MessageError):
                log.exception("inference job failed (session %s)", message.get("session_id"))
            else:
                log.warning("refusing a malformed job: %s", exc)
            result = JobResult.failure(message, str(exc), WORKER_ID)
        finally:
            if slots is not None:
                slots.release()
        if not isinstance(reply_channel, str):
            metrics.INFERENCE_JOBS_DROPPED.inc()  # no reply to carry it: only the worker knows
            return
        try:
            await self.channel_layer.send(reply_channel, result.to_message())
        except Exception:
            metrics.INFERENCE_JOBS_DROPPED.inc()
            log.exception("could not deliver a result to %s", reply_channel)

    @staticmethod
    async def _transcribe(job: TranscribeJob, started: float) -> JobResult:
        loop = asyncio.get_running_loop()
        backend = await loop.run_in_executor(None, loader.get_backend)
        t0 = time.monotonic()
        segments = await loop.run_in_executor(
            loader.executor(), backend.transcribe, job.samples, job.request()
        )
        # No metrics here: the server records these figures from the reply
        # (metrics.observe_result), where Prometheus scrapes them in both deployments.
        return JobResult(
            session_id=job.session_id,
            window_index=job.window_index,
            attempt=job.attempt,
            ok=True,
            segments=tuple(segments),
            inference_s=time.monotonic() - t0,
            queue_wait_s=max(0.0, started - job.enqueued_at),
            audio_s=job.audio_s,
            worker=WORKER_ID,
        )


channel_application = ChannelNameRouter({INFERENCE_CHANNEL: InferenceConsumer.as_asgi()})


class InferenceWorker(Worker):
    """channels' Worker that takes a job off the layer only when an inference slot is free.

    channels' own listener moves every queued message into an unbounded in-process queue, so
    one worker would hoard the whole backlog and the others would idle; holding a slot before
    ``receive`` leaves waiting jobs on the shared layer for whichever worker is free.
    """

    def __init__(self, application: Any, channels: list[str], channel_layer: Any) -> None:
        super().__init__(application, channels, channel_layer)
        self.concurrency: int = settings.OPENASR.worker_concurrency
        self.slots: asyncio.Semaphore | None = None
        self._heartbeat: asyncio.Task[None] | None = None

    async def handle(self) -> None:
        self.slots = asyncio.Semaphore(self.concurrency)
        await asyncio.get_running_loop().run_in_executor(None, loader.get_backend)
        redis_url = settings.OPENASR.redis_url
        if redis_url:
            info = {"worker_id": WORKER_ID, "concurrency": self.concurrency}
            self._heartbeat = asyncio.ensure_future(heartbeat_forever(redis_url, info))
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
            if message.get("type") != TranscribeJob.TYPE:
                log.warning("ignoring message of type %r on %s", message.get("type"), channel)
                self.slots.release()
                continue
            scope = {"type": "channel", "channel": channel, SLOTS_SCOPE_KEY: self.slots}
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
    worker = InferenceWorker(channel_application, [INFERENCE_CHANNEL], get_channel_layer())
    _inprocess_task = asyncio.ensure_future(worker.arun())
    _inprocess_task.add_done_callback(_log_worker_exit)


def _log_worker_exit(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("in-process inference worker stopped", exc_info=task.exception())
