"""The sender's side of the worker contract, sans-IO: the job in flight, its attempts and deadlines.

Channels delivery is at-most-once (a worker may die with the job, a Redis blip may lose it), so
the sender owns timeouts and retries (STYLE.md "Make the worker contract explicit"). This
object decides; it never sleeps, sends or reads Redis. The session calls ``send`` when it has a
window, ``on_accepted`` / ``on_result`` with the worker's replies, ``on_send_failed`` when the
channel layer refused the job, and ``tick`` with the clock and, with Redis, what the worker
heartbeats say (``WorkerView``); it sends whatever job they return. A re-sent job keeps its
``window_index`` (only ``attempt`` grows), so a late answer to an earlier attempt is still the
right answer, and a duplicate is ignored.

A lost window is noticed in seconds, not after a fixed timeout (docs/DEPLOYING.md "What a
failure costs"):

- accepted by a worker whose heartbeat then stopped: re-sent on the first tick that no longer
  sees the worker;
- not accepted ``ACCEPT_S`` after it was sent while a worker serving its channel had a free
  slot (it would have been taken: it was lost on the way): re-sent;
- no result in ``RESULT_FACTOR`` times the measured inference time of a window that long (at
  least ``RESULT_FLOOR_S``; ``timeout_s`` until something is measured, and never more):
  re-sent, from a worker that is alive but stuck;
- the channel layer is down: the job is re-sent on every tick until it goes through, without
  spending a retry; only an outage longer than ``outage_s`` (the audio bound) gives up.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, replace

from transcription.inference.messages import JobAccepted, JobResult, TranscribeJob

ACCEPT_S = 2.0
RESULT_FACTOR = 3.0
RESULT_FLOOR_S = 3.0
MEASURED_WINDOWS = 16  # inference times kept by InferenceTimes


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


@dataclass(frozen=True, slots=True)
class WorkerView:
    """What the worker heartbeats said at ``at`` (the caller's clock): the live workers and
    the channels one of them had a free inference slot for."""

    at: float
    alive: frozenset[str]
    idle_channels: frozenset[str]


class InferenceTimes:
    """Measured inference times of recent windows, shared by the clients of one process (a
    session's first window already has a deadline from its neighbours' windows)."""

    def __init__(self, size: int = MEASURED_WINDOWS) -> None:
        self._recent: deque[tuple[float, float]] = deque(maxlen=size)  # (audio_s, inference_s)

    def observe(self, audio_s: float, inference_s: float) -> None:
        """Called with each delivered result."""
        if audio_s > 0 and 0 <= inference_s < float("inf"):
            self._recent.append((audio_s, inference_s))

    def expected_s(self, audio_s: float) -> float | None:
        """The longest recent inference, scaled up to ``audio_s`` when the window is longer
        (never down: with whisper.cpp's padded context a short window costs as much as a long
        one); None before any measurement."""
        if not self._recent:
            return None
        return max(inf * max(1.0, audio_s / audio) for audio, inf in self._recent)


@dataclass(slots=True)
class _Pending:
    job: TranscribeJob
    deadline: float
    sent_at: float  # first send of the window
    attempt_at: float  # this attempt
    worker: str | None = None  # the worker that accepted this attempt
    accepted_at: float = 0.0
    unsent: bool = False  # the channel layer refused the last send
    outage_since: float | None = None  # first refusal of the sends refused in a row


class InferenceClient:
    """At most one job in flight (a session transcribes its windows in order)."""

    def __init__(
        self,
        *,
        timeout_s: float,
        retries: int,
        outage_s: float = float("inf"),
        times: InferenceTimes | None = None,
    ) -> None:
        self.timeout_s = timeout_s
        self.retries = retries
        self.outage_s = outage_s
        self.times = times if times is not None else InferenceTimes()
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
        self._pending = _Pending(job, now + self.timeout_s, now, now)
        return job

    def on_send_failed(self, window_index: int, now: float) -> None:
        """The channel layer did not take the job (Redis away): ``tick`` re-sends it."""
        if self._matches(window_index):
            assert self._pending is not None
            self._pending.unsent = True
            if self._pending.outage_since is None:
                self._pending.outage_since = now

    def on_accepted(self, message: JobAccepted, now: float) -> None:
        """A worker started the window: from now on it has the measured inference time of a
        window that long (``timeout_s`` before any measurement), and its heartbeat must last."""
        if self._matches(message.window_index):
            assert self._pending is not None
            self._pending.worker = message.worker or None
            self._pending.accepted_at = now
            self._pending.deadline = now + self._result_bound(self._pending.job.audio_s)

    def on_result(self, message: JobResult, now: float) -> Outcome | None:
        """A worker finished (or failed) a window; None when it is not the one in flight."""
        if not self._matches(message.window_index):
            return None
        if message.ok:
            pending, self._pending = self._pending, None
            assert pending is not None
            self.times.observe(message.audio_s, message.inference_s)
            return Delivered(message, pending.job, now - pending.sent_at)
        return self._retry(now, f"worker error: {message.error or 'unknown'}")

    def tick(self, now: float, workers: WorkerView | None = None) -> Outcome | None:
        """Called periodically, with the heartbeats' view when there is one (with Redis, and
        it answered): re-send or give up on a job that is late or lost."""
        pending = self._pending
        if pending is None:
            return None
        if pending.unsent:
            assert pending.outage_since is not None
            if now - pending.outage_since >= self.outage_s:
                self._pending = None
                down_s = now - pending.outage_since
                reason = f"the channel layer was unavailable for {down_s:.0f} s"
                return GiveUp(pending.job.window_index, pending.job.attempt + 1, reason)
            pending.unsent = False  # set again by on_send_failed if this send fails too
            return Resend(pending.job, "the channel layer was unavailable")
        pending.outage_since = None  # the last send went through
        if workers is not None:
            lost = self._lost(pending, workers)
            if lost:
                return self._retry(now, lost)
        if now >= pending.deadline:
            return self._retry(now, f"no result within {pending.deadline - pending.attempt_at:g} s")
        return None

    def cancel(self) -> None:
        """Forget the job in flight (the session ended); its late result will be ignored."""
        self._pending = None

    def _lost(self, pending: _Pending, workers: WorkerView) -> str:
        """Why the heartbeats say the job is lost ("" when they do not)."""
        if pending.worker is not None:
            # A view older than the acceptance may predate a new worker's first heartbeat.
            if workers.at > pending.accepted_at and pending.worker not in workers.alive:
                return f"worker {pending.worker} stopped its heartbeat"
            return ""
        # The view must be younger than the job by ACCEPT_S: a worker that had a free slot
        # that long after the job was queued would have taken it. Live jobs only: a batch job
        # also needs one of the worker's batch slots, which a free slot does not promise.
        if (
            pending.job.priority == "live"
            and workers.at - pending.attempt_at >= ACCEPT_S
            and pending.job.channel in workers.idle_channels
        ):
            return f"not accepted within {ACCEPT_S:g} s while a worker was free"
        return ""

    def _result_bound(self, audio_s: float) -> float:
        expected = self.times.expected_s(audio_s)
        if expected is None:
            return self.timeout_s
        return min(self.timeout_s, max(RESULT_FLOOR_S, RESULT_FACTOR * expected))

    def _matches(self, window_index: int) -> bool:
        return self._pending is not None and self._pending.job.window_index == window_index

    def _retry(self, now: float, reason: str) -> Outcome:
        assert self._pending is not None
        job = self._pending.job
        if job.attempt >= self.retries:
            self._pending = None
            return GiveUp(job.window_index, job.attempt + 1, reason)
        job = replace(job, attempt=job.attempt + 1)
        self._pending = _Pending(job, now + self.timeout_s, self._pending.sent_at, now)
        return Resend(job, reason)
