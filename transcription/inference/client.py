"""The sender's side of the worker contract, sans-IO: the job in flight, its attempts and deadline.

Channels delivery is at-most-once (a worker may die with the job, a Redis blip may lose it), so
the sender owns timeouts and retries (STYLE.md "Make the worker contract explicit"). This
object decides; it never sleeps or sends. The session calls ``send`` when it has a window,
``on_accepted`` / ``on_result`` with the worker's replies and ``tick`` with the clock, and sends
whatever job they return. A re-sent job keeps its ``window_index`` (only ``attempt`` grows), so
a late answer to an earlier attempt is still the right answer, and a duplicate is ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from transcription.inference.messages import JobAccepted, JobResult, TranscribeJob


@dataclass(frozen=True, slots=True)
class Resend:
    """Send ``job`` again (a later attempt of the same window)."""

    job: TranscribeJob
    reason: str


@dataclass(frozen=True, slots=True)
class GiveUp:
    """Every attempt failed: the window cannot be transcribed now."""

    window_index: int
    attempts: int
    reason: str


@dataclass(frozen=True, slots=True)
class Delivered:
    """The worker's successful result for the job in flight (the job as last sent)."""

    result: JobResult
    job: TranscribeJob
    latency_s: float  # from the first send of the window to its result


Outcome = Resend | GiveUp | Delivered


@dataclass(slots=True)
class _Pending:
    job: TranscribeJob
    deadline: float
    sent_at: float


class InferenceClient:
    """At most one job in flight (a session transcribes its windows in order)."""

    def __init__(self, *, timeout_s: float, retries: int) -> None:
        self.timeout_s = timeout_s
        self.retries = retries
        self._pending: _Pending | None = None

    @property
    def in_flight(self) -> TranscribeJob | None:
        """The job (latest attempt) waiting for a result, if any."""
        return self._pending.job if self._pending else None

    @property
    def deadline(self) -> float | None:
        """When ``tick`` will next re-send or give up (the clock of the ``now`` arguments)."""
        return self._pending.deadline if self._pending else None

    def send(self, job: TranscribeJob, now: float) -> TranscribeJob:
        """Start tracking ``job`` (attempt 0); returns the job to send."""
        if self._pending is not None:
            raise RuntimeError(f"window {self._pending.job.window_index} is still in flight")
        job = replace(job, attempt=0)
        self._pending = _Pending(job, now + self.timeout_s, now)
        return job

    def on_accepted(self, message: JobAccepted, now: float) -> None:
        """A worker started the window: the deadline now counts from the start of inference."""
        if self._matches(message.window_index):
            assert self._pending is not None
            self._pending.deadline = now + self.timeout_s

    def on_result(self, message: JobResult, now: float) -> Outcome | None:
        """A worker finished (or failed) a window; None when it is not the one in flight."""
        if not self._matches(message.window_index):
            return None
        if message.ok:
            pending, self._pending = self._pending, None
            assert pending is not None
            return Delivered(message, pending.job, now - pending.sent_at)
        return self._retry(now, f"worker error: {message.error or 'unknown'}")

    def tick(self, now: float) -> Outcome | None:
        """Called periodically: re-send or give up on a job whose deadline has passed."""
        if self._pending is None or now < self._pending.deadline:
            return None
        return self._retry(now, f"no result within {self.timeout_s:g} s")

    def cancel(self) -> None:
        """Forget the job in flight (the session ended); its late result will be ignored."""
        self._pending = None

    def _matches(self, window_index: int) -> bool:
        return self._pending is not None and self._pending.job.window_index == window_index

    def _retry(self, now: float, reason: str) -> Outcome:
        assert self._pending is not None
        job = self._pending.job
        if job.attempt >= self.retries:
            self._pending = None
            return GiveUp(job.window_index, job.attempt + 1, reason)
        job = replace(job, attempt=job.attempt + 1)
        self._pending = _Pending(job, now + self.timeout_s, self._pending.sent_at)
        return Resend(job, reason)
