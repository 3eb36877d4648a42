"""whisper_streaming's LocalAgreement-2 policy, and the agreement rule the windowed policy
borrows for its held-back words and interim passes.

Selected by ``WSS_STREAMING_POLICY=local_agreement``; the contract it keeps is in ``base.py``.
Latency and compute (W = window; audio time, inference time comes on top; the ratios were
measured on simulated continuous speech with ±300 ms word-time jitter): the buffer from the
last committed point is transcribed again every ``min_chunk_ms`` (1 s) of new audio; a word is
committed once two consecutive transcriptions agree on it, the rest goes out as
``speech.hypothesis``. Hypotheses arrive every second and stable text follows one to two
seconds behind the speaker, whatever W is: much lower latency. But each step re-transcribes
the whole buffer (up to ``max_buffer_ms`` = W, trimmed at a committed sentence end), so compute
is several times the windowed cost and grows with W: about 4.3x at 5 s and 11x at 20 s, plus
Whisper's fixed cost per call once a second.
"""

from __future__ import annotations

from collections.abc import Sequence

from transcription.inference.types import Word
from transcription.policy.base import (
    ANCHOR_MARGIN_MS,
    DEFAULT_EDGE_GUARD_MS,
    SHORT_WINDOW_MS,
    SILENT_TAIL_MS,
    SKIP_TAIL_MS,
    AudioBuffer,
    Decision,
    Span,
    min_progress_ms,
    split_at_guard,
    unheard,
)
from transcription.transcript import TIME_TOLERANCE_MS, Transcript, ends_sentence, normalize

# Two hypotheses only count as agreeing when their span ends differ by this much (see
# ``agreed_length``).
MIN_AGREEMENT_MOVE_MS = 200


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
        # Its buffer is the session's window. It commits nothing from interim passes, but a
        # short window keeps the pass step and beam it always had (``StreamingPolicy``).
        self.short_window = max_buffer_ms < SHORT_WINDOW_MS
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
        agreed = agreed_length(self._hypothesis, fresh, span.end_ms - previous_end)
        self._heard_until_ms = span.end_ms
        interim: list[Word]
        if span.final:
            committed, interim = fresh, []
        elif agreed == 0 and span.duration_ms >= self.max_buffer_ms:
            # No agreement within a full buffer (e.g. speech that keeps changing): commit like
            # a window, so compute stays bounded and the session advances.
            guard = min(self.edge_guard_ms, span.duration_ms // 4)
            committed, interim = split_at_guard(fresh, span.end_ms - guard)
        else:
            committed, interim = fresh[:agreed], fresh[agreed:]
        committed = transcript.commit(committed)
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
        start = max(start, span.start_ms + min_progress_ms(span, committed))
        return min(start, span.end_ms)


def agreed_length(previous: Sequence[Word], current: Sequence[Word], moved_ms: int) -> int:
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
