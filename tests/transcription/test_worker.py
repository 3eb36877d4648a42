"""Tests for transcription/worker.py, in process: Channels' ``ApplicationCommunicator`` runs the
worker's consumer on the in-memory layer with the FAKE backend (named as such: no model). The
worker answers every job, good or bad, and never dies."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from channels.layers import get_channel_layer
from channels.testing import ApplicationCommunicator
from django_prometheus.testutils import assert_metric_diff, save_registry

from transcription import worker as worker_module
from transcription.inference import loader
from transcription.inference.fake import FakeBackend
from transcription.inference.messages import (
    BATCH_CHANNEL,
    INFERENCE_CHANNEL,
    INTERIM_CHANNEL,
    INTERIM_TTL_S,
    JobAccepted,
    JobResult,
    TranscribeJob,
)
from transcription.interim import LiveLoad
from transcription.worker import (
    BATCH_SLOTS_SCOPE_KEY,
    LIVE_FIRST_S,
    SLOTS_SCOPE_KEY,
    InferenceConsumer,
    InferenceWorker,
    channel_application,
)

RATE = 16_000
# Channels closes stale database connections around every dispatch.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def fake_backend() -> None:
    loader.set_backend_for_tests(FakeBackend())


def tone(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


async def run_job(message: dict[str, Any]) -> None:
    communicator = ApplicationCommunicator(
        InferenceConsumer.as_asgi(), {"type": "channel", "channel": INFERENCE_CHANNEL}
    )
    await communicator.send_input(message)
    # The consumer runs the job in a task: wait for its replies on the reply channel.
    await communicator.receive_nothing(0.3)
    communicator.stop()


async def test_a_job_is_accepted_then_answered_with_its_figures() -> None:
    """JobAccepted, then a successful JobResult with words and the worker's figures."""
    layer = get_channel_layer()
    reply = await layer.new_channel()
    job = TranscribeJob(reply, "s", 3, tone(2.0), attempt=1)
    before = save_registry()
    await run_job(job.to_message())
    accepted = JobAccepted.from_message(await layer.receive(reply))
    assert (accepted.window_index, accepted.attempt) == (3, 1)
    result = JobResult.from_message(await layer.receive(reply))
    assert result.ok and result.window_index == 3 and result.attempt == 1
    assert result.segments and result.audio_s == 2.0 and result.inference_s >= 0
    # The worker counts nothing itself: the server records the reply (no double count
    # in the in-process deployment).
    assert_metric_diff(before, 0, "openasr_inference_jobs_completed_total")


async def test_a_malformed_job_gets_a_failure_reply_and_the_worker_goes_on() -> None:
    """A job missing its audio: a failed JobResult naming the field; the next job works."""
    layer = get_channel_layer()
    reply = await layer.new_channel()
    bad = TranscribeJob(reply, "s", 0, tone(1.0)).to_message()
    del bad["audio"]
    await run_job(bad)
    failure = JobResult.from_message(await layer.receive(reply))
    assert not failure.ok and "audio" in failure.error
    await run_job(TranscribeJob(reply, "s", 1, tone(1.0)).to_message())
    await layer.receive(reply)  # accepted
    assert JobResult.from_message(await layer.receive(reply)).ok


async def test_a_backend_exception_becomes_a_failure_reply() -> None:
    """The backend raises: the worker replies ok=False instead of dying."""

    class Exploding(FakeBackend):
        def transcribe(self, samples: Any, request: Any) -> Any:
            raise RuntimeError("boom")

    loader.set_backend_for_tests(Exploding())
    layer = get_channel_layer()
    reply = await layer.new_channel()
    await run_job(TranscribeJob(reply, "s", 0, tone(1.0)).to_message())
    await layer.receive(reply)  # accepted
    result = JobResult.from_message(await layer.receive(reply))
    assert not result.ok and result.error == "boom"


async def test_a_job_without_a_reply_channel_is_counted_dropped() -> None:
    """Only the worker can count a job whose failure cannot be replied."""
    before = save_registry()
    await run_job({"type": TranscribeJob.TYPE, "window_index": 0})
    assert_metric_diff(before, 1, "openasr_inference_jobs_dropped_total")


# --- priority: live windows before file chunks ---


def job(index: int, priority: Any = "live", age_s: float = 0.0) -> dict[str, Any]:
    sent = time.time() - age_s
    return TranscribeJob(
        "reply", "s", index, tone(0.1), priority=priority, enqueued_at=sent
    ).to_message()


