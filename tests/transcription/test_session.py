"""Tests for transcription/session.py: what the sans-IO session asks Whisper, and what it does
with the answer (the prompt setting, the retry without prompt). The "model" here is a list of
hand-made segments per window: no backend is involved."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transcription.events import (
    Backpressure,
    Checkpoint,
    ClientError,
    Close,
    CloseCode,
    ConfigAck,
    Error,
    ErrorCode,
    Flushed,
    Phrase,
    SpeechStarted,
    SpeechStopped,
)
from transcription.inference.messages import JobAccepted, JobResult, TranscribeJob
from transcription.inference.types import Segment, Word
from transcription.limits import SessionLimits
from transcription.protocol import SpeechConfig
from transcription.session import Session
from transcription.session_state import Outputs, State, TurnOptions

RATE = 16_000


def tone_bursts(bursts: list[tuple[int, int]], total_ms: int) -> bytes:
    """PCM s16le with a loud 200 Hz tone (the energy gate calls it speech) in ``bursts``."""
    audio = np.zeros(total_ms * RATE // 1000, dtype=np.float32)
    for start, end in bursts:
        t = np.arange((end - start) * RATE // 1000) / RATE
        audio[start * RATE // 1000 : end * RATE // 1000] = 0.3 * np.sin(2 * np.pi * 200 * t)
    return (audio * 32767).astype("<i2").tobytes()


CONFIG = SpeechConfig("en", RATE, "pcm_s16le", 5000, 500, "m")


def session(*, prompt: bool = False, **limits: object) -> Session:
    s = Session(
        SessionLimits(vad="energy", prompt=prompt, audio_buffer_ms=60_000, **limits),  # type: ignore[arg-type]
        reply_channel="reply",
    )
    s.start("s", CONFIG, model_id="m")
    return s


def result(job: TranscribeJob, segments: list[Segment], *, ok: bool = True) -> JobResult:
    """The worker's reply to ``job``."""
    return JobResult("s", job.window_index, job.attempt, ok=ok, segments=tuple(segments))


def words_segment(job: TranscribeJob, texts: str, start_ms: int = 0, step_ms: int = 300) -> Segment:
    """One segment of ``texts`` spoken from ``start_ms`` (window-relative)."""
    words = tuple(
        Word(t, start_ms + i * step_ms, start_ms + (i + 1) * step_ms - 50, 0.9)
        for i, t in enumerate(texts.split())
    )
    return Segment(texts, words[0].start_ms, words[-1].end_ms, words)


def feed(s: Session, pcm: bytes) -> list[TranscribeJob]:
    jobs: list[TranscribeJob] = []
    for i in range(0, len(pcm), 6400):
        jobs += s.feed_audio(pcm[i : i + 6400]).jobs
    return jobs


# Two utterances: 0.2-4.2 s, a pause, then 4.8-9.8 s, then silence.
SPEECH = tone_bursts([(200, 4200), (4800, 9800)], 12_000)


def first_two_jobs(s: Session) -> tuple[TranscribeJob, Outputs]:
    jobs = feed(s, SPEECH)
    assert jobs, "a window of speech was not sent"
    first = jobs[0]
    out = s.on_result(result(first, [words_segment(first, "one two three four", 200, 950)]), 0)
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
    retry_out = s.on_result(result(second, []), 0)
    assert len(retry_out.jobs) == 1
    retry = retry_out.jobs[0]
    assert retry.prompt == ""
    assert retry.window_index != second.window_index
    assert np.array_equal(retry.samples, second.samples)
    s.on_result(result(retry, [words_segment(retry, "five six seven", 100)]), 0)
    assert s.transcript.text == "one two three four five six seven"


