"""Tests for transcription/inference/client.py: the sender's deadlines and retries, sans-IO."""

from __future__ import annotations

import numpy as np

from transcription.inference.client import Delivered, GiveUp, InferenceClient, Resend
from transcription.inference.messages import JobAccepted, JobResult, TranscribeJob


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