def bounded_worker(layer: Any, slots: int = 1) -> InferenceWorker:
    worker = InferenceWorker(channel_application, [INFERENCE_CHANNEL], layer)
    worker.slots = asyncio.Semaphore(slots)
    worker.batch_slots = asyncio.Semaphore(max(1, slots - 1))
    return worker


async def test_the_live_listener_serves_the_batch_channel_too() -> None:
    """``runworker asr.inference`` keeps its command line: no second, plain batch listener."""
    layer = get_channel_layer()
    worker = InferenceWorker(channel_application, [INFERENCE_CHANNEL, BATCH_CHANNEL], layer)
    assert worker.channels == [INFERENCE_CHANNEL]


@pytest.mark.parametrize(
    ("channel", "priority"), [(BATCH_CHANNEL, "batch"), (INTERIM_CHANNEL, "interim")]
)
async def test_a_waiting_live_job_is_taken_before_an_older_lower_priority_job(
    channel: str, priority: str
) -> None:
    """A window always goes first: with a batch job or an interim pass queued before it, the
    free slot takes the window; the other job stays on the layer for the next free slot."""
    layer = get_channel_layer()
    worker = bounded_worker(layer)
    await layer.send(channel, job(1, priority))
    await layer.send(INFERENCE_CHANNEL, job(2))
    taken, message = await worker._take(INFERENCE_CHANNEL)
    assert (taken, message["window_index"]) == (INFERENCE_CHANNEL, 2)
    taken, message = await worker._take(INFERENCE_CHANNEL)
    assert (taken, message["window_index"]) == (channel, 1)


async def test_with_two_slots_batch_jobs_leave_one_slot_for_live_windows() -> None:
    """One file window running holds the only batch slot: a second file window stays on the
    layer, and the free slot takes the next live window at once."""
    layer = get_channel_layer()
    worker = bounded_worker(layer, slots=2)
    await layer.send(BATCH_CHANNEL, job(1, "batch"))
    await layer.send(BATCH_CHANNEL, job(2, "batch"))
    channel, message = await worker._take(INFERENCE_CHANNEL)
    assert (channel, message["window_index"]) == (BATCH_CHANNEL, 1)  # its batch slot is held
    second = asyncio.ensure_future(worker._take(INFERENCE_CHANNEL))
    await asyncio.sleep(LIVE_FIRST_S * 5)
    assert not second.done()
    await layer.send(INFERENCE_CHANNEL, job(3))
    channel, message = await asyncio.wait_for(second, 2)
    assert (channel, message["window_index"]) == (INFERENCE_CHANNEL, 3)
    assert (await asyncio.wait_for(layer.receive(BATCH_CHANNEL), 1))["window_index"] == 2


async def test_the_consumer_gives_back_the_batch_slot_with_the_slot() -> None:
    """A batch job's slots (its slot and its batch slot) are both free again when it ends."""
    layer = get_channel_layer()
    reply = await layer.new_channel()
    slots, batch_slots = asyncio.Semaphore(0), asyncio.Semaphore(0)
    scope = {
        "type": "channel",
        "channel": BATCH_CHANNEL,
        SLOTS_SCOPE_KEY: slots,
        BATCH_SLOTS_SCOPE_KEY: batch_slots,
    }
    communicator = ApplicationCommunicator(InferenceConsumer.as_asgi(), scope)
    await communicator.send_input(
        TranscribeJob(reply, "s", 0, tone(0.5), priority="batch").to_message()
    )
    await layer.receive(reply)  # accepted
    assert JobResult.from_message(await layer.receive(reply)).ok
    assert not slots.locked() and not batch_slots.locked()
    communicator.stop()


async def test_a_batch_job_is_taken_when_no_live_job_waits() -> None:
    """An idle slot takes a file chunk after LIVE_FIRST_S, and one arriving later at once."""
    layer = get_channel_layer()
    worker = bounded_worker(layer)
    take = asyncio.ensure_future(worker._take(INFERENCE_CHANNEL))
    await asyncio.sleep(LIVE_FIRST_S * 3)
    await layer.send(BATCH_CHANNEL, job(7, "batch"))
    channel, message = await asyncio.wait_for(take, 2)
    assert (channel, message["window_index"]) == (BATCH_CHANNEL, 7)
    await layer.send(INFERENCE_CHANNEL, job(8))  # the cancelled live receive lost nothing
    assert (await layer.receive(INFERENCE_CHANNEL))["window_index"] == 8