def test_a_late_result_for_a_replaced_window_is_ignored() -> None:
    """After the retry is sent, the first pass's result (a duplicate) changes nothing."""
    s = session(prompt=True)
    _, out = first_two_jobs(s)
    second = out.jobs[0]
    s.on_result(result(second, []), 0)
    late = s.on_result(result(second, [words_segment(second, "late words", 100)]), 0)
    assert (late.events, late.jobs) == ([], [])
    assert s.transcript.text == "one two three four"


def syllables(start_ms: int, end_ms: int) -> list[tuple[int, int]]:
    """Tone bursts of 600 ms, 100 ms apart, from ``start_ms`` to ``end_ms``: speech whose
    pauses the energy gate measures to a frame (one long tone it learns as background)."""
    return [(t, min(end_ms, t + 600)) for t in range(start_ms, end_ms, 700)]


def _phrases_after_a_pause(pause_ms: int) -> list[str]:
    s = session()
    bursts = syllables(200, 4200) + syllables(4200 + pause_ms, 9800)
    jobs = feed(s, tone_bursts(bursts, 12_000))
    first = jobs[0]
    out = s.on_result(result(first, [words_segment(first, "One two three four.", 200, 700)]), 0)
    second = out.jobs[0]
    out2 = s.on_result(result(second, [words_segment(second, "And five six.", 100)]), 0)
    return [e.text for e in out.events + out2.events if isinstance(e, Phrase)]


def test_a_window_cut_at_a_breath_does_not_end_the_sentence() -> None:
    """Whisper ends every window with a period wherever the audio stops. Cut at a 300 ms pause
    that speech followed, the phrase does not close the sentence and the next one goes on in
    lower case; after a pause of a second, Whisper's period stays."""
    assert _phrases_after_a_pause(300) == ["One two three four", "and five six."]
    assert _phrases_after_a_pause(1000) == ["One two three four.", "And five six."]


def test_an_interim_pass_that_heard_past_the_cut_says_whether_the_sentence_goes_on() -> None:
    """After a pause of 800 ms Whisper's period would stay; but an interim pass that heard the
    speech after the pause wrote "four, and": its comma replaces the period and the next
    phrase goes on in lower case (docs/STREAMING.md "Sentence ends from interim passes")."""
    s = session(interim_ms=1000)
    pcm = tone_bursts(syllables(200, 3000) + syllables(3800, 9800), 12_000)
    windows: list[TranscribeJob] = []
    for i in range(0, len(pcm), 6400):
        for job in s.feed_audio(pcm[i : i + 6400]).jobs:
            if job.priority != "interim":
                windows.append(job)
                continue
            heard = "One two three four, and five" if job.audio_s >= 4 else "One two"
            s.on_result(result(job, [words_segment(job, heard, 200, 650)]), 0)
    first = windows[0]
    out = s.on_result(result(first, [words_segment(first, "One two three four.", 200, 650)]), 0)
    second = out.jobs[0]
    out2 = s.on_result(result(second, [words_segment(second, "And five six.", 100)]), 0)
    phrases = [e.text for e in out.events + out2.events if isinstance(e, Phrase)]
    assert phrases == ["One two three four,", "and five six."]


# --- state machine ---


def test_a_new_session_is_connected_and_refuses_audio_and_end() -> None:
    """Before speech.config: audio and speech.end are INVALID_STATE."""
    s = Session(SessionLimits(vad="energy"))
    assert s.state is State.CONNECTED
    for call in (lambda: s.feed_audio(b"\0\0"), s.end):
        with pytest.raises(ClientError) as info:
            call()
        assert info.value.code is ErrorCode.INVALID_STATE


def test_start_acknowledges_and_a_second_config_is_refused() -> None:
    """speech.config moves CONNECTED -> CONFIGURED with an ack; a second one is refused."""
    s = Session(SessionLimits(vad="energy"))
    out = s.start("s", CONFIG, model_id="m")
    assert s.state is State.CONFIGURED
    assert isinstance(out.events[0], ConfigAck)
    with pytest.raises(ClientError) as info:
        s.start("t", CONFIG, model_id="m")
    assert info.value.code is ErrorCode.INVALID_STATE


