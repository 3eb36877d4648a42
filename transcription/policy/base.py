"""The contract between a session and its streaming policy, and what both policies share.

Normative: ``docs/PROTOCOL.md`` "Windows and events". The session asks ``next_span``
whenever no inference is in flight (at most one per session), hands the words of that span to
``on_result`` (or calls ``on_skipped`` when the speech gate found no speech in it) and releases
the buffer up to the returned ``release_ms``. Pure and synchronous; times are session-timeline ms.
The policies themselves: ``windowed.py`` (the default) and ``local_agreement.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from transcription.casing import continue_case
from transcription.inference.types import Word
from transcription.merge import merge
from transcription.transcript import TIME_TOLERANCE_MS, Transcript, normalize

DEFAULT_EDGE_GUARD_MS = 500
# The next span starts this far before the last committed word, so that word is heard whole
# again despite timestamp jitter and the merge has an agreeing word to align on.
ANCHOR_MARGIN_MS = TIME_TOLERANCE_MS + 100
# Silence after the last committed word long enough that a later word, jittered, cannot be
# taken for a committed one.
SILENT_TAIL_MS = 2 * TIME_TOLERANCE_MS + 100
# A skipped (silent) span keeps this much of its end: a word may begin right at the edge,
# under the speech gate's minimum.
SKIP_TAIL_MS = 300
WORD_ECHO_MS = 1000  # a join word heard again this soon after the committed one is the same word
# Windows shorter than this hear too little to be cut mid-speech (``StreamingPolicy.short_window``).
SHORT_WINDOW_MS = 4000


class AudioBuffer(Protocol):
    """What a policy reads from the session's audio buffer (``transcription.audio.buffer``)."""

    @property
    def start_ms(self) -> int: ...

    @property
    def end_ms(self) -> int: ...

    def window(self, start_ms: int, end_ms: int) -> np.ndarray: ...

    def has_speech(self, start_ms: int, end_ms: int, min_speech_ms: int = ...) -> bool: ...

    def pause_near(self, end_ms: int, search_ms: int, min_pause_ms: int = ...) -> int | None: ...


@dataclass(frozen=True, slots=True)
class Span:
    """A stretch of the buffer to transcribe; ``final`` when it ends the session's audio.

    ``at_pause`` records that the end was placed in a pause, so no word crosses it.
    """

    start_ms: int
    end_ms: int
    final: bool
    at_pause: bool = False
    interim_only: bool = False  # a pass for speech.hypothesis: nothing is committed
    # Starts in silence after every committed word (a pause cut or a skipped span before it):
    # no committed word is heard again, so none of its words can be old.
    after_pause: bool = False

    @property
    def duration_ms(self) -> int:
        return self.end_ms - self.start_ms


@dataclass(frozen=True, slots=True)
class Decision:
    """What a span produced: words newly committed (already in the transcript), interim words
    for ``speech.hypothesis``, and the point before which the buffer may be released."""

    committed: list[Word]
    interim: list[Word]
    release_ms: int


class StreamingPolicy(Protocol):
    """Chooses spans and commits words; one instance per session."""

    # True at windows under SHORT_WINDOW_MS, the one place that decides it: the windowed policy
    # then commits at pauses and from the session's interim passes (``on_interim``), so the
    # session runs those passes at a shorter step (``interim.step_ms``) and with its beam
    # (``session_jobs.interim_settings``).
    short_window: bool

    def next_span(self, buffer: AudioBuffer, *, final: bool, eager: bool = False) -> Span | None:
        """Called when no inference is in flight and after new audio arrives: the span to
        transcribe now, or None to wait (with ``final``: None once nothing is left). With
        ``eager`` (the client was told to slow down) never wait for look-ahead audio a paused
        client will not send."""
        ...

    def on_result(self, span: Span, words: Sequence[Word], transcript: Transcript) -> Decision:
        """Called with the words of ``span`` (session timeline); commits into ``transcript``."""
        ...

    def on_skipped(self, span: Span) -> Decision:
        """Called instead of ``on_result`` when the span had no speech and was not transcribed."""
        ...

    def on_interim(
        self, span: Span, words: Sequence[Word], transcript: Transcript, *, commit: bool
    ) -> Decision:
        """Called with the words of an interim pass over ``span`` (``interim.py``); with
        ``commit`` (no window in flight, no flush pending) it may commit into ``transcript``.
        Releases nothing."""
        ...


def unheard(
    span: Span, words: Sequence[Word], transcript: Transcript, pending: Sequence[Word] = ()
) -> list[Word]:
    """The words of ``span`` that the transcript does not hold yet (nothing is committed);
    ``pending``: the words the span before heard after the transcript and held back."""
    tail = transcript.recent_words(span.start_ms - TIME_TOLERANCE_MS)
    fresh = merge(
        tail,
        words,
        overlap_start_ms=span.start_ms,
        overlap_end_ms=transcript.last_word_end_ms,
        heard_again=not span.after_pause,
        pending=pending,
    )
    # Short windows cut mid-speech: Whisper's edge-word times drift by more than the merge's
    # tolerance, and the last committed word comes back as the first new one ("the the").
    if fresh and transcript.words and not span.after_pause:
        last, first = transcript.words[-1], fresh[0]
        same = normalize(first.text) == normalize(last.text) and normalize(first.text)
        if same and first.start_ms - last.end_ms < WORD_ECHO_MS:
            fresh = fresh[1:]
    return continue_case(transcript.words[-1] if transcript.words else None, fresh)


def min_progress_ms(span: Span, committed: Sequence[Word]) -> int:
    """How far the next span must start after this one, so every step advances.

    A step that committed words has advanced the transcript, and its anchor word must stay
    audible, so 1 ms will do (steps are bounded by the number of words). A step that committed
    nothing moves by an eighth of the span, so audio Whisper hears nothing new in is left
    behind within a few steps (bounded compute).
    """
    return 1 if committed else max(1, span.duration_ms // 8)


def split_at_guard(words: Sequence[Word], limit_ms: int) -> tuple[list[Word], list[Word]]:
    """Words ending by ``limit_ms``, and the rest from the first one that ends after it."""
    for i, word in enumerate(words):
        if word.end_ms > limit_ms:
            return list(words[:i]), list(words[i:])
    return list(words), []


def usable_ms(buffer_ms: int) -> int:
    """The longest span a session with a ``buffer_ms`` audio buffer can wait for: three
    quarters of it, below the 80 % backpressure mark."""
    return buffer_ms * 3 // 4
