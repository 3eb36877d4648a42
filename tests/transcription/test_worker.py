"""Tests for transcription/worker.py, in process: Channels' ``ApplicationCommunicator`` runs the
worker's consumer on the in-memory layer with the FAKE backend (named as such: no model). The
worker answers every job, good or bad, and never dies."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from channels.layers import get_channel_layer
from channels.testing import ApplicationCommunicator
from django_prometheus.testutils import assert_metric_diff, save_registry

from transcription.inference import loader
from transcription.inference.fake import FakeBackend
from transcription.inference.messages import (
    INFERENCE_CHANNEL,
    JobAccepted,
    JobResult,
    TranscribeJob,
)
from transcription.worker import InferenceConsumer

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
