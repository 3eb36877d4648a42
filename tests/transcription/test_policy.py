"""Tests for transcription/policy/: which span to transcribe next and what to commit."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.words import timeline
from transcription.inference.types import Word
from transcription.policy import make_policy
from transcription.policy.base import SHORT_WINDOW_MS, Decision, Span, StreamingPolicy
from transcription.policy.local_agreement import LocalAgreementPolicy
from transcription.policy.windowed import SHORT_MAX_SPAN_MS, WindowedPolicy
from transcription.transcript import Transcript, normalize

VOCABULARY = sorted(
    set(
        """
        might be prudently to consider whether the river crossing should wait until morning
        because travellers often underestimate how quickly weather changes across open water
        while local guides recommend patience careful planning and sturdy boots for every
        journey north beyond village bridges mountains forests lantern harbour whistle copper
        meadow silver thunder orchard velvet candle marble pepper saddle timber anchor basket
        cobalt dolphin ember falcon glacier hollow island jasper kettle ladder mirror nectar
        """.split()
    )
)
JITTER_MS = 300

Whisper = Callable[[Span], list[Word]]


class StandInBuffer:
    """Stand-in for ``transcription.audio.buffer.AudioBuffer`` over a known speech timeline."""

    def __init__(self, speech: Sequence[tuple[int, int]], start_ms: int = 0) -> None:
        self.speech = sorted(speech)
        self.start_ms = start_ms
        self.end_ms = start_ms

    @property
    def buffered_ms(self) -> int:
        return self.end_ms - self.start_ms

    def feed(self, ms: int) -> None:
        self.end_ms += ms

    def window(self, start_ms: int, end_ms: int) -> np.ndarray:
        # The real buffer cannot return audio it released or has not received.
        assert self.start_ms <= start_ms < end_ms <= self.end_ms, (start_ms, end_ms, self)
        return np.zeros((end_ms - start_ms) * 16, dtype=np.float32)

    def speech_spans(self, start_ms: int, end_ms: int) -> list[tuple[int, int]]:
        return [
            (max(s, start_ms), min(e, end_ms))
            for s, e in self.speech
            if s < end_ms and e > start_ms
        ]

    def speech_ratio(self, start_ms: int, end_ms: int) -> float:
        spoken = sum(e - s for s, e in self.speech_spans(start_ms, end_ms))
        return spoken / max(1, end_ms - start_ms)

    def has_speech(self, start_ms: int, end_ms: int, min_speech_ms: int = 100) -> bool:
        return sum(e - s for s, e in self.speech_spans(start_ms, end_ms)) >= min_speech_ms

    def pause_near(self, end_ms: int, search_ms: int, min_pause_ms: int = 150) -> int | None:
        lo = max(self.start_ms, end_ms - search_ms)
        pauses, at = [], lo
        for s, e in [*self.speech_spans(lo, end_ms), (end_ms, end_ms)]:
            if s - at >= min_pause_ms:
                pauses.append((at + s) // 2)
            at = max(at, e)
        return pauses[-1] if pauses else None

    def release(self, until_ms: int) -> None:
        assert until_ms >= self.start_ms, "released audio cannot come back"
        self.start_ms = min(until_ms, self.end_ms)

    def __repr__(self) -> str:
        return f"StandInBuffer({self.start_ms}..{self.end_ms})"


def texts(words: Sequence[Word]) -> list[str]:
    return [w.text for w in words]


def perfect_whisper(truth: Sequence[Word]) -> Whisper:
    """Whisper that hears exactly the words lying wholly inside the span."""
    return lambda span: [
        w for w in truth if span.start_ms <= w.start_ms and w.end_ms <= span.end_ms
    ]


def jittery_whisper(truth: Sequence[Word], rng: random.Random) -> Whisper:
    """Whisper as windows see it: the ground-truth words inside the span with times off by up to
    ±300 ms, and a word cut by a span edge mangled to the part heard (or missed)."""

    def transcribe(span: Span) -> list[Word]:
        heard = []
        for word in truth:
            if word.end_ms <= span.start_ms or word.start_ms >= span.end_ms:
                continue
            text = word.text
            cut_start, cut_end = word.start_ms < span.start_ms, word.end_ms > span.end_ms
            if cut_start or cut_end:
                if rng.random() < 0.3:
                    continue
                inside = min(word.end_ms, span.end_ms) - max(word.start_ms, span.start_ms)
                keep = max(1, math.ceil(len(text) * inside / (word.end_ms - word.start_ms)))
                text = text[:keep] if cut_end else text[-keep:]
            start = word.start_ms + rng.randint(-JITTER_MS, JITTER_MS)
            end = word.end_ms + rng.randint(-JITTER_MS, JITTER_MS)
            start = min(max(start, span.start_ms), span.end_ms)
            heard.append(Word(text, start, min(max(end, start), span.end_ms), 0.8))
        return heard

    return transcribe


class Run:
    """One simulated session: feed audio, transcribe each span the policy asks for at once."""

    def __init__(self, policy: StreamingPolicy, truth: Sequence[Word], whisper: Whisper) -> None:
        self.policy = policy
        self.whisper = whisper
        self.buffer = StandInBuffer([(w.start_ms, w.end_ms) for w in truth])
        self.transcript = Transcript()
        self.spans: list[Span] = []
        self.decisions: list[Decision] = []

    def feed(self, ms: int, *, chunk_ms: int = 250) -> None:
        for _ in range(ms // chunk_ms):
            self.buffer.feed(chunk_ms)
            self.drain(final=False)

    def finish(self) -> None:
        self.drain(final=True)

    def drain(self, *, final: bool) -> None:
        for _ in range(10_000):
            span = self.policy.next_span(self.buffer, final=final)
            if span is None:
                return
            self.buffer.window(span.start_ms, span.end_ms)
            self.spans.append(span)
            if self.buffer.has_speech(span.start_ms, span.end_ms):
                decision = self.policy.on_result(span, self.whisper(span), self.transcript)
            else:
                decision = self.policy.on_skipped(span)
            self.decisions.append(decision)
            self.buffer.release(min(decision.release_ms, self.buffer.end_ms))
        pytest.fail("the policy never stopped asking for spans")

    def interim_pass(self, *, commit: bool = True) -> Decision:
        """An interim pass (``interim.py``): the buffer from its start to its end, heard for
        ``speech.hypothesis``; the policy decides what it commits."""
        span = Span(self.buffer.start_ms, self.buffer.end_ms, final=False, interim_only=True)
        words = self.whisper(span)
        decision = self.policy.on_interim(span, words, self.transcript, commit=commit)
        self.decisions.append(decision)
        self.buffer.release(min(decision.release_ms, self.buffer.end_ms))
        return decision

    @property
    def words(self) -> list[str]:
        return [normalize(w.text) for w in self.transcript.words]


@st.composite
def spoken(draw: st.DrawFn) -> list[Word]:
    """A ground-truth word timeline: distinct words, short gaps, pauses and long silences."""
    tokens = draw(st.lists(st.sampled_from(VOCABULARY), min_size=1, max_size=60, unique=True))
    words, at = [], draw(st.integers(0, 3000))
    for token in tokens:
        duration = draw(st.integers(150, 700))
        words.append(Word(token, at, at + duration, 0.9))
        gap = draw(st.sampled_from(["word", "word", "word", "pause", "silence"]))
        at += (
            duration
            + {
                "word": draw(st.integers(0, 120)),
                "pause": draw(st.integers(150, 1500)),
                "silence": draw(st.integers(3000, 9000)),
            }[gap]
        )
    return words


# --- windowed ---


def test_windowed_waits_until_a_full_window_is_buffered() -> None:
    """No span before window_ms of audio; then the first window from the buffer start."""
    policy = WindowedPolicy(5000, 500, pause_wait_ms=0)
    buffer = StandInBuffer([(0, 60_000)])
    buffer.feed(4999)
    assert policy.next_span(buffer, final=False) is None
    buffer.feed(1)
    assert policy.next_span(buffer, final=False) == Span(0, 5000, final=False)


def test_windowed_next_span_starts_overlap_before_the_last_committed_word_end() -> None:
    """After a window, the next starts overlap_ms before the end of its last committed word."""
    truth = timeline("one two three four five six seven eight nine ten eleven twelve", gap_ms=50)
    policy = WindowedPolicy(3000, 1000, pause_wait_ms=0, short_window_ms=0)
    run = Run(policy, truth, perfect_whisper(truth))
    run.feed(3000)
    first = run.decisions[0]
    assert run.spans[0] == Span(0, 3000, final=False)
    assert texts(first.committed) == ["one", "two", "three", "four", "five", "six", "seven"]
    assert first.release_ms == first.committed[-1].end_ms - 1000


def test_windowed_cuts_the_span_at_a_pause_in_the_last_quarter() -> None:
    """A pause in the window's last quarter ends the span in its middle; all words commit."""
    truth = [*timeline("alpha beta gamma delta", word_ms=900, gap_ms=100), Word("x", 4300, 6000, 1)]
    run = Run(WindowedPolicy(5000, 500), truth, perfect_whisper(truth))
    run.feed(5000)
    assert run.spans[0] == Span(0, 4100, final=False, at_pause=True)  # pause 3900-4300
    assert texts(run.decisions[0].committed) == ["alpha", "beta", "gamma", "delta"]


