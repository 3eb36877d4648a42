"""Streaming policies: which span of the audio buffer to transcribe next, and what to commit.

Normative: ``docs/PROTOCOL.md`` "Windows and events". The session asks ``next_span``
whenever no inference is in flight (at most one per session), hands the words of that span to
``on_result`` (or calls ``on_skipped`` when the speech gate found no speech in it) and releases
the buffer up to the returned ``release_ms``. Pure and synchronous; times are session-timeline ms.

Latency and compute (W = window, O = overlap; audio time, inference time comes on top; the
ratios were measured on simulated continuous speech with ±300 ms word-time jitter):

``windowed`` (default). One span of at most W per step. A span ends at a pause found in its
last quarter, so words are rarely cut; words ending within the edge guard (0.5 s) of a span
cut mid-speech are held back, sent as ``speech.hypothesis`` and committed by the next window.
The next span starts O before the end of the last committed word, and early enough to hear that
word again whole (the merge aligns on it) and any word the cut end may have swallowed. Text is
final when the window holding it returns: W/2 to W after it was spoken (one more window for a
held-back word). Compute: every second of speech is transcribed about 1.4x at 5 s / 0.5 s and
1.15x at 20 s / 2 s, never more than W per step, every step advances; the speech gate skips
silence, so it costs nothing. Windows under 4 s hear too little to be cut mid-speech: they end
at pauses, and in between the session's interim passes (``interim.py``, idle capacity only)
commit the words two consecutive passes agree on (``on_interim``).

``local_agreement`` (whisper_streaming's LocalAgreement-2). The buffer from the last committed
point is transcribed again every ``min_chunk_ms`` (1 s) of new audio; a word is committed once
two consecutive transcriptions agree on it, the rest goes out as ``speech.hypothesis``.
Hypotheses arrive every second and stable text follows one to two seconds behind the speaker,
whatever W is: much lower latency. But each step re-transcribes the whole buffer (up to
``max_buffer_ms`` = W, trimmed at a committed sentence end), so compute is several times the
windowed cost and grows with W: about 4.3x at 5 s and 11x at 20 s, plus Whisper's fixed cost
per call once a second.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal, Protocol

import numpy as np

from transcription.casing import continue_case
from transcription.inference.types import Word
from transcription.transcript import (
    TIME_TOLERANCE_MS,
    Transcript,
    drop_annotations,
    ends_sentence,
    merge,
    normalize,
)

PolicyName = Literal["windowed", "local_agreement"]
POLICY_NAMES: tuple[PolicyName, ...] = ("windowed", "local_agreement")

DEFAULT_EDGE_GUARD_MS = 500
DEFAULT_MIN_PAUSE_MS = 150
# The next span starts this far before the last committed word, so that word is heard whole
# again despite timestamp jitter and the merge has an agreeing word to align on.
ANCHOR_MARGIN_MS = TIME_TOLERANCE_MS + 100
# Silence after the last committed word long enough that a later word, jittered, cannot be
# taken for a committed one.
SILENT_TAIL_MS = 2 * TIME_TOLERANCE_MS + 100
# Two hypotheses only count as agreeing when their span ends differ by this much (see
# ``_agreed_length``).
MIN_AGREEMENT_MOVE_MS = 200
# A skipped (silent) span keeps this much of its end: a word may begin right at the edge,
# under the speech gate's minimum.
SKIP_TAIL_MS = 300


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


SHORT_WINDOW_MS = 4000  # below this, windows commit at pauses (see WindowedPolicy._short_span)
SHORT_MAX_SPAN_MS = 8000  # a short-window utterance longer than this is cut without a pause
MIN_UTTERANCE_MS = 300  # a pause this close to the start ends nothing worth a window
WORD_ECHO_MS = 1000  # a join word heard again this soon after the committed one is the same word


def unheard(span: Span, words: Sequence[Word], transcript: Transcript) -> list[Word]:
    """The words of ``span`` that the transcript does not hold yet (nothing is committed)."""
    tail = transcript.recent_words(span.start_ms - TIME_TOLERANCE_MS)
    fresh = merge(
        tail,
        words,
        overlap_start_ms=span.start_ms,
        overlap_end_ms=transcript.last_word_end_ms,
        heard_again=not span.after_pause,
    )
    # Short windows cut mid-speech: Whisper's edge-word times drift by more than the merge's
    # tolerance, and the last committed word comes back as the first new one ("the the").
    if fresh and transcript.words and not span.after_pause:
        last, first = transcript.words[-1], fresh[0]
        same = normalize(first.text) == normalize(last.text) and normalize(first.text)
        if same and first.start_ms - last.end_ms < WORD_ECHO_MS:
            fresh = fresh[1:]
    return continue_case(transcript.words[-1] if transcript.words else None, fresh)


def _min_progress_ms(span: Span, committed: Sequence[Word]) -> int:
    """How far the next span must start after this one, so every step advances.

    A step that committed words has advanced the transcript, and its anchor word must stay
    audible, so 1 ms will do (steps are bounded by the number of words). A step that committed
    nothing moves by an eighth of the span, so audio Whisper hears nothing new in is left
    behind within a few steps (bounded compute).
    """
    return 1 if committed else max(1, span.duration_ms // 8)


def _split_at_guard(words: Sequence[Word], limit_ms: int) -> tuple[list[Word], list[Word]]:
    """Words ending by ``limit_ms``, and the rest from the first one that ends after it."""
    for i, word in enumerate(words):
        if word.end_ms > limit_ms:
            return list(words[:i]), list(words[i:])
    return list(words), []


class WindowedPolicy:
    """Fixed windows cut at pauses, overlapping by ``overlap_ms``, merged by word alignment."""

    def __init__(
        self,
        window_ms: int,
        overlap_ms: int,
        *,
        pause_search_ms: int | None = None,
        edge_guard_ms: int = DEFAULT_EDGE_GUARD_MS,
        min_pause_ms: int = DEFAULT_MIN_PAUSE_MS,
        pause_wait_ms: int | None = None,
        short_window_ms: int = SHORT_WINDOW_MS,
        max_span_ms: int | None = None,
        interim_spans: bool = True,
    ) -> None:
        if window_ms <= 0 or not 0 <= overlap_ms < window_ms:
            raise ValueError("window_ms must be positive and overlap_ms in 0..window_ms-1")
        self.window_ms = window_ms
        self.overlap_ms = overlap_ms
        self.pause_search_ms = window_ms // 2 if pause_search_ms is None else pause_search_ms
        # Capped at a quarter window so most of every span can be committed.
        self.edge_guard_ms = min(edge_guard_ms, window_ms // 4)
        self.min_pause_ms = min_pause_ms
        # A sentence often runs a little past the window: wait up to this much longer for a
        # pause rather than cut a word (only continuous speech pays that latency).
        self.pause_wait_ms = window_ms // 4 if pause_wait_ms is None else pause_wait_ms
        self._start_ms: int | None = None
        self.short = window_ms < short_window_ms  # commit at pauses (see _short_span)
        # The longest utterance a short window holds before cutting without a pause; capped
        # by the caller at what the session's audio buffer can hold, or continuous speech
        # would fill the buffer before any cut and stall the session.
        default_span_ms = max(SHORT_MAX_SPAN_MS, 3 * window_ms)
        self.max_span_ms = default_span_ms if max_span_ms is None else max_span_ms
        self._interim_until_ms = 0  # end of the last interim-only pass (short windows)
        # False when the session runs interim passes of its own (``interim.py``, at a lower
        # priority): short windows then wait for a pause without interim-only spans.
        self.interim_spans = interim_spans
        self._interim: list[Word] = []  # held back by the last span, after the committed tail
        self._last_end_ms = 0
        self._after_pause = False  # the next span starts in silence after every committed word
        # End of the last word an interim pass committed: the pass heard past the buffer's
        # end as a window saw it, so a later span may start before that word.
        self._pass_end_ms = 0
        # Words interim passes committed since the span start, and whether that start lies in
        # a pause after every word committed before them (see _after_passes).
        self._pass_words: list[Word] = []
        self._clean_start = False

    def next_span(self, buffer: AudioBuffer, *, final: bool, eager: bool = False) -> Span | None:
        """The next window once ``window_ms`` is buffered; with ``final``, the rest."""
        span = self._next_span(buffer, final=final, eager=eager)
        if span is None or not self._after_pause:
            return span
        return replace(span, after_pause=True)

    def _next_span(self, buffer: AudioBuffer, *, final: bool, eager: bool) -> Span | None:
        start = buffer.start_ms if self._start_ms is None else max(self._start_ms, buffer.start_ms)
        self._start_ms = start
        available = buffer.end_ms - start
        if available <= 0 or (available < self.window_ms and not final):
            return None
        if self.short:
            return self._short_span(buffer, start, final=final)
        if final and available <= self.window_ms:
            return Span(start, buffer.end_ms, final=True)
        end = start + self.window_ms
        limit = end + self.pause_wait_ms
        search_end = min(buffer.end_ms, limit)
        search_from = end - self.pause_search_ms
        pause = buffer.pause_near(
            search_end, search_end - search_from, min_pause_ms=self.min_pause_ms
        )
        if pause is not None and max(start, search_from) < pause < search_end:
            return Span(start, pause, final=False, at_pause=True)
        if buffer.end_ms < limit and not (final or eager):
            return None
        return Span(start, end, final=False)

    def _short_span(self, buffer: AudioBuffer, start: int, *, final: bool) -> Span | None:
        """Short windows (< 4 s) hear too little to cut mid-sentence reliably: commit at the
        pauses the speech gate finds, and between them transcribe the utterance so far every
        window for ``speech.hypothesis`` only. An utterance longer than ``max_span_ms`` without
        a pause is cut like a normal window."""
        end = buffer.end_ms
        max_span_ms = self.max_span_ms
        if final and end - start <= max_span_ms:
            return Span(start, end, final=True)
        # A fast sender fills the buffer far ahead: look for the pause within one utterance.
        search_end = min(end, start + max_span_ms)
        search_ms = search_end - start - MIN_UTTERANCE_MS
        pause = buffer.pause_near(search_end, search_ms, min_pause_ms=self.min_pause_ms)
        if search_ms > 0 and pause is not None and start + MIN_UTTERANCE_MS < pause < search_end:
            return Span(start, pause, final=False, at_pause=True)
        if end - start >= max_span_ms:
            return Span(start, start + max_span_ms, final=False)
        if not self.interim_spans or end - self._interim_until_ms < self.window_ms:
            return None
        self._interim_until_ms = end
        return Span(start, end, final=False, interim_only=True)

    def on_result(self, span: Span, words: Sequence[Word], transcript: Transcript) -> Decision:
        """Commit the span's new words except those probably cut by its end."""
        fresh = self._after_passes(span, words, transcript)
        self._pass_words = []
        if span.interim_only:
            return Decision([], fresh, span.start_ms)
        interim: list[Word]
        if span.final:
            committed, interim = fresh, []
        else:
            # A word ending near a cut edge was probably heard in part; a pause cut has no
            # such word (the speech gate placed it in silence).
            guard = 0 if span.at_pause else min(self.edge_guard_ms, span.duration_ms // 4)
            committed, interim = _split_at_guard(fresh, span.end_ms - guard)
            # Held-back words this window heard exactly as the last one did were not cut
            # (LocalAgreement-2 on the held-back part): commit them instead of waiting again.
            agreed = _agreed_length(self._interim, fresh, span.end_ms - self._last_end_ms)
            if agreed > len(committed):
                committed, interim = fresh[:agreed], fresh[agreed:]
        transcript.commit(committed)
        self._interim = interim
        self._last_end_ms = span.end_ms
        release = self._next_start(span, transcript, committed, interim)
        self._start_ms = release
        self._after_pause = span.at_pause and release == span.end_ms >= self._pass_end_ms
        return Decision(committed, interim, release)

    def on_interim(
        self, span: Span, words: Sequence[Word], transcript: Transcript, *, commit: bool
    ) -> Decision:
        """Short windows: commit the words this pass and the pass (or window) before it agree
        on (LocalAgreement-2 over the growing utterance), rather than wait for its pause. The
        span start stays at the utterance start: later passes and the window at the pause
        hear the whole utterance again, and the merge drops what was committed (starting
        them at the last committed word, as after a cut window, lost words: see
        docs/STREAMING.md). Longer windows only show the words."""
        start = span.start_ms if self._start_ms is None else self._start_ms
        if not (self.short and commit and span.start_ms == start):
            return Decision([], unheard(span, words, transcript), start)
        fresh = self._after_passes(span, words, transcript)
        agreed = _agreed_length(self._interim, fresh, span.end_ms - self._last_end_ms)
        committed, interim = fresh[:agreed], fresh[agreed:]
        if committed and not self._pass_words:
            self._clean_start = self._after_pause or not transcript.words
        transcript.commit(committed)
        self._interim = interim
        self._last_end_ms = span.end_ms
        if committed:
            self._after_pause = False  # the next span hears these words again
            self._pass_end_ms = max(self._pass_end_ms, transcript.last_word_end_ms)
            self._pass_words += committed
        return Decision(committed, interim, start)

    def _after_passes(
        self, span: Span, words: Sequence[Word], transcript: Transcript
    ) -> list[Word]:
        """The words of ``span`` after the committed transcript. When interim passes committed
        the start of an utterance that began in a pause, a later pass or window over it
        starts with those words, the same text: cut by text. The merge aligns by time too,
        and over a whole utterance heard again the pass's word times (its own encoder
        context) drift from the window's far enough to repeat words at the join."""
        if not self._pass_words:
            return unheard(span, words, transcript)
        fresh = unheard(replace(span, after_pause=False), words, transcript)
        old = [t for t in (normalize(w.text) for w in self._pass_words) if t]
        heard = drop_annotations(words)
        spoken = [i for i, w in enumerate(heard) if normalize(w.text)]
        if not (self._clean_start and old and len(spoken) >= len(old)):
            return fresh
        if [normalize(heard[i].text) for i in spoken[: len(old)]] != old:
            return fresh
        rest = heard[spoken[len(old) - 1] + 1 :]
        while rest and not normalize(rest[0].text):
            rest = rest[1:]  # punctuation of an old word is old
        return continue_case(transcript.words[-1] if transcript.words else None, rest)

    def on_skipped(self, span: Span) -> Decision:
        """Move past a silent span, keeping a short tail for a word starting at its very end."""
        self._interim = []
        self._pass_words = []
        release = span.end_ms if span.final else span.end_ms - SKIP_TAIL_MS
        release = max(release, span.start_ms + _min_progress_ms(span, ()))
        self._start_ms = min(release, span.end_ms)
        # The whole span was silence, so no committed word lies in its kept tail (unless an
        # interim pass committed words after it).
        self._after_pause = self._start_ms >= self._pass_end_ms
        return Decision([], [], self._start_ms)

    def _next_start(
        self,
        span: Span,
        transcript: Transcript,
        committed: Sequence[Word],
        interim: Sequence[Word],
    ) -> int:
        """Where the next span starts: early enough to hear the last committed word again, any
        held-back word whole, and a word the span's cut end may have swallowed."""
        if span.final:
            return span.end_ms
        end = transcript.last_word_end_ms
        if span.at_pause:
            # Cut in a pause the speech gate found: no word lies at the cut, everything before
            # it was committed (no edge guard), so start there and hear no committed word again.
            return span.end_ms
        if transcript.words and end > span.start_ms:
            if span.at_pause and not interim and span.end_ms - end > SILENT_TAIL_MS:
                # The span ended in silence: later words cannot be confused with committed
                # ones by time, so no anchor word is needed.
                start = end + TIME_TOLERANCE_MS
            else:
                anchor = transcript.words[-1].start_ms - ANCHOR_MARGIN_MS
                start = min(end - self.overlap_ms, anchor)
        else:
            start = span.end_ms - self.overlap_ms
        if not span.at_pause:
            # Whisper often drops a word cut by the span end, or returns it early enough to
            # pass the guard as a fragment: hear the edge again.
            start = min(start, span.end_ms - self.edge_guard_ms - ANCHOR_MARGIN_MS)
        if interim:
            start = min(start, interim[0].start_ms - ANCHOR_MARGIN_MS)
        start = max(start, span.start_ms + _min_progress_ms(span, committed))
        return min(start, span.end_ms)


class LocalAgreementPolicy:
    """whisper_streaming's LocalAgreement-2: re-transcribe the growing buffer, commit what two
    consecutive hypotheses agree on."""

    def __init__(
        self,
        min_chunk_ms: int = 1000,
        max_buffer_ms: int = 30000,
        *,
        edge_guard_ms: int = DEFAULT_EDGE_GUARD_MS,
    ) -> None:
        if not 0 < min_chunk_ms < max_buffer_ms:
            raise ValueError("min_chunk_ms must be positive and below max_buffer_ms")
        self.min_chunk_ms = min_chunk_ms
        self.max_buffer_ms = max_buffer_ms
        self.edge_guard_ms = min(edge_guard_ms, max_buffer_ms // 4)
        self._start_ms: int | None = None
        self._heard_until_ms: int | None = None
        self._hypothesis: list[Word] = []

    def next_span(self, buffer: AudioBuffer, *, final: bool, eager: bool = False) -> Span | None:
        """The buffer from the last committed point, once ``min_chunk_ms`` of new audio came
        (``eager`` changes nothing: it never waits beyond one chunk)."""
        start = buffer.start_ms if self._start_ms is None else max(self._start_ms, buffer.start_ms)
        self._start_ms = start
        heard = start if self._heard_until_ms is None else max(self._heard_until_ms, start)
        self._heard_until_ms = heard
        end = min(buffer.end_ms, start + self.max_buffer_ms)
        if end <= start:
            return None
        if final:
            if heard >= buffer.end_ms and not self._hypothesis:
                return None  # every word heard so far is committed
            return Span(start, end, final=end == buffer.end_ms)
        if end - heard < self.min_chunk_ms and end - start < self.max_buffer_ms:
            return None
        return Span(start, end, final=False)

    def on_result(self, span: Span, words: Sequence[Word], transcript: Transcript) -> Decision:
        """Commit the prefix this hypothesis shares with the previous one; the rest is interim."""
        fresh = unheard(span, words, transcript)
        previous_end = span.start_ms if self._heard_until_ms is None else self._heard_until_ms
        agreed = _agreed_length(self._hypothesis, fresh, span.end_ms - previous_end)
        self._heard_until_ms = span.end_ms
        interim: list[Word]
        if span.final:
            committed, interim = fresh, []
        elif agreed == 0 and span.duration_ms >= self.max_buffer_ms:
            # No agreement within a full buffer (e.g. speech that keeps changing): commit like
            # a window, so compute stays bounded and the session advances.
            guard = min(self.edge_guard_ms, span.duration_ms // 4)
            committed, interim = _split_at_guard(fresh, span.end_ms - guard)
        else:
            committed, interim = fresh[:agreed], fresh[agreed:]
        transcript.commit(committed)
        self._hypothesis = interim
        self._start_ms = self._next_start(span, transcript, committed, interim)
        return Decision(committed, interim, self._start_ms)

    def on_interim(
        self, span: Span, words: Sequence[Word], transcript: Transcript, *, commit: bool
    ) -> Decision:
        """Show the words after the committed transcript: this policy hears the growing buffer
        often enough on its own."""
        start = span.start_ms if self._start_ms is None else self._start_ms
        return Decision([], unheard(span, words, transcript), start)

    def on_skipped(self, span: Span) -> Decision:
        """Drop a silent buffer (and any hypothesis about it), keeping a short tail."""
        self._hypothesis = []
        self._heard_until_ms = span.end_ms
        release = span.end_ms if span.final else max(span.start_ms, span.end_ms - SKIP_TAIL_MS)
        self._start_ms = release
        return Decision([], [], release)

    def _next_start(
        self,
        span: Span,
        transcript: Transcript,
        committed: Sequence[Word],
        interim: Sequence[Word],
    ) -> int:
        """Keep growing the buffer, or trim it: past silence after everything heard, or near
        ``max_buffer_ms`` after a committed sentence end (else the last committed word), as
        whisper_streaming does; the anchor word is heard again so the merge can align on it."""
        if span.final:
            return span.end_ms
        end = transcript.last_word_end_ms
        edge = span.end_ms - self.edge_guard_ms - ANCHOR_MARGIN_MS
        if not interim and transcript.words and span.start_ms < end < edge - SILENT_TAIL_MS:
            # Everything heard is committed and silence follows: no need to hear it again.
            # Not past the edge, though: Whisper may have dropped a word cut by the span end.
            return min(end + TIME_TOLERANCE_MS, edge)
        if span.duration_ms < self.max_buffer_ms:
            return span.start_ms
        inside = transcript.recent_words(span.start_ms, limit=10_000)
        if inside:
            sentence_ends = [w for w in inside if ends_sentence(w)]
            start = (sentence_ends or inside)[-1].start_ms - ANCHOR_MARGIN_MS
        elif interim:
            start = interim[0].start_ms - ANCHOR_MARGIN_MS
        else:
            start = edge
        start = max(start, span.start_ms + _min_progress_ms(span, committed))
        return min(start, span.end_ms)


def _agreed_length(previous: Sequence[Word], current: Sequence[Word], moved_ms: int) -> int:
    """Length of the longest prefix of ``current`` whose words equal ``previous`` (normalised).

    Zero unless the span end moved by ``MIN_AGREEMENT_MOVE_MS`` since ``previous``: two spans
    ending at almost the same point cut a word the same way, and agreeing on that fragment
    would commit it.
    """
    if moved_ms < MIN_AGREEMENT_MOVE_MS:
        return 0
    agreed = 0
    for old, new in zip(previous, current, strict=False):
        if normalize(old.text) != normalize(new.text):
            break
        agreed += 1
    return agreed


def usable_ms(buffer_ms: int) -> int:
    """The longest span a session with a ``buffer_ms`` audio buffer can wait for: three
    quarters of it, below the 80 % backpressure mark."""
    return buffer_ms * 3 // 4


def make_policy(
    name: PolicyName,
    window_ms: int,
    overlap_ms: int,
    buffer_ms: int | None = None,
    *,
    interim_spans: bool = True,
) -> StreamingPolicy:
    """The session's policy for the server's ``streaming_policy`` setting (ValueError if the
    name is unknown: settings are read as strings). ``buffer_ms`` bounds every span to what
    the session's buffer holds below its backpressure mark; ``interim_spans=False``: the
    session runs interim passes itself, short windows send none of their own."""
    if name == "windowed":
        max_span_ms = None
        if buffer_ms is not None:
            max_span_ms = min(max(SHORT_MAX_SPAN_MS, 3 * window_ms), usable_ms(buffer_ms))
        return WindowedPolicy(
            window_ms, overlap_ms, max_span_ms=max_span_ms, interim_spans=interim_spans
        )
    if name == "local_agreement":
        return LocalAgreementPolicy(min(1000, window_ms // 2), max_buffer_ms=window_ms)
    raise ValueError(f"streaming policy must be one of {', '.join(POLICY_NAMES)}, not {name!r}")
