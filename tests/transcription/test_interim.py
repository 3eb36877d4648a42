"""Tests for transcription/interim.py and the session's interim passes: when a live session hears
its audio between windows, at the lowest priority, and what it does with the
answer. Hand-made segments stand in for the model."""

from __future__ import annotations

import math

import numpy as np

from transcription.events import Checkpoint, Hypothesis, Phrase
from transcription.inference.messages import JobResult, TranscribeJob
from transcription.inference.types import Segment, Word
from transcription.interim import SHORT_WINDOW_STEP_MS, InterimPasses, LiveLoad, step_ms
from transcription.limits import SessionLimits
from transcription.policy import POLICY_NAMES, PolicyName, make_policy
from transcription.policy.windowed import WindowedPolicy
from transcription.protocol import SpeechConfig
from transcription.session import Session

RATE = 16_000
FRAME_MS = 200


def speech_pcm(ms: int, pause_s: float = 0.2) -> bytes:
    """Tone "words": a loud 200 Hz tone, 300 ms each after ``pause_s`` pauses (the energy gate
    calls them speech; a pause under 150 ms ends no utterance), PCM s16le."""
    t = np.arange(ms * RATE // 1000) / RATE
    tone = 0.3 * np.sin(2 * np.pi * 200 * t) * ((t % (0.3 + pause_s)) >= pause_s)
    return (tone * 32767).astype("<i2").tobytes()


def live(window_ms: int = 5000, interim_ms: int = 1000) -> Session:
    limits = SessionLimits(vad="energy", audio_buffer_ms=30_000, interim_ms=interim_ms)
    s = Session(limits, reply_channel="reply")
    overlap_ms = window_ms // 10
    s.start("s", SpeechConfig("en", RATE, "pcm_s16le", window_ms, overlap_ms, "m"), model_id="m")
    return s


def said(job: TranscribeJob, texts: str, start_ms: int = 0, step_ms: int = 400) -> JobResult:
    """The worker's reply to ``job``: ``texts`` spoken from ``start_ms`` (window-relative)."""
    words = tuple(
        Word(t, start_ms + i * step_ms, start_ms + (i + 1) * step_ms - 50, 0.9)
        for i, t in enumerate(texts.split())
    )
    segment = Segment(texts, words[0].start_ms, words[-1].end_ms, words)
    return JobResult("s", job.window_index, job.attempt, True, (segment,), priority=job.priority)


def frames(s: Session, ms: int, start_s: float = 0.0, pause_s: float = 0.2) -> list[TranscribeJob]:
    """Feed ``ms`` of speech in real time (200 ms frames); every job sent."""
    jobs = []
    pcm = speech_pcm(ms, pause_s)
    step = FRAME_MS * RATE // 1000 * 2
    for i in range(0, len(pcm), step):
        now = start_s + (i // step + 1) * FRAME_MS / 1000
        jobs += s.feed_audio(pcm[i : i + step], now).jobs
    return jobs


def test_an_interim_pass_goes_out_after_a_second_of_speech_at_the_lowest_priority() -> None:
    """One second into a 5 s window, the audio so far is sent for a hypothesis: the interim
    channel, the encoder context of the audio present, nothing committed yet."""
    s = live()
    jobs = frames(s, 1000)
    assert [j.priority for j in jobs] == ["interim"]
    assert jobs[0].audio_s == 1.0 and jobs[0].channel == "asr.inference.m.interim"
    assert 0 < jobs[0].audio_ctx < 1500


def test_an_interim_result_is_a_pending_hypothesis_and_commits_nothing() -> None:
    """Its words go out as ``speech.hypothesis`` (pending); the first pass commits nothing."""
    s = live()
    (job,) = frames(s, 1000)
    out = s.on_result(said(job, "hello there"), 1.2)
    assert [type(e) for e in out.events] == [Hypothesis]
    hypothesis = out.events[0]
    assert isinstance(hypothesis, Hypothesis) and hypothesis.pending
    assert hypothesis.text == "hello there"
    assert s.transcript.words == [] and out.jobs == []


def test_one_interim_pass_in_flight_the_next_after_its_answer_or_its_expiry() -> None:
    """A session never queues a second interim pass: the next waits for the answer, or for
    ``INTERIM_TTL_S`` when the worker dropped it."""
    s = live()
    (first,) = frames(s, 1000)
    assert frames(s, 400, start_s=1.0) == []  # 1.4 s: the first is still in flight
    s.on_result(said(first, "hello"), 1.4)
    assert [j.priority for j in frames(s, 600, start_s=1.4)] == ["interim"]  # at 2.0 s
    # Never answered (dropped by a busy worker): the next one after the TTL, at 3.6 s.
    late = frames(s, 1600, start_s=2.0)
    assert [j.audio_s for j in late] == [3.6]


def test_no_interim_pass_while_a_window_is_in_flight_and_a_window_resets_the_step() -> None:
    """The window's own result shows its audio: interim passes resume a second of speech
    after the window's end, once its result is in."""
    s = live()
    jobs = []
    for second in range(5):
        for job in frames(s, 1000, start_s=second):
            jobs.append(job)
            if job.priority == "interim":
                s.on_result(said(job, "word"), second + 1)
    window = [j for j in jobs if j.priority == "live"]
    assert len(window) == 1 and 3.75 <= window[0].audio_s <= 5.0  # cut at a pause
    assert frames(s, 1000, start_s=5.0) == []  # the window is in flight
    s.on_result(said(window[0], "one two three four five six seven eight nine ten", 0, 480), 6)
    assert [j.priority for j in frames(s, 1000, start_s=6.0)] == ["interim"]


def test_an_interim_result_overtaken_by_the_window_is_dropped() -> None:
    """An interim pass answered after the window that heard its audio shows nothing (its text
    would be older than the phrase)."""
    s = live()
    jobs = frames(s, 4000)
    interim = jobs[-1]
    assert interim.priority == "interim"
    window = frames(s, 1000, start_s=4.0)[-1]  # sent before the interim pass was answered
    assert window.priority == "live"
    out = s.on_result(said(window, "one two three four five six seven eight nine ten", 0, 480), 5)
    assert any(isinstance(e, Phrase) for e in out.events)
    assert s.on_result(said(interim, "one two three four five"), 5.1).events == []


def test_interim_words_already_committed_are_not_shown_again() -> None:
    """After a window committed its words, an interim pass over the overlap shows only the
    words after the transcript."""
    s = live()
    window = [j for j in frames(s, 5000) if j.priority == "live"][0]
    s.on_result(said(window, "one two three four five six seven eight nine ten", 0, 480), 5)
    committed = [w.text for w in s.transcript.words]
    (interim,) = [j for j in frames(s, 1000, start_s=5.0) if j.priority == "interim"]
    start_ms = s.buffer.start_ms
    # The pass hears from the buffer's start: the last committed words, then new ones.
    tail = [w for w in s.transcript.words if w.end_ms > start_ms]
    heard = " ".join([*(w.text for w in tail), "eleven", "twelve"])
    offset = tail[0].start_ms - start_ms if tail else 0
    out = s.on_result(said(interim, heard, offset, 480), 6.2)
    (hypothesis,) = [e for e in out.events if isinstance(e, Hypothesis)]
    assert hypothesis.text.split()[-2:] == ["eleven", "twelve"]
    assert not set(hypothesis.text.split()) & set(committed[-len(tail) :] if tail else [])


def test_no_interim_pass_on_silence() -> None:
    """Silence is not heard for a hypothesis."""
    s = live()
    silent = bytes(2 * RATE * 3)
    jobs = []
    for i in range(0, len(silent), 6400):
        jobs += s.feed_audio(silent[i : i + 6400], (i // 6400 + 1) * 0.2).jobs
    assert jobs == []


def test_interim_passes_are_off_with_interim_ms_zero() -> None:
    """``WSS_INTERIM_MS=0``: the session sends windows only."""
    s = live(interim_ms=0)
    assert frames(s, 4000) == []


def test_short_windows_leave_their_hypotheses_to_the_interim_passes() -> None:
    """With interim passes on, a 2 s window policy sends no interim-only span of its own (it
    would hold the session's one window slot, at full priority)."""
    s = live(window_ms=2000)
    jobs = frames(s, 3000, pause_s=0.1)
    assert {j.priority for j in jobs} == {"interim"}
    assert isinstance(s.configured.policy, WindowedPolicy)
    assert not s.configured.policy.interim_spans


def test_at_short_windows_what_two_interim_passes_agree_on_is_a_phrase() -> None:
    """At 2 s windows a sentence without a pause is not left to its pause: the words two
    consecutive interim passes agree on go out as a ``speech.phrase`` and a checkpoint, the
    rest as a pending hypothesis."""
    s = live(window_ms=2000)
    (first,) = frames(s, 1000, pause_s=0.1)
    out = s.on_result(said(first, "hello there", step_ms=200), 1.2)
    assert [type(e) for e in out.events] == [Hypothesis] and s.transcript.words == []
    (second,) = frames(s, 1000, start_s=1.0, pause_s=0.1)
    out = s.on_result(said(second, "hello there general kenobi", step_ms=200), 2.2)
    assert [type(e) for e in out.events] == [Phrase, Hypothesis, Checkpoint]
    phrase, hypothesis = out.events[0], out.events[1]
    assert isinstance(phrase, Phrase) and phrase.text == "hello there"
    assert isinstance(hypothesis, Hypothesis) and hypothesis.text == "general kenobi"
    assert s.transcript.text == "hello there"


def test_interim_passes_are_more_frequent_at_short_windows() -> None:
    """At windows under 4 s the passes also commit, so they run every ``SHORT_WINDOW_STEP_MS``
    (at most ``WSS_INTERIM_MS``; 0 keeps them off); longer windows keep ``WSS_INTERIM_MS``."""
    for name in POLICY_NAMES:

        def step(interim_ms: int, window_ms: int, name: PolicyName = name) -> int:
            return step_ms(interim_ms, short_window=make_policy(name, window_ms, 0).short_window)

        assert step(1000, 2000) == SHORT_WINDOW_STEP_MS < 1000
        assert step(500, 2000) == 500 and step(0, 2000) == 0
        assert step(1000, 4000) == step(1000, 5000) == 1000
    first_pass_s = math.ceil(SHORT_WINDOW_STEP_MS / FRAME_MS) * FRAME_MS / 1000
    jobs = frames(live(window_ms=2000), 1000, pause_s=0.1)
    assert [j.audio_s for j in jobs] == [first_pass_s]


def test_interim_passes_decode_with_the_session_beam_where_they_commit() -> None:
    """Greedy where a pass is only a caption (5 s windows); the session's beam at windows under
    4 s, where what two passes agree on is final."""
    for window_ms, beam in ((5000, 1), (2000, 5)):
        limits = SessionLimits(vad="energy", interim_ms=1000, beam_size=5)
        s = Session(limits, reply_channel="reply")
        config = SpeechConfig("en", RATE, "pcm_s16le", window_ms, window_ms // 10, "m")
        s.start("s", config, model_id="m")
        (job,) = frames(s, 1000, pause_s=0.1)
        assert job.priority == "interim" and job.beam_size == beam


def test_at_long_windows_interim_passes_commit_nothing() -> None:
    """At 4 s windows and more the windows commit soon enough: passes only show."""
    s = live(window_ms=5000)
    (first,) = frames(s, 1000, pause_s=0.1)
    s.on_result(said(first, "hello there"), 1.2)
    (second,) = frames(s, 1000, start_s=1.0, pause_s=0.1)
    out = s.on_result(said(second, "hello there general kenobi"), 2.2)
    assert [type(e) for e in out.events] == [Hypothesis] and s.transcript.words == []


def test_due_needs_a_step_of_new_speech_after_what_was_shown() -> None:
    """``InterimPasses.due``: a step of audio after the last pass or window, holding speech."""

    class Buffer:
        start_ms, end_ms = 0, 900

        def has_speech(self, start_ms: int, end_ms: int, min_speech_ms: int = 100) -> bool:
            return True

    passes = InterimPasses(1000)
    buffer = Buffer()
    assert passes.due(buffer, 0.9) is None  # type: ignore[arg-type]
    buffer.end_ms = 1000
    assert passes.due(buffer, 1.0) == (0, 1000)  # type: ignore[arg-type]
    passes.window_sent(1500)
    buffer.end_ms = 2400
    assert passes.due(buffer, 2.4) is None  # type: ignore[arg-type]
    buffer.end_ms = 2500
    assert passes.due(buffer, 2.5) == (0, 2500)  # type: ignore[arg-type]


def test_live_load_is_the_busy_share_of_the_last_seconds() -> None:
    """``LiveLoad``: running and finished jobs within the horizon, per slot; older ones drop."""
    load = LiveLoad(horizon_s=10.0)
    assert load.share(100.0) == 0.0
    token = load.start(95.0)
    assert load.share(100.0) == 0.5  # running for 5 of the last 10 s
    assert load.share(100.0, slots=2) == 0.25
    load.stop(token, 98.0)
    assert load.share(100.0) == 0.3
    assert load.share(120.0) == 0.0