def test_an_english_only_model_refuses_another_language_at_config() -> None:
    """language "de" on an English-only model is INVALID_MESSAGE and leaves it CONNECTED."""
    s = Session(SessionLimits(vad="energy"))
    german = SpeechConfig("de", RATE, "pcm_s16le", 5000, 500, "m")
    with pytest.raises(ClientError) as info:
        s.start("s", german, model_id="m", multilingual=False)
    assert info.value.code is ErrorCode.INVALID_MESSAGE
    assert s.state is State.CONNECTED


def test_an_english_only_model_refuses_translation_at_config_naming_task() -> None:
    """task "translate" on an English-only model is INVALID_MESSAGE naming 'task'."""
    s = Session(SessionLimits(vad="energy"))
    translate = SpeechConfig("en", RATE, "pcm_s16le", 5000, 500, "m", task="translate")
    with pytest.raises(ClientError) as info:
        s.start("s", translate, model_id="m", multilingual=False)
    assert info.value.code is ErrorCode.INVALID_MESSAGE and "'task'" in info.value.message
    assert s.state is State.CONNECTED


def test_a_translating_session_sends_every_window_to_be_translated() -> None:
    """task "translate": the ack shows it and each job asks the worker to translate; a
    transcribing session's jobs do not."""
    config = SpeechConfig("de", RATE, "pcm_s16le", 5000, 500, "m", task="translate")
    s = Session(SessionLimits(vad="energy", audio_buffer_ms=60_000), reply_channel="reply")
    ack = s.start("s", config, model_id="m").events[0]
    assert isinstance(ack, ConfigAck) and ack.effective_config["task"] == "translate"
    jobs = feed(s, SPEECH)
    assert jobs and all(j.translate and j.request().translate for j in jobs)
    plain = Session(SessionLimits(vad="energy", audio_buffer_ms=60_000), reply_channel="reply")
    plain.start("s", CONFIG, model_id="m")
    assert not any(j.translate for j in feed(plain, SPEECH))


@pytest.mark.parametrize("language", ["auto", "fr", "en-US"])
def test_the_english_only_check_takes_normalised_codes(language: str) -> None:
    """ "auto" and "fr" need a multilingual model; "en-US" is English and acks as "en"."""
    s = Session(SessionLimits(vad="energy"))
    config = SpeechConfig(language, RATE, "pcm_s16le", 5000, 500, "m")
    if language == "en-US":
        ack = s.start("s", config, model_id="m", multilingual=False).events[0]
        assert isinstance(ack, ConfigAck) and ack.effective_config["language"] == "en"
        return
    with pytest.raises(ClientError) as info:
        s.start("s", config, model_id="m", multilingual=False)
    assert info.value.code is ErrorCode.INVALID_MESSAGE and "English-only" in info.value.message


def test_an_illegal_transition_fails_loudly() -> None:
    """Ending twice is a bug in the caller: RuntimeError, as starlette's WebSocketState."""
    s = Session(SessionLimits(vad="energy"))
    s.abandon()
    with pytest.raises(RuntimeError):
        s._transition(State.CONFIGURED)


def test_end_without_audio_finishes_with_end_of_stream_and_close_1000() -> None:
    """speech.end right after config: EndOfStream, the final checkpoint, close 1000."""
    s = session()
    out = s.end()
    assert [type(e) for e in out.events] == [Phrase, Checkpoint, Close]
    assert out.events[-1] == Close(CloseCode.NORMAL)
    assert s.state is State.ENDED
    assert not s.has_progress  # nothing worth storing for a resume


