"""Interim passes, sans-IO: when a live session hears its audio for ``speech.hypothesis`` only.

Normative: ``docs/PROTOCOL.md`` "Windows and events". A window is transcribed once enough audio
for it has arrived (5 s by default), so without help a word is first shown a window after it
was spoken. While the session waits for its next window (no window in flight), every
``step_ms`` of new speech the audio since the buffer's start (where the next window will
start) is sent as an interim job: the lowest priority of the worker contract, run only by a
worker slot that finds no live window waiting, and dropped by the worker when it waited past
``INTERIM_TTL_S`` (``inference/messages.py``). The session sends its words after the committed
transcript as a pending ``speech.hypothesis``, and drops a result that a window's result has
overtaken. At windows under 4 s, which otherwise commit only at pauses, the policy commits the
words two consecutive passes agree on (``WindowedPolicy.on_interim``); longer windows commit
nothing from a pass. At most one interim pass per session is in
flight, so a session queues at most one of them, whatever the load. A worker listens for
interim jobs only while its windows left it idle at least half of the last ten seconds
(``LiveLoad``), so a loaded node runs windows only.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass

from transcription.inference.messages import INTERIM_TTL_S
from transcription.inference.types import Word
from transcription.policy.base import AudioBuffer

# A worker takes interim jobs only while live and batch jobs kept its slots busy less than
# this share of the last LOAD_HORIZON_S: idle capacity, not capacity the admitted sessions use.
INTERIM_MAX_LIVE_SHARE = 0.5
LOAD_HORIZON_S = 10.0
# At short windows the passes also commit (two in a row agreeing), so their step sets the
# final delay on continuous speech: a word is final about 1.5 steps after it, plus a pass's
# inference. A shorter step lets more misheard words through (the steps measured:
# docs/STREAMING.md, "2 s windows: a pass every 600 ms").
SHORT_WINDOW_STEP_MS = 600


def step_ms(interim_ms: int, *, short_window: bool) -> int:
    """The step of a session's interim passes: ``WSS_INTERIM_MS`` (0: off), at most
    ``SHORT_WINDOW_STEP_MS`` at the policy's short windows (``StreamingPolicy.short_window``)."""
    if interim_ms <= 0 or not short_window:
        return interim_ms
    return min(interim_ms, SHORT_WINDOW_STEP_MS)


@dataclass(frozen=True, slots=True)
class InterimPass:
    """One interim job in flight: its window index, the span it hears and when it was sent
    (the session's clock)."""

    window_index: int
    start_ms: int
    end_ms: int
    sent_at: float


class InterimPasses:
    """A session's interim passes: ``due`` says when to send one, ``sent`` records it,
    ``take`` matches its result."""

    def __init__(self, step_ms: int, ttl_s: float = INTERIM_TTL_S) -> None:
        self.step_ms = step_ms
        self.ttl_s = ttl_s
        self._pending: InterimPass | None = None
        self._shown_until_ms = 0  # the end of the audio the last window or pass heard
        self._final_until_ms = 0  # the end of the last window whose result came in
        self._heard: tuple[int, tuple[Word, ...]] = (0, ())  # the last pass back: start, words

    def due(self, buffer: AudioBuffer, now: float) -> tuple[int, int] | None:
        """Called when new audio arrived and no window is in flight: the span to hear now
        (the buffer's start to its end), or None. Due once ``step_ms`` of audio after what
        was last heard holds speech, and the pass before it came back or expired."""
        if self.step_ms <= 0:
            return None
        if self._pending is not None and now - self._pending.sent_at < self.ttl_s:
            return None
        new_from = max(self._shown_until_ms, buffer.start_ms)
        if buffer.end_ms - new_from < self.step_ms:
            return None
        if not buffer.has_speech(new_from, buffer.end_ms):
            return None
        return buffer.start_ms, buffer.end_ms

    def sent(self, window_index: int, start_ms: int, end_ms: int, now: float) -> None:
        """An interim job for ``start_ms``..``end_ms`` went out as ``window_index``."""
        self._pending = InterimPass(window_index, start_ms, end_ms, now)
        self._shown_until_ms = max(self._shown_until_ms, end_ms)

    def window_sent(self, end_ms: int) -> None:
        """A window (a job that commits) went out: its result shows the audio to ``end_ms``."""
        self._shown_until_ms = max(self._shown_until_ms, end_ms)

    def window_done(self, end_ms: int) -> None:
        """A window's result came in: interim results for audio before ``end_ms`` are stale."""
        self._final_until_ms = max(self._final_until_ms, end_ms)

    def take(self, window_index: int) -> InterimPass | None:
        """The pass a result answers (forgotten from now on), None when it is not ours; a
        pass whose audio a window's result already showed is stale: None too."""
        pending = self._pending
        if pending is None or pending.window_index != window_index:
            return None
        self._pending = None
        if self._final_until_ms >= pending.end_ms:
            return None
        return pending

    def heard(self, start_ms: int, words: tuple[Word, ...]) -> None:
        """The words (session times) of a pass over the audio from ``start_ms`` that came
        back: a window cut at a pause reads its punctuation at the cut from them
        (``casing.continue_sentence``)."""
        self._heard = (start_ms, words)

    def heard_from(self, start_ms: int) -> tuple[Word, ...]:
        """The words of the last pass that came back, if it heard the audio from
        ``start_ms`` (a window's start): passes start where the next window does."""
        start, words = self._heard
        return words if start == start_ms else ()

    def is_interim(self, window_index: int) -> bool:
        """True for the window index of the pass in flight."""
        return self._pending is not None and self._pending.window_index == window_index


class LiveLoad:
    """How busy live and batch jobs kept a process's inference slots over the last
    ``horizon_s`` (the worker side of interim passes): a worker listens for interim jobs only
    while the share is below ``INTERIM_MAX_LIVE_SHARE``. A slot free now is no promise that
    it is free when the next window comes; a worker whose windows keep it busy half the time
    has a window arriving during most interim passes, and the window would wait for one."""

    def __init__(self, horizon_s: float = LOAD_HORIZON_S) -> None:
        self.horizon_s = horizon_s
        self._done: collections.deque[tuple[float, float]] = collections.deque()
        self._running: dict[int, float] = {}
        self._next = 0

    def start(self, now: float) -> int:
        """A live or batch job started; the token ends it."""
        self._next += 1
        self._running[self._next] = now
        return self._next

    def stop(self, token: int, now: float) -> None:
        """The job of ``token`` ended."""
        started = self._running.pop(token, None)
        if started is not None:
            self._done.append((started, now))

    def share(self, now: float, slots: int = 1) -> float:
        """Busy slot-seconds over the last ``horizon_s``, per slot-second."""
        since = now - self.horizon_s
        while self._done and self._done[0][1] <= since:
            self._done.popleft()
        spans = [*self._done, *((start, now) for start in self._running.values())]
        busy = sum(max(0.0, end - max(start, since)) for start, end in spans)
        return busy / (self.horizon_s * max(1, slots))