def test_windowed_marks_the_span_after_a_pause_cut_as_hearing_no_committed_word() -> None:
    """The span after a pause cut starts in silence after every committed word, so the merge
    treats all its words as new; a span that re-hears the overlap is not marked."""
    truth = [*timeline("alpha beta gamma delta", word_ms=900, gap_ms=100), Word("x", 4300, 6000, 1)]
    truth += timeline(" ".join(VOCABULARY[:40]), start_ms=6100, gap_ms=50)  # no pause
    run = Run(WindowedPolicy(5000, 500), truth, perfect_whisper(truth))
    run.feed(20000)
    assert run.spans[0].at_pause and not run.spans[0].after_pause
    assert run.spans[1].after_pause and run.spans[1].start_ms == run.spans[0].end_ms
    overlapping = [
        s for s in run.spans[1:] if s.start_ms < run.spans[run.spans.index(s) - 1].end_ms
    ]
    assert overlapping and not any(s.after_pause for s in overlapping)


def test_short_windows_commit_at_pauses_and_send_interim_passes_between() -> None:
    """Below 4 s, a window commits only up to a pause; before the pause every window gives an
    interim-only pass over the utterance so far, and nothing is committed twice."""
    truth = [
        *timeline("one two three four five six seven", word_ms=400, gap_ms=50),  # to 3150
        *timeline("eight nine ten", start_ms=4000, word_ms=400, gap_ms=50),
    ]
    run = Run(WindowedPolicy(2000, 200), truth, perfect_whisper(truth))
    run.feed(2000)
    assert run.spans[0] == Span(0, 2000, final=False, interim_only=True)
    assert run.decisions[0].committed == [] and texts(run.decisions[0].interim)[:4] == [
        "one",
        "two",
        "three",
        "four",
    ]
    run.feed(2000)
    assert run.spans[1].at_pause and 3150 < run.spans[1].end_ms < 4000
    assert texts(run.decisions[1].committed) == "one two three four five six seven".split()
    run.feed(2000)
    run.finish()
    assert run.transcript.text == "one two three four five six seven eight nine ten"


