"""The default streaming policy: fixed windows cut at pauses, merged by word alignment.

Selected by ``WSS_STREAMING_POLICY=windowed`` (the default); the contract it keeps is in
``base.py``. Latency and compute (W = window, O = overlap; audio time, inference time comes on
top; the ratios were measured on simulated continuous speech with ±300 ms word-time jitter):

One span of at most W per step. A span ends at a pause found in its
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
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from transcription.casing import continue_case
from transcription.inference.types import Word
from transcription.policy.base import (
    ANCHOR_MARGIN_MS,
    DEFAULT_EDGE_GUARD_MS,
    SHORT_WINDOW_MS,
    SKIP_TAIL_MS,
    AudioBuffer,
    Decision,
    Span,
    min_progress_ms,
    split_at_guard,
    unheard,
)
from transcription.policy.local_agreement import agreed_length
from transcription.transcript import Transcript, drop_annotations, normalize

DEFAULT_MIN_PAUSE_MS = 150
SHORT_MAX_SPAN_MS = 8000  # a short-window utterance longer than this is cut without a pause
MIN_UTTERANCE_MS = 300  # a pause this close to the start ends nothing worth a window


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
        self.short_window = window_ms < short_window_ms  # commit at pauses (see _short_span)
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
        if self.short_window:
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
            committed, interim = split_at_guard(fresh, span.end_ms - guard)
            # Held-back words this window heard exactly as the last one did were not cut
            # (LocalAgreement-2 on the held-back part): commit them instead of waiting again.
            agreed = agreed_length(self._interim, fresh, span.end_ms - self._last_end_ms)
            if agreed > len(committed):
                committed, interim = fresh[:agreed], fresh[agreed:]
        committed = transcript.commit(committed)
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
        if not (self.short_window and commit and span.start_ms == start):
            return Decision([], unheard(span, words, transcript), start)
        fresh = self._after_passes(span, words, transcript)
        agreed = agreed_length(self._interim, fresh, span.end_ms - self._last_end_ms)
        # Not the words at the pass's audio edge, even agreed on: Whisper squeezes their times
        # into the last moments (0 ms long), and the window after them places the next word
        # earlier. They stay a hypothesis; a later pass or window commits them.
        committed, _ = split_at_guard(fresh[:agreed], span.end_ms - self.edge_guard_ms)
        interim = fresh[len(committed) :]
        if committed and not self._pass_words:
            self._clean_start = self._after_pause or not transcript.words
        committed = transcript.commit(committed)
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
            return unheard(span, words, transcript, self._interim)
        fresh = unheard(replace(span, after_pause=False), words, transcript, self._interim)
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
        """Move past a silent span, keeping a short tail for a word starting at its very end.
        Words interim passes committed stay to be cut by text (``_after_passes``): Whisper
        placed them in audio the speech gate finds silent, so they are the start of the speech
        after it, and the next span hears them again."""
        self._interim = []
        release = span.end_ms if span.final else span.end_ms - SKIP_TAIL_MS
        release = max(release, span.start_ms + min_progress_ms(span, ()))
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
            anchor = transcript.words[-1].start_ms - ANCHOR_MARGIN_MS
            start = min(end - self.overlap_ms, anchor)
        else:
            start = span.end_ms - self.overlap_ms
        # Cut mid-speech: Whisper often drops a word cut by the span end, or returns it early
        # enough to pass the guard as a fragment: hear the edge again.
        start = min(start, span.end_ms - self.edge_guard_ms - ANCHOR_MARGIN_MS)
        if interim:
            start = min(start, interim[0].start_ms - ANCHOR_MARGIN_MS)
        start = max(start, span.start_ms + min_progress_ms(span, committed))
        return min(start, span.end_ms)