class TieLayer:
    """A layer on which a live and a batch job arrive in the same loop iteration."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.sent: list[tuple[str, dict[str, Any]]] = []

    async def receive(self, channel: str) -> dict[str, Any]:
        await self.gate.wait()
        return job(0, "live" if channel == INFERENCE_CHANNEL else "batch")

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        self.sent.append((channel, message))


async def test_in_a_tie_the_live_job_runs_and_the_batch_job_goes_back() -> None:
    """Both receives returned at once: one slot, so the batch job is requeued, not held."""
    layer = TieLayer()
    worker = bounded_worker(layer)
    take = asyncio.ensure_future(worker._take(INFERENCE_CHANNEL))
    await asyncio.sleep(LIVE_FIRST_S * 3)  # both receives are waiting now
    layer.gate.set()
    channel, message = await asyncio.wait_for(take, 2)
    assert (channel, message["priority"]) == (INFERENCE_CHANNEL, "live")
    assert [(c, m["priority"]) for c, m in layer.sent] == [(BATCH_CHANNEL, "batch")]


async def test_a_busy_worker_takes_no_job_off_the_layer() -> None:
    """No hoarding: while its only slot is busy, queued jobs (live or batch) stay on the layer
    for another worker."""
    layer = get_channel_layer()
    worker = bounded_worker(layer)
    assert worker.slots is not None
    await worker.slots.acquire()  # a job is running
    listener = asyncio.ensure_future(worker.listener(INFERENCE_CHANNEL))
    try:
        await layer.send(INFERENCE_CHANNEL, job(1))
        await layer.send(BATCH_CHANNEL, job(2, "batch"))
        await asyncio.sleep(LIVE_FIRST_S * 5)
        assert (await asyncio.wait_for(layer.receive(INFERENCE_CHANNEL), 1))["window_index"] == 1
        assert (await asyncio.wait_for(layer.receive(BATCH_CHANNEL), 1))["window_index"] == 2
    finally:
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)


# --- interim passes: only in idle slots, never queued ---


async def test_the_live_listener_serves_the_interim_channel_too() -> None:
    """No plain listener on the interim channel: its jobs would run regardless of live ones."""
    layer = get_channel_layer()
    worker = InferenceWorker(channel_application, [INFERENCE_CHANNEL, INTERIM_CHANNEL], layer)
    assert worker.channels == [INFERENCE_CHANNEL]


async def test_an_idle_slot_takes_an_interim_job_arriving_later() -> None:
    """An idle worker takes an interim pass as it comes, and loses no live job doing so."""
    layer = get_channel_layer()
    worker = bounded_worker(layer)
    take = asyncio.ensure_future(worker._take(INFERENCE_CHANNEL))
    await asyncio.sleep(LIVE_FIRST_S * 3)
    await layer.send(INTERIM_CHANNEL, job(5, "interim"))
    channel, message = await asyncio.wait_for(take, 2)
    assert (channel, message["window_index"]) == (INTERIM_CHANNEL, 5)
    await layer.send(INFERENCE_CHANNEL, job(6))
    assert (await layer.receive(INFERENCE_CHANNEL))["window_index"] == 6


async def test_a_worker_busy_with_windows_takes_no_interim_job(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Windows kept the slot busy most of the last seconds: an idle slot leaves interim jobs
    on the layer (they expire there) and still takes the next window at once."""
    load = LiveLoad()
    load.start(time.monotonic() - 8)  # a window running for 8 of the last 10 s
    monkeypatch.setattr(worker_module, "LIVE_LOAD", load)
    layer = get_channel_layer()
    worker = bounded_worker(layer)
    await layer.send(INTERIM_CHANNEL, job(1, "interim"))
    take = asyncio.ensure_future(worker._take(INFERENCE_CHANNEL))
    await asyncio.sleep(LIVE_FIRST_S * 5)
    assert not take.done()
    await layer.send(INFERENCE_CHANNEL, job(2))
    channel, message = await asyncio.wait_for(take, 2)
    assert (channel, message["window_index"]) == (INFERENCE_CHANNEL, 2)
    assert (await asyncio.wait_for(layer.receive(INTERIM_CHANNEL), 1))["window_index"] == 1


async def test_an_interim_job_that_waited_past_its_ttl_is_dropped_unheard() -> None:
    """No reply, counted, and the slot takes the next job: its sender has sent a fresher one
    by now."""
    layer = get_channel_layer()
    reply = await layer.new_channel()
    worker = bounded_worker(layer)
    stale = TranscribeJob(
        reply, "s", 3, tone(0.1), priority="interim", enqueued_at=time.time() - INTERIM_TTL_S - 1
    )
    before = save_registry()
    listener = asyncio.ensure_future(worker.listener(INFERENCE_CHANNEL))
    try:
        await layer.send(INTERIM_CHANNEL, stale.to_message())
        await asyncio.sleep(LIVE_FIRST_S * 10)
        assert_metric_diff(before, 1, "openasr_interim_jobs_expired_total")
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(layer.receive(reply), 0.2)
    finally:
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)