def test_short_windows_commit_what_two_consecutive_interim_passes_agree_on() -> None:
    """Below 4 s, with the session's interim passes every second, a word is committed once two
    consecutive passes over the growing utterance agree on it (LocalAgreement-2); the rest
    stays a hypothesis. The window at the pause hears the whole utterance again and commits
    the rest, repeating nothing."""
    truth = timeline("one two three four five six seven eight nine ten", gap_ms=100)  # to 3900
    run = Run(WindowedPolicy(2000, 200, interim_spans=False), truth, perfect_whisper(truth))
    committed, interim = [], []
    for _ in range(3):
        run.feed(1000)
        decision = run.interim_pass()
        committed.append(texts(decision.committed))
        interim.append(texts(decision.interim))
    assert committed == [[], ["one", "two"], ["three", "four", "five"]]
    assert interim == [["one", "two"], ["three", "four", "five"], ["six", "seven"]]
    assert run.spans == []  # no pause yet: no window
    assert [d.release_ms for d in run.decisions] == [0, 0, 0]  # the utterance is heard whole
    run.feed(2000)
    assert run.spans[0].at_pause and run.spans[0].start_ms == 0
    assert texts(run.decisions[-1].committed) == ["six", "seven", "eight", "nine", "ten"]
    assert run.transcript.text == "one two three four five six seven eight nine ten"


