"""Tests for transcription/inference/client.py: the sender's deadlines and retries, sans-IO."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from transcription.inference.client import (
    ACCEPT_S,
    RESULT_FACTOR,
    RESULT_FLOOR_S,
    Delivered,
    GiveUp,
    InferenceClient,
    InferenceTimes,
    Resend,
    WorkerView,
)
from transcription.inference.messages import (
    BATCH_CHANNEL,
    INFERENCE_CHANNEL,
    JobAccepted,
    JobResult,
    TranscribeJob,
)


def job(index: int = 7) -> TranscribeJob:
    return TranscribeJob("reply", "s", index, np.zeros(160, dtype=np.float32))


def result(index: int = 7, attempt: int = 0, *, ok: bool = True) -> JobResult:
    return JobResult("s", index, attempt, ok=ok, error="" if ok else "boom")


def test_a_result_for_the_job_in_flight_is_delivered_with_the_job() -> None:
    """The matching result clears the job in flight and comes back with the job."""
    client = InferenceClient(timeout_s=5, retries=2)
    sent = client.send(job(), now=0)
    outcome = client.on_result(result(), now=1)
    assert outcome == Delivered(result(), sent, 1.0)
    assert client.in_flight is None


def test_a_result_for_another_window_is_ignored() -> None:
    """A stale or duplicate result (another window index) changes nothing."""
    client = InferenceClient(timeout_s=5, retries=2)
    client.send(job(7), now=0)
    assert client.on_result(result(6), now=1) is None
    assert client.in_flight is not None


def test_the_deadline_resends_with_the_same_index_then_gives_up() -> None:
    """Each late result re-sends the window (attempt + 1); after the retries, GiveUp."""
    client = InferenceClient(timeout_s=5, retries=2)
    client.send(job(), now=0)
    assert client.tick(4.9) is None
    first = client.tick(5.0)
    assert isinstance(first, Resend) and (first.job.window_index, first.job.attempt) == (7, 1)
    second = client.tick(10.0)
    assert isinstance(second, Resend) and second.job.attempt == 2
    assert client.tick(15.0) == GiveUp(7, 3, "no result within 5 s")
    assert client.in_flight is None


def test_a_late_answer_to_an_earlier_attempt_is_still_the_answer() -> None:
    """After a re-send, the first attempt's result arrives: it is delivered (same window)."""
    client = InferenceClient(timeout_s=5, retries=2)
    client.send(job(), now=0)
    client.tick(5)
    assert isinstance(client.on_result(result(attempt=0), now=6), Delivered)


def test_accepted_moves_the_deadline_to_the_start_of_inference() -> None:
    """A job that waited in the queue gets the full timeout from when a worker took it."""
    client = InferenceClient(timeout_s=5, retries=0)
    client.send(job(), now=0)
    client.on_accepted(JobAccepted("s", 7, 0), now=4)
    assert client.deadline == 9
    assert client.tick(8) is None


def test_a_worker_failure_resends_at_once() -> None:
    """ok=False from the worker re-sends without waiting for the deadline."""
    client = InferenceClient(timeout_s=5, retries=1)
    client.send(job(), now=0)
    outcome = client.on_result(result(ok=False), now=1)
    assert isinstance(outcome, Resend) and outcome.reason == "worker error: boom"


# --- worker death and lost jobs, from the heartbeats ---


def view(at: float, alive: set[str], idle: frozenset[str] = frozenset()) -> WorkerView:
    return WorkerView(at=at, alive=frozenset(alive), idle_channels=frozenset(idle))


def test_a_worker_whose_heartbeat_stopped_has_its_window_resent_at_once() -> None:
    """Accepted by worker A, then a view without A: re-sent on that tick, long before the
    result deadline."""
    client = InferenceClient(timeout_s=30, retries=2)
    client.send(job(), now=0)
    client.on_accepted(JobAccepted("s", 7, 0, "A"), now=0.1)
    assert client.tick(0.6, view(0.5, {"A"})) is None
    outcome = client.tick(2.1, view(2.0, {"B"}))
    assert isinstance(outcome, Resend) and outcome.job.attempt == 1
    assert outcome.reason == "worker A stopped its heartbeat"


def test_a_view_older_than_the_acceptance_does_not_judge_the_worker() -> None:
    """A new worker may accept before the cached view has its first heartbeat: no re-send."""
    client = InferenceClient(timeout_s=30, retries=2)
    client.send(job(), now=0)
    client.on_accepted(JobAccepted("s", 7, 0, "NEW"), now=1.0)
    assert client.tick(1.2, view(0.9, {"OLD"})) is None


def test_a_job_not_accepted_while_a_worker_was_free_is_resent() -> None:
    """Not accepted ACCEPT_S after it was sent, and a worker serving its channel had a free
    slot: the job was lost on the way, re-sent."""
    client = InferenceClient(timeout_s=30, retries=2)
    client.send(job(), now=0)
    idle = frozenset({INFERENCE_CHANNEL})
    assert client.tick(ACCEPT_S, view(ACCEPT_S - 0.1, {"A"}, idle)) is None
    outcome = client.tick(ACCEPT_S + 0.1, view(ACCEPT_S, {"A"}, idle))
    assert isinstance(outcome, Resend) and outcome.job.attempt == 1


