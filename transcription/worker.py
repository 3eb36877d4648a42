"""The inference worker: takes windows off the channel layer, runs whisper.cpp, replies.

The contract is ``inference/messages.py``: a ``TranscribeJob`` on its model's live channel
(windows) or batch channel (file chunks); the worker answers ``JobAccepted`` when it starts a
job and ``JobResult`` when it ends. It never dies on a bad job: every exception becomes a failed
``JobResult``. Delivery is at-most-once, so the sender owns timeouts and retries
(``inference/client.py``).

Live sessions keep priority: a worker with a free slot takes a batch job only when no live job
waits (``InferenceWorker._take``), so a file never queues ahead of a live window; and batch jobs
hold at most all slots but one, so with ``WSS_WORKER_CONCURRENCY`` >= 2 a live window never
waits for a file's window (with one slot it waits at most for the one running). Interim passes
(``speech.hypothesis`` only) are taken the same way, by a slot that found no live job waiting,
only while windows kept the slots busy less than half of the last ten seconds
(``interim.LiveLoad``), and one that waited past ``INTERIM_TTL_S`` is dropped unheard: interim
text only fills idle capacity, so the windows the node admitted sessions for never wait behind
a queue of them, and a loaded node runs windows only.

Each served model is a pool (``modelinfo.py``): a worker serves one model, on that model's
channels. The same ``InferenceWorker`` runs under ``manage.py runworker asr.inference`` (Redis;
it serves the model its settings name, and its live listener serves the batch channel too, so
the command line is unchanged) and inside the daphne process on the in-memory layer (no
``REDIS_URL``: one worker per served model): one code path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import uuid
from typing import Any, Literal

from channels.consumer import AsyncConsumer
from channels.layers import get_channel_layer
from channels.worker import Worker
from django.conf import settings

from transcription import metrics
from transcription.inference import heartbeat, loader
from transcription.inference.base import run_window
from transcription.inference.messages import (
    INFERENCE_CHANNEL,
    INTERIM_TTL_S,
    JobAccepted,
    JobResult,
    MessageError,
    TranscribeJob,
    inference_channel,
)
from transcription.interim import INTERIM_MAX_LIVE_SHARE, LiveLoad
from transcription.layer import OutageTolerantReceive, backoff_s, cancel_and_wait, send_soon
from transcription.modelinfo import resolve_serving_model, served_models

log = logging.getLogger(__name__)

WORKER_ID = f"{os.uname().nodename}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
SLOTS_SCOPE_KEY = "openasr.slots"
BATCH_SLOTS_SCOPE_KEY = "openasr.batch_slots"
MODEL_SCOPE_KEY = "openasr.model_id"  # the model of the worker that took the job
# With a slot free, a live job is waited for this long alone before a batch job may be taken:
# a live job already queued arrives within one layer round trip (~1 ms on Redis), so it always
# wins; an idle worker starts a batch job this much later, nothing next to a window's inference.
LIVE_FIRST_S = 0.02
# A result that cannot be sent (Redis away) is retried this long: past it, the sender has
# re-sent the window anyway (inference/client.py).
RESULT_SEND_PATIENCE_S = 30.0

_running = 0  # jobs this process is running now (its heartbeat reports them)
# How busy live and batch jobs kept this process's slots: its workers share the CPU.
LIVE_LOAD = LiveLoad()
# An idle worker that was too busy for interim jobs looks again this often.
LOAD_RECHECK_S = 1.0


class InferenceConsumer(OutageTolerantReceive, AsyncConsumer):
    """Runs ``asr.transcribe`` jobs; at most ``concurrency`` at once (slots held by the worker)."""

    async def asr_transcribe(self, message: dict[str, Any]) -> None:
        """Called for each job taken off the inference channel; runs it in a tracked task so
        the next job can start while this one computes."""
        held = [self.scope.get(SLOTS_SCOPE_KEY), self.scope.get(BATCH_SLOTS_SCOPE_KEY)]
        slots = [s for s in held if s is not None]
        tasks: set[asyncio.Task[None]] = self.__dict__.setdefault("_tasks", set())
        task = asyncio.ensure_future(self._run(message, slots))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def _run(self, message: dict[str, Any], slots: list[asyncio.Semaphore]) -> None:
        global _running
        started = time.time()
        reply_channel = message.get("reply_channel")
        _running += 1
        # Interim passes do not count: they only ever fill what the windows leave idle.
        metered = message.get("priority") != "interim"
        token = LIVE_LOAD.start(time.monotonic()) if metered else 0
        try:
            job = TranscribeJob.from_message(message)
            accepted = JobAccepted(job.session_id, job.window_index, job.attempt, WORKER_ID)
            await send_soon(self.channel_layer, job.reply_channel, accepted.to_message(), 0)
            result = await self._transcribe(job, started)
        except Exception as exc:  # one bad job never kills the worker
            if not isinstance(exc, MessageError):
                log.exception("inference job failed (session %s)", message.get("session_id"))
            else:
                log.warning("refusing a malformed job: %s", exc)
            result = JobResult.failure(message, str(exc), WORKER_ID)
        finally:
            _running -= 1
            if metered:
                LIVE_LOAD.stop(token, time.monotonic())
            for slot in slots:
                slot.release()
        if not isinstance(reply_channel, str):
            metrics.INFERENCE_JOBS_DROPPED.inc()  # no reply to carry it: only the worker knows
            return
        if not await send_soon(
            self.channel_layer, reply_channel, result.to_message(), RESULT_SEND_PATIENCE_S
        ):
            metrics.INFERENCE_JOBS_DROPPED.inc()

    async def _transcribe(self, job: TranscribeJob, started: float) -> JobResult:
        loop = asyncio.get_running_loop()
        model_id = self.scope.get(MODEL_SCOPE_KEY, "")
        backend = await loop.run_in_executor(None, loader.get_backend, model_id)
        t0 = time.monotonic()
        segments, detection = await loop.run_in_executor(
            loader.executor(model_id), run_window, backend, job.samples, job.request()
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
            model_id=model_id,
            language=detection.code if detection else "",
            language_probability=detection.probability if detection else 0.0,
            priority=job.priority,
        )


# Every channel a worker listens on is an inference channel (one pair per served model).
channel_application = InferenceConsumer.as_asgi()


class InferenceWorker(Worker):
    """channels' Worker that takes a job off the layer only when an inference slot is free.

    channels' own listener moves every queued message into an unbounded in-process queue, so
    one worker would hoard the whole backlog and the others would idle; holding a slot before
    ``receive`` leaves waiting jobs on the shared layer for whichever worker is free. It serves
    the pool of ``model_id`` ("" for the unnamed pool of tests): ``asr.inference`` on the command
    line means that pool's live channel, whose listener also serves its batch channel, at a
    lower priority.
    """

    def __init__(
        self, application: Any, channels: list[str], channel_layer: Any, model_id: str = ""
    ) -> None:
        self.model_id = model_id
        self.live_channel = inference_channel("live", model_id)
        self.batch_channel = inference_channel("batch", model_id)
        self.interim_channel = inference_channel("interim", model_id)
        channels = [self.live_channel if c == INFERENCE_CHANNEL else c for c in channels]
        # The live listener serves the batch and interim channels: a second, plain listener
        # on one of them would take its jobs regardless of the live queue.
        if self.live_channel in channels:
            lower = (self.batch_channel, self.interim_channel)
            channels = [c for c in channels if c not in lower]
        super().__init__(application, channels, channel_layer)
        self.concurrency: int = settings.OPENASR.worker_concurrency
        self.slots: asyncio.Semaphore | None = None
        # Batch jobs may hold all slots but one (with one slot, that one): with several
        # slots, a live window never waits for a file's window to finish.
        self.batch_slots: asyncio.Semaphore | None = None
        self._heartbeat: asyncio.Task[None] | None = None

    async def handle(self) -> None:
        self.slots = asyncio.Semaphore(self.concurrency)
        self.batch_slots = asyncio.Semaphore(max(1, self.concurrency - 1))
        await asyncio.get_running_loop().run_in_executor(None, loader.get_backend, self.model_id)
        redis_url = settings.OPENASR.redis_url
        served = [*self.channels]
        if self.live_channel in served:
            served += [self.batch_channel, self.interim_channel]
        if redis_url:
            # One beat before listening: a job this worker accepts comes from a worker the
            # senders can already see (inference/client.py judges a worker by its heartbeat).
            with contextlib.suppress(Exception):
                await heartbeat.beat(redis_url, self._heartbeat_info(served))
            self._heartbeat = asyncio.ensure_future(
                heartbeat.heartbeat_forever(redis_url, lambda: self._heartbeat_info(served))
            )
        if self.live_channel in served:
            served[-2:] = [f"{c} (when no live job waits)" for c in served[-2:]]
        log.info("inference worker %s listening on %s", WORKER_ID, ", ".join(served))
        await super().handle()

    def _heartbeat_info(self, channels: list[str]) -> heartbeat.Heartbeat:
        return {
            "worker_id": WORKER_ID,
            "concurrency": self.concurrency,
            "running": _running,
            "channels": channels,
            "model": self.model_id,  # the pool it serves (admission, /ready)
        }

    async def listener(self, channel: str) -> None:
        """One loop per channel: hold a free slot, then take one job (``_take``) and start it;
        the consumer releases the slot when the job ends. A channel-layer error (Redis away)
        never ends the loop: it waits and takes again, so the worker reconnects by itself."""
        assert self.slots is not None
        failures = 0
        while True:
            await self.slots.acquire()
            try:
                taken_from, message = await self._take(channel)
            except Exception:
                self.slots.release()
                failures += 1
                metrics.REDIS_ERRORS.labels(operation="worker_receive").inc()
                if failures == 1:
                    log.warning("cannot take jobs from %s; retrying", channel, exc_info=True)
                await asyncio.sleep(backoff_s(failures))
                continue
            except BaseException:
                self.slots.release()
                raise
            if failures:
                log.info("taking jobs from %s again after %d failures", channel, failures)
                failures = 0
            held: dict[str, Any] = {SLOTS_SCOPE_KEY: self.slots}
            if taken_from == self.batch_channel and channel == self.live_channel:
                held[BATCH_SLOTS_SCOPE_KEY] = self.batch_slots  # acquired by _take
            kind = message.get("type")
            if kind != TranscribeJob.TYPE or _expired(message):
                if kind != TranscribeJob.TYPE:
                    log.warning("ignoring message of type %r on %s", kind, taken_from)
                else:
                    metrics.INTERIM_JOBS_EXPIRED.inc()
                for slot in held.values():
                    slot.release()
                continue
            scope = {
                "type": "channel",
                "channel": taken_from,
                MODEL_SCOPE_KEY: self.model_id,
                **held,
            }
            queue = self.get_or_create_application_instance(taken_from, scope)
            await queue.put(message)

    async def _take(self, channel: str) -> tuple[str, dict[str, Any]]:
        """Called with a slot held: the next job of ``channel``. For the live channel, a batch
        or interim job is taken only when no live job came within ``LIVE_FIRST_S`` (a batch job
        also needs a free batch slot, held on return: the consumer releases it; an interim job
        needs idle capacity, ``_interim_welcome``, looked at again every ``LOAD_RECHECK_S``);
        then the channels are waited on together, and the first job to come is taken. At most
        one job is ever held: the receives that lost are cancelled until they have ended
        (``cancel_and_wait``: on Python 3.11 a receive can survive one cancel and would hold
        this slot until a job came on its channel; both layers keep a cancelled receive's
        message queued: ``asyncio.Queue.get`` in memory, the backup queue of channels_redis),
        and in the rare tie where several returned, the live job wins, a batch job is sent
        back to its channel and an interim job is dropped (its sender sends a fresher one
        after ``INTERIM_TTL_S``)."""
        layer = self.channel_layer
        if channel != self.live_channel:
            return channel, await layer.receive(channel)
        assert self.batch_slots is not None
        live = asyncio.ensure_future(layer.receive(self.live_channel))
        interim: asyncio.Future[dict[str, Any]] | None = None
        batch: asyncio.Future[dict[str, Any]] | None = None
        batch_slot: asyncio.Task[Literal[True]] | None = None
        try:
            done, _ = await asyncio.wait({live}, timeout=LIVE_FIRST_S)
            if not done:
                batch_slot = asyncio.ensure_future(self.batch_slots.acquire())
                jobs: set[asyncio.Future[Any]] = {live}
                while not done:
                    if interim is None and self._interim_welcome():
                        interim = asyncio.ensure_future(layer.receive(self.interim_channel))
                        jobs.add(interim)
                    done, _ = await asyncio.wait(
                        {*jobs, batch_slot},
                        timeout=None if interim else LOAD_RECHECK_S,
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                if batch_slot.done() and not any(j.done() for j in jobs):
                    batch = asyncio.ensure_future(layer.receive(self.batch_channel))
                    await asyncio.wait({*jobs, batch}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            tasks = {"live": live, "interim": interim, "batch": batch, "slot": batch_slot}
            started = {name: t for name, t in tasks.items() if t is not None}
            await cancel_and_wait(started.values())
        outcome = {name: _outcome(task) for name, task in started.items()}
        results = list(outcome.values())
        errors = [
            o
            for o in results
            if isinstance(o, BaseException) and not isinstance(o, asyncio.CancelledError)
        ]
        live_job, interim_job, batch_job = (
            o if isinstance(o := outcome.get(name), dict) else None
            for name in ("live", "interim", "batch")
        )
        slot_held = outcome.get("slot") is True
        if slot_held and (live_job is not None or batch_job is None or errors):
            self.batch_slots.release()
        if interim_job is not None and (live_job or batch_job or errors):
            metrics.INTERIM_JOBS_EXPIRED.inc()  # lost a tie: dropped, never queued again
        if batch_job is not None and (live_job is not None or errors):
            await self._requeue(batch_job)
        if errors and live_job is None:
            raise errors[0]
        if live_job is not None:
            return self.live_channel, live_job
        if batch_job is not None:
            return self.batch_channel, batch_job
        assert interim_job is not None
        return self.interim_channel, interim_job

    def _interim_welcome(self) -> bool:
        """Interim jobs are taken only with idle capacity: windows kept this process's slots
        busy less than ``INTERIM_MAX_LIVE_SHARE`` of the last seconds (``interim.LiveLoad``)."""
        share = LIVE_LOAD.share(time.monotonic(), self.concurrency)
        return share < INTERIM_MAX_LIVE_SHARE

    async def _requeue(self, message: dict[str, Any]) -> None:
        """Give back a batch job taken in a tie with a live one (its sender re-sends it after
        its deadline should this fail)."""
        try:
            await self.channel_layer.send(self.batch_channel, message)
        except Exception:
            metrics.INFERENCE_JOBS_DROPPED.inc()
            log.warning("could not requeue a batch job", exc_info=True)


def _outcome(task: asyncio.Future[Any]) -> Any:
    """What an ended task gave: its result, or the exception it ended with."""
    if task.cancelled():
        return asyncio.CancelledError()
    return task.exception() or task.result()


def _expired(message: dict[str, Any]) -> bool:
    """An interim job that waited too long to be worth hearing (``INTERIM_TTL_S``)."""
    enqueued_at = message.get("enqueued_at")
    return (
        message.get("priority") == "interim"
        and isinstance(enqueued_at, int | float)
        and time.time() - enqueued_at > INTERIM_TTL_S
    )


_inprocess_tasks: dict[str, asyncio.Task[None]] = {}  # model id → its pool's worker


def ensure_inprocess_worker() -> None:
    """Start the workers inside this (daphne) process when no Redis is configured: one per
    served model (``modelinfo.served_models``), each loading its model; a worker that stopped
    is started again.

    Called on the event loop at the first request; a no-op with ``REDIS_URL`` set, where
    ``manage.py runworker asr.inference`` processes do the work.
    """
    cfg = settings.OPENASR
    if cfg.redis_url:
        return
    layer = get_channel_layer()
    for model in served_models(cfg):
        running = _inprocess_tasks.get(model.model_id)
        if running is not None and not running.done():
            continue
        worker = InferenceWorker(channel_application, [INFERENCE_CHANNEL], layer, model.model_id)
        task = asyncio.ensure_future(worker.arun())
        task.add_done_callback(_log_worker_exit)
        _inprocess_tasks[model.model_id] = task


def worker_model_id() -> str:
    """The model a ``runworker`` process serves: the one its settings name."""
    return resolve_serving_model(settings.OPENASR).model_id


def _log_worker_exit(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("in-process inference worker stopped", exc_info=task.exception())