def test_an_interim_pass_does_not_commit_the_words_at_its_audio_edge() -> None:
    """Two passes agreeing on a word that ends within the edge guard (500 ms at 2 s windows)
    of the second pass's end do not commit it: Whisper squeezes the times of the words at the
    audio edge, and a later window would place the next word before them."""
    truth = timeline("one two three four five six", gap_ms=100)  # five: 1600-1900
    run = Run(WindowedPolicy(2000, 200, interim_spans=False), truth, perfect_whisper(truth))
    run.feed(2000)
    run.interim_pass()
    run.feed(250)
    decision = run.interim_pass()
    assert texts(decision.committed) == ["one", "two", "three", "four"]  # four ends at 1500
    assert texts(decision.interim)[0] == "five"


def test_a_window_over_words_interim_passes_committed_cuts_them_by_text() -> None:
    """The window at the pause hears the utterance the passes committed the start of with word
    times of its own (here squeezed and over a second late, too far apart for the merge to
    pair them): the committed words are cut by their text, none repeated or lost."""
    truth = timeline("one two three four five six seven", gap_ms=100)  # to 2700, then silence
    perfect = perfect_whisper(truth)

    def drifting(span: Span) -> list[Word]:
        if span.interim_only:
            return perfect(span)
        return [
            replace(w, start_ms=1200 + w.start_ms // 2, end_ms=1200 + w.end_ms // 2)
            for w in perfect(span)
        ]

    run = Run(WindowedPolicy(2000, 200, interim_spans=False), truth, drifting)
    run.feed(1000)
    run.interim_pass()
    run.feed(1000)
    assert texts(run.interim_pass().committed) == ["one", "two"]
    run.feed(2000)
    assert texts(run.decisions[-1].committed) == ["three", "four", "five", "six", "seven"]
    assert run.transcript.text == "one two three four five six seven"


def test_words_passes_committed_in_a_span_the_speech_gate_then_skips_are_not_repeated() -> None:
    """Whisper places the first word of an utterance at the start of the audio it hears, here
    in the silence before it: two passes agree on "we" there and commit it, then the speech
    gate finds that stretch silent and the span over it is skipped. The window at the next
    pause hears "we" again: it is cut by its text, not sent twice ("we | we saw")."""
    truth = timeline("we saw destruction in tragedy", start_ms=1000)  # to 2900, then silence

    def early(span: Span) -> list[Word]:
        heard = perfect_whisper(truth)(span)
        shift = heard[0].start_ms - span.start_ms if heard else 0
        return [replace(w, start_ms=w.start_ms - shift, end_ms=w.end_ms - shift) for w in heard]

    run = Run(WindowedPolicy(2000, 200, interim_spans=False), truth, early)
    run.feed(1500)
    run.interim_pass()
    run.feed(250)
    assert texts(run.interim_pass().committed) == ["we"]  # placed at 0-300
    run.feed(250)
    assert not run.buffer.has_speech(run.spans[0].start_ms, run.spans[0].end_ms)  # skipped
    run.feed(1500)
    run.finish()
    assert run.transcript.text == "we saw destruction in tragedy"


def test_an_interim_pass_commits_no_word_the_pass_after_it_heard_differently() -> None:
    """A word at the audio edge is often heard in part ("sad" for "sat"): two passes must agree
    on it before it is committed."""
    whisper = scripted("the cat sad", "the cat sat on", "the cat sat on a mat")
    run = Run(WindowedPolicy(2000, 200, interim_spans=False), [], whisper)
    run.buffer.speech = [(0, 10_000)]
    committed = []
    for _ in range(3):
        run.feed(1000)
        committed.append(texts(run.interim_pass().committed))
    assert committed == [[], ["the", "cat"], ["sat", "on"]]


def test_interim_passes_commit_nothing_at_long_windows_or_when_told_not_to() -> None:
    """At 4 s windows and more the windows commit soon enough: interim passes only show; and
    no interim pass commits while a window or a flush is in flight (``commit=False``)."""
    truth = timeline("one two three four five six seven eight nine ten", gap_ms=100)
    for policy, commit in (
        (WindowedPolicy(5000, 500, interim_spans=False), True),
        (WindowedPolicy(2000, 200, interim_spans=False), False),
    ):
        run = Run(policy, truth, perfect_whisper(truth))
        for _ in range(3):
            run.feed(1000)
            decision = run.interim_pass(commit=commit)
            assert decision.committed == [] and decision.release_ms == 0
        assert texts(decision.interim) == ["one", "two", "three", "four", "five", "six", "seven"]
        assert run.transcript.words == []


def test_windowed_waits_a_quarter_window_for_a_pause_past_the_window() -> None:
    """Speech running past the window end: the span waits up to W/4 for the pause after it."""
    truth = [*timeline("alpha beta gamma delta epsilon", word_ms=1000, gap_ms=60)]  # to 5240
    run = Run(WindowedPolicy(5000, 500), truth, perfect_whisper(truth))
    run.feed(5000)
    assert run.spans == []  # no pause yet: wait rather than cut "epsilon"
    run.feed(1250)
    assert run.spans[0].at_pause and 5240 < run.spans[0].end_ms <= 6250
    assert texts(run.decisions[0].committed) == ["alpha", "beta", "gamma", "delta", "epsilon"]


def test_windowed_ignores_a_pause_before_the_last_quarter() -> None:
    """A pause early in the window does not shorten the span."""
    truth = [Word("early", 0, 1000, 1), Word("late", 2000, 6000, 1)]
    run = Run(WindowedPolicy(5000, 500, pause_wait_ms=0), truth, perfect_whisper(truth))
    run.feed(5000)
    assert run.spans[0] == Span(0, 5000, final=False)


def test_windowed_holds_back_words_near_a_cut_edge_and_commits_them_next_window() -> None:
    """A word ending within edge_guard_ms of a cut span end is interim, then committed whole."""
    truth = timeline("a b c d e f g h i j k l m n o", word_ms=300, gap_ms=50)
    heard = [*truth[:13], Word("n", 4550, 4990, 0.9)]  # "m" ends 4500; "n" (to 4850) cut
    run = Run(
        WindowedPolicy(5000, 500, edge_guard_ms=500, pause_wait_ms=0), truth, lambda span: heard
    )
    run.feed(5000)
    first = run.decisions[0]
    assert texts(first.interim) == ["n"]
    assert texts(first.committed)[-1] == "m"
    assert first.release_ms <= truth[13].start_ms - 300
    run.whisper = perfect_whisper(truth)
    run.feed(500)
    run.finish()
    assert run.transcript.text == " ".join("abcdefghijklmno")


def test_windowed_always_progresses_even_when_nothing_is_committed() -> None:
    """With no words back (or overlap = window - 1), each span starts later than the last."""
    truth = [Word("hum", 0, 30_000, 0.5)]
    for overlap in (500, 4999):
        run = Run(WindowedPolicy(5000, overlap), truth, lambda span: [])
        run.feed(30_000)
        run.finish()
        starts = [s.start_ms for s in run.spans]
        assert starts == sorted(set(starts))
        assert all(s.duration_ms <= 5000 for s in run.spans)
        assert run.spans[-1].end_ms == 30_000


def test_windowed_final_flush_commits_the_rest() -> None:
    """On speech.end the remaining audio is one final span whose words all commit."""
    truth = timeline("the last words of the session", start_ms=1000)
    run = Run(WindowedPolicy(5000, 500), truth, perfect_whisper(truth))
    run.feed(3500)
    assert run.spans == []
    run.finish()
    assert run.spans == [Span(0, 3500, final=True)]
    assert run.transcript.text == "the last words of the session"
    assert run.decisions[-1].release_ms == 3500
    assert run.policy.next_span(run.buffer, final=True) is None


def test_windowed_skipped_silence_is_released_except_a_short_tail() -> None:
    """A silent span is released up to a short tail; a final silent span entirely."""
    policy = WindowedPolicy(5000, 500)
    skipped = policy.on_skipped(Span(0, 5000, final=False))
    assert (skipped.committed, skipped.interim) == ([], [])
    assert 4000 <= skipped.release_ms < 5000
    assert policy.on_skipped(Span(4700, 6000, final=True)).release_ms == 6000


def test_windowed_silence_commits_nothing() -> None:
    """A session of silence skips every span and commits no text."""
    run = Run(WindowedPolicy(5000, 500), [], lambda span: pytest.fail("silence transcribed"))
    run.feed(30_000)
    run.finish()
    assert run.transcript.text == ""
    assert all(not d.committed for d in run.decisions)


@settings(max_examples=150, deadline=None)
@given(
    truth=spoken(),
    window_ms=st.sampled_from([2000, 3000, 5000, 8000]),
    overlap_ms=st.sampled_from([0, 200, 500, 1000]),
    chunk_ms=st.sampled_from([100, 250, 1000]),
    rng=st.randoms(use_true_random=False),
)
def test_a_word_heard_only_once_is_never_lost(
    truth: list[Word], window_ms: int, overlap_ms: int, chunk_ms: int, rng: random.Random
) -> None:
    """Windows cut by the policy, heard with jitter and mangled edges, join to the truth."""
    run = Run(WindowedPolicy(window_ms, overlap_ms), truth, jittery_whisper(truth, rng))
    total = truth[-1].end_ms + rng.randint(0, 3000)
    run.feed(total - total % chunk_ms, chunk_ms=chunk_ms)
    run.buffer.feed(total % chunk_ms)
    run.finish()
    assert run.words == [w.text for w in truth]
    # Short windows transcribe the utterance up to its pause (at most SHORT_MAX_SPAN_MS);
    # interim-only passes commit nothing and do not move the start.
    longest = window_ms + window_ms // 4
    if window_ms < SHORT_WINDOW_MS:
        longest = max(SHORT_MAX_SPAN_MS, 3 * window_ms)
    assert all(span.duration_ms <= longest for span in run.spans)
    starts = [span.start_ms for span in run.spans if not span.interim_only]
    assert starts == sorted(set(starts)), "every committing step advances"


@settings(max_examples=150, deadline=None)
@given(
    truth=spoken(),
    window_ms=st.sampled_from([1000, 2000, 3000]),
    pass_ms=st.sampled_from([500, 1000]),
    rng=st.randoms(use_true_random=False),
)
def test_interim_pass_commits_at_short_windows_never_lose_or_repeat_a_word(
    truth: list[Word], window_ms: int, pass_ms: int, rng: random.Random
) -> None:
    """Interim passes every ``pass_ms`` between short windows, all heard with jitter and mangled
    edges, commit words that the windows then join to the truth."""
    policy = WindowedPolicy(window_ms, window_ms // 10, interim_spans=False)
    run = Run(policy, truth, jittery_whisper(truth, rng))
    total = truth[-1].end_ms + rng.randint(0, 3000)
    for _ in range(total // pass_ms):
        run.feed(pass_ms, chunk_ms=pass_ms // 2)
        if run.buffer.has_speech(run.buffer.start_ms, run.buffer.end_ms):
            run.interim_pass()
    run.buffer.feed(total % pass_ms)
    run.finish()
    assert run.words == [w.text for w in truth]


# --- local agreement ---


def scripted(*hypotheses: str, start_ms: int = 0) -> Whisper:
    """Whisper returning the given hypotheses, one per call, as back-to-back words."""
    calls = iter(hypotheses)
    return lambda span: timeline(next(calls), start_ms=start_ms)


def test_local_agreement_commits_only_the_prefix_two_hypotheses_agree_on() -> None:
    """A word is committed once two consecutive hypotheses agree on it; the rest is interim."""
    whisper = scripted("the cat", "the cat sad", "the cat sat on", "the cat sat on a mat")
    run = Run(LocalAgreementPolicy(min_chunk_ms=1000, max_buffer_ms=10_000), [], whisper)
    run.buffer.speech = [(0, 10_000)]
    committed, interim = [], []
    for _ in range(4):
        run.feed(1000)
        committed.append(texts(run.decisions[-1].committed))
        interim.append(texts(run.decisions[-1].interim))
    assert committed == [[], ["the", "cat"], [], ["sat", "on"]]
    assert interim == [["the", "cat"], ["sad"], ["sat", "on"], ["a", "mat"]]
    assert run.transcript.text == "the cat sat on"


def test_local_agreement_transcribes_the_growing_buffer_every_min_chunk() -> None:
    """Spans start at the last committed point and grow by min_chunk_ms of new audio."""
    truth = timeline("one two three four five six seven eight", gap_ms=100)
    run = Run(LocalAgreementPolicy(min_chunk_ms=1000, max_buffer_ms=20_000), truth, lambda s: [])
    run.feed(3500)
    assert [(s.start_ms, s.end_ms) for s in run.spans] == [(0, 1000), (0, 2000), (0, 3000)]


def test_local_agreement_trims_at_a_committed_sentence_end() -> None:
    """Near max_buffer_ms the buffer restarts at the last committed sentence end, not at the
    last committed word, hearing that sentence's last word again."""
    truth = timeline("Good morning everyone. Hello there how are you", word_ms=400)
    run = Run(LocalAgreementPolicy(1000, max_buffer_ms=3000), truth, perfect_whisper(truth))
    run.feed(2000)
    assert run.decisions[-1].release_ms == 0  # the buffer still grows
    run.feed(1000)
    assert run.transcript.text == "Good morning everyone. Hello"
    assert run.decisions[-1].release_ms == 1000 - 400  # "everyone." starts at 1000
    run.feed(1000)
    assert run.spans[3].start_ms == 600


def test_local_agreement_final_commits_everything() -> None:
    """On speech.end the last hypothesis is committed whole."""
    truth = timeline("good night and good luck", gap_ms=100)
    run = Run(LocalAgreementPolicy(1000, 10_000), truth, perfect_whisper(truth))
    run.feed(2000)
    run.finish()
    assert run.transcript.text == "good night and good luck"
    assert run.spans[-1].final
    assert run.policy.next_span(run.buffer, final=True) is None


def test_local_agreement_stays_bounded_when_hypotheses_never_agree() -> None:
    """A buffer that reaches max_buffer_ms is committed like a window, so the session advances."""
    counter = iter(range(10_000))
    truth = [Word("hum", 0, 40_000, 0.5)]

    def unstable(span: Span) -> list[Word]:
        n = next(counter)
        return [
            Word(f"w{n}x{i}", t, t + 300, 0.5)
            for i, t in enumerate(range(span.start_ms, span.end_ms - 300, 400))
        ]

    run = Run(LocalAgreementPolicy(1000, max_buffer_ms=5000), truth, unstable)
    run.feed(40_000)
    assert all(span.duration_ms <= 5000 for span in run.spans)
    assert run.buffer.start_ms > 30_000
    assert run.transcript.words


@settings(max_examples=60, deadline=None)
@given(
    truth=spoken(),
    window_ms=st.sampled_from([3000, 5000, 8000]),
    rng=st.randoms(use_true_random=False),
)
def test_local_agreement_never_loses_or_repeats_a_word(
    truth: list[Word], window_ms: int, rng: random.Random
) -> None:
    """LocalAgreement over jittery, edge-mangled hypotheses joins to the truth."""
    run = Run(make_policy("local_agreement", window_ms, 500), truth, jittery_whisper(truth, rng))
    run.feed(truth[-1].end_ms + 1000 - (truth[-1].end_ms + 1000) % 250)
    run.finish()
    assert run.words == [w.text for w in truth]


# --- choosing ---


def test_make_policy_builds_each_mode_and_refuses_unknown_names() -> None:
    """make_policy knows "windowed" and "local_agreement" and nothing else."""
    assert isinstance(make_policy("windowed", 5000, 500), WindowedPolicy)
    assert isinstance(make_policy("local_agreement", 5000, 500), LocalAgreementPolicy)
    with pytest.raises(ValueError, match="windowed, local_agreement"):
        make_policy("greedy", 5000, 500)