def test_a_job_queued_behind_busy_workers_is_not_resent() -> None:
    """Every worker of its channel busy (or only another channel's worker free): the job waits
    in the queue, no duplicate is added."""
    client = InferenceClient(timeout_s=30, retries=2)
    client.send(job(), now=0)
    assert client.tick(10, view(10, {"A"})) is None
    assert client.tick(11, view(11, {"A", "B"}, frozenset({BATCH_CHANNEL}))) is None
    assert client.in_flight is not None and client.in_flight.attempt == 0


def test_the_result_deadline_follows_the_measured_inference_time() -> None:
    """Once windows are measured, an accepted job gets RESULT_FACTOR times the longest recent
    inference of a window that long, at least RESULT_FLOOR_S, at most the timeout."""
    times = InferenceTimes()
    client = InferenceClient(timeout_s=30, retries=2, times=times)
    client.send(job(), now=0)
    client.on_accepted(JobAccepted("s", 7, 0, "A"), now=1)
    assert client.deadline == 31  # nothing measured yet: the timeout
    client.on_result(JobResult("s", 7, 0, ok=True, inference_s=2.0, audio_s=0.01), now=3)
    client.send(job(8), now=10)
    client.on_accepted(JobAccepted("s", 8, 0, "A"), now=10)
    assert client.deadline == 10 + RESULT_FACTOR * 2.0
    times_fast = InferenceTimes()
    times_fast.observe(audio_s=1.0, inference_s=0.1)
    fast = InferenceClient(timeout_s=30, retries=2, times=times_fast)
    fast.send(job(), now=0)
    fast.on_accepted(JobAccepted("s", 7, 0, "A"), now=0)
    assert fast.deadline == RESULT_FLOOR_S
    times_slow = InferenceTimes()
    times_slow.observe(audio_s=1.0, inference_s=100)
    slow = InferenceClient(timeout_s=30, retries=2, times=times_slow)
    slow.send(job(), now=0)
    slow.on_accepted(JobAccepted("s", 7, 0, "A"), now=0)
    assert slow.deadline == 30


def test_inference_times_scale_up_to_longer_windows_never_down() -> None:
    """The expected time of a window is the longest recent one, scaled by the length when the
    window is longer than the one measured."""
    times = InferenceTimes()
    assert times.expected_s(5.0) is None
    times.observe(audio_s=2.0, inference_s=0.4)
    times.observe(audio_s=10.0, inference_s=0.5)
    assert times.expected_s(1.0) == 0.5
    assert times.expected_s(20.0) == pytest.approx(max(0.4 * 10, 0.5 * 2))


def test_a_job_the_layer_refused_is_resent_each_tick_without_spending_a_retry() -> None:
    """The channel layer down: the same attempt goes out again on every tick until it is
    taken; the retries stay for the workers."""
    client = InferenceClient(timeout_s=30, retries=0, outage_s=20)
    client.send(job(), now=0)
    for now in (0.5, 1.0, 1.5):
        client.on_send_failed(7, now - 0.5)
        outcome = client.tick(now)
        assert isinstance(outcome, Resend) and outcome.job.attempt == 0
    assert client.tick(2.0) is None  # went through
    assert client.in_flight is not None


def test_an_outage_longer_than_the_audio_bound_gives_up() -> None:
    """Refused for outage_s in a row: GiveUp naming the outage."""
    client = InferenceClient(timeout_s=30, retries=2, outage_s=20)
    client.send(job(), now=0)
    client.on_send_failed(7, now=0)
    for now in range(1, 20):
        assert isinstance(client.tick(now), Resend)
        client.on_send_failed(7, now)
    outcome = client.tick(20)
    assert isinstance(outcome, GiveUp) and "unavailable for 20 s" in outcome.reason


def test_after_a_heartbeat_resend_either_answer_is_delivered_once() -> None:
    """The dead worker's late answer (or the new one) is delivered; the other is ignored."""
    client = InferenceClient(timeout_s=30, retries=2)
    client.send(job(), now=0)
    client.on_accepted(JobAccepted("s", 7, 0, "A"), now=0)
    assert isinstance(client.tick(3, view(3, set())), Resend)
    assert isinstance(client.on_result(result(attempt=1), now=4), Delivered)
    assert client.on_result(result(attempt=0), now=5) is None


def test_a_batch_job_is_not_resent_for_a_free_slot() -> None:
    """A file chunk waits for a batch slot, which a worker's free slot does not promise."""
    client = InferenceClient(timeout_s=30, retries=2)
    batch = replace(job(), priority="batch")
    client.send(batch, now=0)
    assert client.tick(10, view(10, {"A"}, frozenset({batch.channel}))) is None