def test_a_fatal_error_ends_the_session_and_a_plain_one_does_not() -> None:
    """fail(): a ClientError with a close code ends the session; one without does not."""
    s = session()
    assert s.fail(ClientError(ErrorCode.AUDIO_ERROR, "bad")).events == [
        Error(ErrorCode.AUDIO_ERROR, "bad")
    ]
    assert s.state is State.CONFIGURED
    out = s.fail(ClientError(ErrorCode.INTERNAL_ERROR, "x", close_code=CloseCode.INTERNAL_ERROR))
    assert out.events[-1] == Close(CloseCode.INTERNAL_ERROR)
    assert s.state is State.ENDED


# --- the job in flight ---


def test_a_window_with_no_result_is_resent_then_given_up_with_4013() -> None:
    """No answer within the timeout: re-sent with the same index, then the checkpoint to
    resume from and SERVICE_UNAVAILABLE."""
    s = session(inference_timeout_s=1.0, inference_retries=1)
    job = feed(s, SPEECH)[0]
    assert s.tick(0.5).jobs == []
    resent = s.tick(1.1).jobs
    assert [(j.window_index, j.attempt) for j in resent] == [(job.window_index, 1)]
    out = s.tick(2.2)
    assert isinstance(out.events[0], Checkpoint)
    assert isinstance(out.events[1], Error)
    assert out.events[1].code is ErrorCode.SERVICE_UNAVAILABLE
    assert out.events[-1] == Close(CloseCode.TRY_AGAIN)
    assert s.state is State.ENDED


def test_accepted_restarts_the_deadline_for_the_inference() -> None:
    """A worker that accepted the job gets the full timeout from that moment."""
    s = session(inference_timeout_s=1.0)
    job = feed(s, SPEECH)[0]
    s.on_accepted(JobAccepted("s", job.window_index, 0), 0.9)
    assert s.tick(1.5).jobs == []
    assert s.tick(2.0).jobs[0].attempt == 1


def test_a_worker_failure_is_retried_with_the_same_window() -> None:
    """A failed JobResult re-sends the window (attempt + 1)."""
    s = session()
    job = feed(s, SPEECH)[0]
    out = s.on_result(result(job, [], ok=False), 0)
    assert [(j.window_index, j.attempt) for j in out.jobs] == [(job.window_index, 1)]


def test_the_transcript_cap_is_hard() -> None:
    """A window that would take the transcript past its cap is not committed: RATE_LIMITED,
    then EndOfStream with the transcript so far and close 1000."""
    s = session(max_transcript_bytes=12)
    job = feed(s, SPEECH)[0]
    out = s.on_result(result(job, [words_segment(job, "one two three four", 200, 950)]), 0)
    assert isinstance(out.events[0], Error) and out.events[0].code is ErrorCode.RATE_LIMITED
    end = [e for e in out.events if isinstance(e, Phrase)]
    assert end[-1].status == "EndOfStream" and len(end[-1].text.encode()) <= 12
    assert out.events[-1] == Close(CloseCode.NORMAL)


def test_audio_faster_than_the_allowed_speed_is_refused_in_ms() -> None:
    """After the burst, audio beyond max_audio_speed x real time is refused and reported, even
    when the buffer has room (silence is released as fast as it comes)."""
    s = Session(
        SessionLimits(vad="energy", audio_buffer_ms=2000, max_audio_speed=2.0, audio_burst_ms=2000)
    )
    s.start("s", SpeechConfig("en", RATE, "pcm_s16le", 1000, 0, "m"), model_id="m", now=0.0)
    silence = bytes(4 * RATE)  # 2 s
    assert s.feed_audio(silence, now=0.0).refused_ms == 0  # the 2 s burst
    out = s.feed_audio(silence, now=0.1)  # 0.2 s refilled at 2x real time
    assert out.refused_ms == 1800
    assert any(isinstance(e, Error) and "real time" in e.message for e in out.events)