async def test_in_a_tie_the_live_job_runs_and_the_interim_job_is_dropped() -> None:
    """Live, batch and interim jobs returned at once: the window runs, the file chunk goes
    back, the interim pass is dropped (never queued again)."""
    layer = TieLayer()
    worker = bounded_worker(layer)
    before = save_registry()
    take = asyncio.ensure_future(worker._take(INFERENCE_CHANNEL))
    await asyncio.sleep(LIVE_FIRST_S * 3)
    layer.gate.set()
    channel, message = await asyncio.wait_for(take, 2)
    assert (channel, message["priority"]) == (INFERENCE_CHANNEL, "live")
    assert [c for c, _ in layer.sent] == [BATCH_CHANNEL]
    assert_metric_diff(before, 1, "openasr_interim_jobs_expired_total")


class StubbornLayer:
    """The in-memory layer as channels_redis behaves on Python 3.11: a receive can survive its
    first ``cancel()`` (redis-py's command send drops it in ``asyncio.wait_for``) and goes on
    waiting for a message, as its BZPOPMIN loop does."""

    def __init__(self, layer: Any) -> None:
        self.layer = layer
        self.survived: list[str] = []

    async def receive(self, channel: str) -> dict[str, Any]:
        try:
            return await self.layer.receive(channel)
        except asyncio.CancelledError:
            self.survived.append(channel)
        return await self.layer.receive(channel)

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        await self.layer.send(channel, message)


async def test_a_receive_that_survives_its_cancel_never_holds_the_slot() -> None:
    """The live job comes while the interim and batch receives wait, and they shrug off the
    cancel: the job is taken all the same, and the next jobs of their channels stay on the
    layer (the receives are cancelled again until they end, never left behind)."""
    layer = get_channel_layer()
    stubborn = StubbornLayer(layer)
    worker = bounded_worker(stubborn)
    take = asyncio.ensure_future(worker._take(INFERENCE_CHANNEL))
    await asyncio.sleep(LIVE_FIRST_S * 3)  # the interim and batch receives are waiting now
    await layer.send(INFERENCE_CHANNEL, job(1))
    channel, message = await asyncio.wait_for(take, 2)
    assert (channel, message["window_index"]) == (INFERENCE_CHANNEL, 1)
    assert sorted(stubborn.survived) == sorted([INTERIM_CHANNEL, BATCH_CHANNEL])
    await layer.send(INTERIM_CHANNEL, job(2, "interim"))
    await layer.send(BATCH_CHANNEL, job(3, "batch"))
    assert (await asyncio.wait_for(layer.receive(INTERIM_CHANNEL), 1))["window_index"] == 2
    assert (await asyncio.wait_for(layer.receive(BATCH_CHANNEL), 1))["window_index"] == 3


class DownLayer:
    """The in-memory layer behind a Redis that refuses ``failures`` receives first."""

    def __init__(self, layer: Any, failures: int) -> None:
        self.layer = layer
        self.failures = failures

    async def receive(self, channel: str) -> dict[str, Any]:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
        return await self.layer.receive(channel)

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        await self.layer.send(channel, message)


async def test_a_redis_outage_never_ends_the_listener(monkeypatch: pytest.MonkeyPatch) -> None:
    """Receives that fail (Redis away) are retried with a backoff, the slot given back each
    time; once Redis answers the queued job is taken."""
    monkeypatch.setattr(worker_module, "backoff_s", lambda failures: 0.01)
    layer = get_channel_layer()
    down = DownLayer(layer, failures=5)
    worker = bounded_worker(down)
    taken: list[dict[str, Any]] = []

    async def put(message: dict[str, Any]) -> None:
        taken.append(message)

    monkeypatch.setattr(
        worker, "get_or_create_application_instance", lambda *_: SimpleNamespace(put=put)
    )
    await layer.send(INFERENCE_CHANNEL, job(1))
    listener = asyncio.ensure_future(worker.listener(INFERENCE_CHANNEL))
    try:
        await asyncio.wait_for(_until(lambda: bool(taken)), 5)
    finally:
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)
    assert down.failures == 0 and taken[0]["window_index"] == 1


async def _until(predicate: Any) -> None:
    while not predicate():
        await asyncio.sleep(0.01)
