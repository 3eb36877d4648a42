"""Tests for transcription/session.py: what the sans-IO session asks Whisper, and what it does
with the answer (the prompt setting, the retry without prompt). The "model" here is a list of
hand-made segments per window: no backend is involved."""

from __future__ import annotations

import numpy as np

from transcription.inference.types import Segment, Word
from transcription.protocol import SpeechConfig
from transcription.session import Job, Outputs, Session, SessionLimits

RATE = 16_000


def tone_bursts(bursts: list[tuple[int, int]], total_ms: int) -> bytes:
    """PCM s16le with a loud 200 Hz tone (the energy gate calls it speech) in ``bursts``."""
    audio = np.zeros(total_ms * RATE // 1000, dtype=np.float32)
    for start, end in bursts:
        t = np.arange((end - start) * RATE // 1000) / RATE
        audio[start * RATE // 1000 : end * RATE // 1000] = 0.3 * np.sin(2 * np.pi * 200 * t)
    return (audio * 32767).astype("<i2").tobytes()


def session(*, prompt: bool) -> Session:
    config = SpeechConfig("en", RATE, "pcm_s16le", 5000, 500, "m")
    limits = SessionLimits(vad="energy", prompt=prompt, audio_buffer_ms=60_000)
    return Session("s", config, limits, model_id="m")


def words_segment(job: Job, texts: str, start_ms: int = 0, step_ms: int = 300) -> Segment:
    """One segment of ``texts`` spoken from ``start_ms`` (window-relative)."""
    words = tuple(
        Word(t, start_ms + i * step_ms, start_ms + (i + 1) * step_ms - 50, 0.9)
        for i, t in enumerate(texts.split())
    )
    return Segment(texts, words[0].start_ms, words[-1].end_ms, words)


def feed(s: Session, pcm: bytes) -> list[Job]:
    jobs: list[Job] = []
    for i in range(0, len(pcm), 6400):
        jobs += s.feed_audio(pcm[i : i + 6400]).jobs
    return jobs


# Two utterances: 0.2-4.2 s, a pause, then 4.8-9.8 s, then silence.
SPEECH = tone_bursts([(200, 4200), (4800, 9800)], 12_000)


def first_two_jobs(s: Session) -> tuple[Job, Outputs]:
    jobs = feed(s, SPEECH)
    assert jobs, "a window of speech was not sent"
    first = jobs[0]
    out = s.on_result(first.window_index, [words_segment(first, "one two three four", 200, 950)])
    return first, out


def test_by_default_every_window_is_heard_without_a_prompt() -> None:
    """WSS_PROMPT=none: no window is conditioned on the transcript."""
    s = session(prompt=False)
    first, out = first_two_jobs(s)
    assert first.prompt == ""
    assert out.jobs and out.jobs[0].prompt == ""


def test_with_prompt_the_next_window_is_conditioned_on_the_committed_tail() -> None:
    """WSS_PROMPT=transcript: the committed words heard before the window are its prompt."""
    s = session(prompt=True)
    first, out = first_two_jobs(s)
    assert first.prompt == ""  # nothing committed yet
    assert out.jobs and out.jobs[0].prompt == "one two three four"


def test_a_prompted_window_whose_speech_whisper_skipped_is_heard_again_without_prompt() -> None:
    """Conditioned on the prompt, Whisper returned nothing for a window full of speech: the
    session re-sends the same audio without prompt, under a new window index, and commits
    what that pass hears."""
    s = session(prompt=True)
    _, out = first_two_jobs(s)
    second = out.jobs[0]
    assert second.prompt
    retry_out = s.on_result(second.window_index, [])
    assert len(retry_out.jobs) == 1
    retry = retry_out.jobs[0]
    assert retry.prompt == ""
    assert retry.window_index != second.window_index
    assert (retry.start_ms, retry.end_ms) == (second.start_ms, second.end_ms)
    assert np.array_equal(retry.samples, second.samples)
    s.on_result(retry.window_index, [words_segment(retry, "five six seven", 100)])
    assert s.transcript.text == "one two three four five six seven"


def test_a_late_result_for_a_replaced_window_is_ignored() -> None:
    """After the retry is sent, the first pass's result (a duplicate) changes nothing."""
    s = session(prompt=True)
    _, out = first_two_jobs(s)
    second = out.jobs[0]
    s.on_result(second.window_index, [])
    late = s.on_result(second.window_index, [words_segment(second, "late words", 100)])
    assert (late.events, late.jobs) == ([], [])
    assert s.transcript.text == "one two three four"