def test_continuous_speech_in_a_small_buffer_is_cut_before_the_buffer_fills() -> None:
    """Short windows wait for a pause, but never longer than the buffer can hold: with a
    4 s buffer, 3.6 s of speech without a pause is sent for transcription, not stalled."""
    s = Session(SessionLimits(vad="energy", audio_buffer_ms=4000))
    s.start("s", SpeechConfig("en", RATE, "pcm_s16le", 1000, 0, "m"), model_id="m")
    jobs = feed(s, tone_bursts([(200, 3600)], 3600))
    sizes = []
    while jobs:
        job = jobs.pop(0)
        sizes.append(len(job.samples) // RATE)
        jobs += s.on_result(result(job, [words_segment(job, "la la la")]), 0).jobs
    assert 3 in sizes  # the 3 s cut (3/4 of the buffer)
    assert s.last_audio_ms > 0  # and the buffer moved on


def test_a_window_longer_than_the_buffer_is_shortened_and_the_ack_says_so() -> None:
    """window_duration_ms 60000 with a 30 s buffer: the ack's effective window fits it."""
    s = Session(SessionLimits(vad="energy", audio_buffer_ms=30_000))
    ack = s.start("s", SpeechConfig("en", RATE, "pcm_s16le", 60000, 2000, "m"), model_id="m")
    effective = ack.events[0].effective_config  # type: ignore[union-attr]
    assert effective["window_duration_ms"] == 22_500
    assert effective["overlap_duration_ms"] == 2000


# --- flush, clear and turn detection (the compatible APIs) ---

BURSTS = [(200, 2200), (3200, 5200), (6200, 8200)]
BURST_WORDS = ["alpha bravo charlie delta", "echo foxtrot golf hotel", "india juliet kilo lima"]


def heard(job: TranscribeJob, s: Session) -> JobResult:
    """What a perfect model hears in the window in flight: the words of each burst whose
    audio lies wholly inside it (window-relative times)."""
    span = s.configured.span
    assert span is not None
    words = []
    for (b0, b1), text in zip(BURSTS, BURST_WORDS, strict=True):
        names = text.split()
        step = (b1 - b0) // len(names)
        for i, name in enumerate(names):
            w0, w1 = b0 + i * step, b0 + (i + 1) * step - 100
            if span.start_ms <= w0 and w1 <= span.end_ms:
                words.append(Word(name, w0 - span.start_ms, w1 - span.start_ms, 0.9))
    segments = [Segment(" ".join(w.text for w in words), 0, 1, tuple(words))] if words else []
    return result(job, segments)


def drive(
    s: Session,
    pcm: bytes,
    actions: dict[int, str] | None = None,
    lag: int = 0,
    *,
    drain: bool = True,
) -> list[object]:
    """Feed ``pcm`` in 100 ms frames, answering each job ``lag`` frames later; ``actions``
    maps a frame index to "flush" or "clear". Returns every event."""
    events: list[object] = []
    waiting: list[tuple[int, TranscribeJob]] = []

    def absorb(out: Outputs, frame: int) -> None:
        events.extend(out.events)
        waiting.extend((frame + lag, job) for job in out.jobs)

    frame_bytes = 3200
    frames = [pcm[i : i + frame_bytes] for i in range(0, len(pcm), frame_bytes)]
    for i, chunk in enumerate(frames):
        absorb(s.feed_audio(chunk), i)
        action = (actions or {}).get(i)
        if action == "flush":
            absorb(s.flush(), i)
        elif action == "clear":
            absorb(s.clear(), i)
        while waiting and waiting[0][0] <= i:
            _, job = waiting.pop(0)
            absorb(s.on_result(heard(job, s), 0), i)
    while waiting and drain:
        _, job = waiting.pop(0)
        absorb(s.on_result(heard(job, s), 0), len(frames))
    return events


def finish(s: Session) -> list[object]:
    """speech.end / CloseStream, answering the last windows."""
    out = s.end()
    events: list[object] = list(out.events)
    jobs = list(out.jobs)
    while jobs:
        more = s.on_result(heard(jobs.pop(0), s), 0)
        events += more.events
        jobs += more.jobs
    return events


def live_session(turns: TurnOptions | None = None, window_ms: int = 20_000) -> Session:
    s = Session(SessionLimits(vad="energy", audio_buffer_ms=30_000), reply_channel="reply")
    s.set_turns(turns)
    config = SpeechConfig("en", RATE, "pcm_s16le", window_ms, min(2000, window_ms // 4), "m")
    s.start("s", config, model_id="m")
    return s


def texts(events: list[object]) -> str:
    """The committed words, whether sent as phrases or with a flush."""
    words = []
    for e in events:
        if isinstance(e, Phrase) and e.status == "Success":
            words += [w.text for w in e.words]
        if isinstance(e, Flushed):
            words += [w.text for w in e.words]
    return " ".join(words)


THREE = tone_bursts(BURSTS, 9000)


def test_flush_commits_what_was_heard_without_ending_the_session() -> None:
    """Finalize / commit: every word of the audio so far comes in one Flushed event, and
    the session goes on transcribing what follows."""
    s = live_session()
    events = drive(s, THREE, {25: "flush"})  # after 2.6 s: the first burst
    flushed = [e for e in events if isinstance(e, Flushed)]
    assert len(flushed) == 1
    assert [w.text for w in flushed[0].words] == BURST_WORDS[0].split()
    assert (flushed[0].start_ms, flushed[0].end_ms, flushed[0].reason) == (0, 2600, "client")
    assert s.state is State.CONFIGURED
    assert texts(events + finish(s)) == " ".join(BURST_WORDS)


def test_every_flush_gets_its_own_flushed_event_in_order_even_an_empty_one() -> None:
    """Two flushes in a row (the second with no new audio) answer twice, in order."""
    s = live_session()
    events = drive(s, THREE, {25: "flush", 26: "flush"}, lag=3)
    flushed = [e for e in events if isinstance(e, Flushed)]
    assert [(f.start_ms, f.end_ms) for f in flushed] == [(0, 2600), (2600, 2700)]
    assert [w.text for w in flushed[0].words] == BURST_WORDS[0].split()
    assert flushed[1].words == ()


def test_a_flush_cut_mid_speech_loses_no_word() -> None:
    """A flush in the middle of a burst: the words cut by it are heard again afterwards."""
    s = live_session()
    events = drive(s, THREE, {38: "flush"}, lag=2)  # 3.9 s: inside "foxtrot"
    events += finish(s)
    assert texts(events) == " ".join(BURST_WORDS)


def test_clear_drops_the_audio_no_result_has_committed() -> None:
    """input_audio_buffer.clear: the second burst, cleared before any window returned, is
    never transcribed; what comes after it is."""
    s = live_session()
    events = drive(s, THREE, {25: "flush", 55: "clear"}, lag=0)
    events += finish(s)
    assert texts(events) == f"{BURST_WORDS[0]} {BURST_WORDS[2]}"


def test_turn_detection_reports_speech_edges_and_an_endpoint_flushes() -> None:
    """server_vad / endpointing: speech start, the stop after each silence threshold, and a
    flush at the endpoint whose Flushed says so."""
    s = live_session(TurnOptions(stop_after_ms=(500, 800), flush_after_ms=500))
    events = drive(s, THREE, lag=4)
    events += finish(s)
    starts = [e.at_ms for e in events if isinstance(e, SpeechStarted)]
    assert len(starts) == 3
    for at, (b0, _) in zip(starts, BURSTS, strict=True):
        assert abs(at - b0) <= 100
    stops = [(e.silence_ms, e.flushing) for e in events if isinstance(e, SpeechStopped)]
    assert stops == [(500, True), (800, False)] * 2 + [(500, True)]
    flushed = [e for e in events if isinstance(e, Flushed)]
    assert [f.reason for f in flushed] == ["endpoint"] * 3
    assert [" ".join(w.text for w in f.words) for f in flushed] == BURST_WORDS
    assert texts(events) == " ".join(BURST_WORDS)


def test_without_turn_options_no_speech_event_is_emitted() -> None:
    """/transcribe sessions never see the compatible APIs' events."""
    s = live_session()
    events = drive(s, THREE) + finish(s)
    assert not [e for e in events if isinstance(e, SpeechStarted | SpeechStopped | Flushed)]


def test_flush_and_clear_need_a_live_session() -> None:
    """Before the config, and after the end, flush and clear are INVALID_STATE."""
    s = Session(SessionLimits(vad="energy"))
    with pytest.raises(ClientError) as err:
        s.flush()
    assert err.value.code is ErrorCode.INVALID_STATE
    s = live_session()
    s.end()
    for call in (s.flush, s.clear):
        with pytest.raises(ClientError):
            call()


def test_the_end_completes_pending_flushes_before_the_end_of_stream() -> None:
    """CloseStream right after Finalize: the flush still answers, then EndOfStream."""
    s = live_session()
    events = drive(s, THREE[: 26 * 3200], {25: "flush"}, lag=50, drain=False)
    assert not [e for e in events if isinstance(e, Flushed)]  # the window is still out
    pending = s.configured.span
    assert pending is not None
    events = finish_with_lagging_window(s)
    kinds = [type(e).__name__ for e in events if not isinstance(e, Checkpoint)]
    assert kinds.index("Flushed") < kinds.index("Phrase")
    assert [e.status for e in events if isinstance(e, Phrase)][-1] == "EndOfStream"


def finish_with_lagging_window(s: Session) -> list[object]:
    """End while a window is in flight, then answer it and everything after it."""
    job = s.inference.in_flight
    assert job is not None
    out = s.end()
    events: list[object] = list(out.events)
    jobs = [job, *out.jobs]
    while jobs:
        more = s.on_result(heard(jobs.pop(0), s), 0)
        events += more.events
        jobs += more.jobs
    return events


def test_a_client_paused_by_slow_down_is_not_waited_for() -> None:
    """Continuous speech past the slow_down mark: the window is cut at its end at once, not
    after the look-ahead a client that paused on slow_down would never send (it would wait
    for ok, and the session for audio: a deadlock)."""
    s = Session(SessionLimits(vad="off", audio_buffer_ms=12_000))  # no pause anywhere
    s.start("s", SpeechConfig("en", RATE, "pcm_s16le", 8000, 0, "m"), model_id="m")
    pcm = tone_bursts([(0, 9800)], 9800)
    outputs = [s.feed_audio(pcm[i : i + 6400]) for i in range(0, len(pcm), 6400)]
    assert any(isinstance(e, Backpressure) for o in outputs for e in o.events)
    assert [job for o in outputs for job in o.jobs], "no window while the client is paused"


@settings(max_examples=30, deadline=None)
@given(
    flushes=st.lists(st.integers(0, 89), max_size=4),
    lag=st.integers(0, 6),
    window_ms=st.sampled_from([2000, 20_000]),
)
def test_flushes_anywhere_neither_lose_nor_repeat_a_word(
    flushes: list[int], lag: int, window_ms: int
) -> None:
    """Finalize / commit at any frames, with the worker lagging by any amount, with short
    (interim) or long windows: the committed words are exactly the spoken ones, once, in
    order; one Flushed per flush."""
    s = live_session(window_ms=window_ms)
    events = drive(s, THREE, {i: "flush" for i in flushes}, lag=lag) + finish(s)
    assert texts(events) == " ".join(BURST_WORDS)
    assert sum(isinstance(e, Flushed) for e in events) == len(set(flushes))


def test_a_clear_during_a_pending_flush_waits_for_it() -> None:
    """Commit, then clear before the commit's words are in: the committed audio is still
    transcribed, the audio after it up to the clear is dropped."""
    s = live_session()
    events = drive(s, THREE, {25: "flush", 55: "clear"}, lag=35)
    events += finish(s)
    flushed = [e for e in events if isinstance(e, Flushed)]
    assert [" ".join(w.text for w in f.words) for f in flushed] == [BURST_WORDS[0]]
    assert texts(events) == f"{BURST_WORDS[0]} {BURST_WORDS[2]}"


# --- language: "auto" detects, locks and reports ---


def auto_session() -> Session:
    s = Session(SessionLimits(vad="energy", audio_buffer_ms=60_000), reply_channel="reply")
    s.start("s", SpeechConfig("auto", RATE, "pcm_s16le", 5000, 500, "whisper-base"), model_id="m")
    return s


def detected(job: TranscribeJob, texts: str, language: str, p: float) -> JobResult:
    """The worker's reply to a job it ran language detection for."""
    segment = words_segment(job, texts)
    return JobResult(
        "s", job.window_index, job.attempt, ok=True, segments=(segment,),
        language=language, language_probability=p,
    )  # fmt: skip


def test_auto_sends_windows_for_detection_until_a_clear_one_locks_the_language() -> None:
    """Windows go as "auto"; a result detected as de (p 0.95) locks de: later windows go as
    "de", phrases and the checkpoint carry language and language_probability."""
    s = auto_session()
    jobs = feed(s, SPEECH)
    assert jobs and jobs[0].language == "auto"
    out = s.on_result(detected(jobs[0], "guten morgen", "de", 0.95), 1.0)
    phrases = [e for e in out.events if isinstance(e, Phrase)]
    assert phrases and (phrases[0].language, phrases[0].language_probability) == ("de", 0.95)
    checkpoint = next(e for e in out.events if isinstance(e, Checkpoint)).payload
    assert (checkpoint["language"], checkpoint["language_probability"]) == ("de", 0.95)
    assert out.jobs and out.jobs[0].language == "de"


def test_an_unclear_detection_does_not_lock_and_is_not_in_the_checkpoint() -> None:
    """p 0.5: the phrase reports the window's language, the next window is detected again."""
    s = auto_session()
    jobs = feed(s, SPEECH)
    out = s.on_result(detected(jobs[0], "hola", "es", 0.5), 1.0)
    phrase = next(e for e in out.events if isinstance(e, Phrase))
    assert (phrase.language, phrase.language_probability) == ("es", 0.5)
    assert "language" not in next(e for e in out.events if isinstance(e, Checkpoint)).payload
    assert out.jobs and out.jobs[0].language == "auto"


def test_a_given_language_is_reported_without_a_probability() -> None:
    """language "en": phrases say "en", no probability, and every window goes as "en"."""
    s = session()
    jobs = feed(s, SPEECH)
    assert jobs[0].language == "en"
    out = s.on_result(result(jobs[0], [words_segment(jobs[0], "hello there")]), 1.0)
    phrase = next(e for e in out.events if isinstance(e, Phrase))
    assert (phrase.language, phrase.language_probability) == ("en", None)


def test_a_resumed_auto_session_keeps_the_language_its_checkpoint_locked() -> None:
    """The checkpoint's language (resumed_language) is the resumed session's from the start."""
    from transcription.session_state import ResumeState, resumed_language
    from transcription.transcript import Transcript

    locked = resumed_language({"language": "fr", "language_probability": 0.97})
    assert resumed_language({"language": "xx"}) is None and resumed_language({}) is None
    s = Session(SessionLimits(vad="energy", audio_buffer_ms=60_000), reply_channel="reply")
    config = SpeechConfig("auto", RATE, "pcm_s16le", 5000, 500, "m")
    s.start("s", config, model_id="m", resume=ResumeState(Transcript(), 0, language=locked))
    jobs = feed(s, SPEECH)
    assert jobs and jobs[0].language == "fr"
    assert s.checkpoint()["language"] == "fr"
