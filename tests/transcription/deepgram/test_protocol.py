"""Tests for transcription/deepgram/protocol.py: the query options, the control messages, and
the session's events as the ``deepgram-sdk`` message models read them."""

from __future__ import annotations

import json
from typing import Any

import pytest
from deepgram.listen.v1.types import (
    ListenV1Error,
    ListenV1Metadata,
    ListenV1Results,
    ListenV1SpeechStarted,
    ListenV1UtteranceEnd,
)

from transcription.deepgram.protocol import (
    DeepgramEncoder,
    ListenOptions,
    ModelInfo,
    QueryError,
    parse_control,
    parse_query,
)
from transcription.events import (
    ClientError,
    Error,
    ErrorCode,
    Flushed,
    Hypothesis,
    Phrase,
    SpeechStarted,
    SpeechStopped,
)
from transcription.inference.types import Word


def words(text: str, start_ms: int = 0) -> tuple[Word, ...]:
    return tuple(
        Word(t, start_ms + 300 * i, start_ms + 300 * i + 250, 0.8)
        for i, t in enumerate(text.split())
    )


def test_query_options_parse_as_the_sdk_sends_them() -> None:
    """The SDK sends booleans as "true"/"false" and numbers as strings."""
    options = parse_query(
        b"model=nova-3&language=en-US&encoding=mulaw&sample_rate=8000&channels=1"
        b"&interim_results=true&endpointing=500&utterance_end_ms=1000&vad_events=true"
        b"&smart_format=true&diarize=true"
    )
    assert options == ListenOptions(
        model="nova-3",
        language="en",
        encoding="mulaw",
        sample_rate=8000,
        interim_results=True,
        endpointing_ms=500,
        utterance_end_ms=1000,
        vad_events=True,
        punctuate=True,
    )
    assert options.session_encoding == "pcm_mulaw"
    assert options.stop_after_ms == (500, 1000)


def test_defaults_endpointing_false_and_the_endpoint_floor() -> None:
    """Deepgram's defaults; endpointing=false turns endpoints off; 10 ms becomes 300 ms."""
    options = parse_query(b"")
    assert (options.encoding, options.sample_rate, options.punctuate) == ("linear16", 16000, False)
    assert options.effective_endpointing_ms == 300
    assert parse_query(b"endpointing=false").stop_after_ms == ()
    assert parse_query(b"endpointing=false&vad_events=true").stop_after_ms == (500,)
    assert parse_query(b"encoding=alaw").sample_rate == 8000


@pytest.mark.parametrize(
    "query",
    [
        b"encoding=flac",
        b"channels=2",
        b"sample_rate=4000",
        b"interim_results=yes",
        b"endpointing=x",
    ],
)
def test_bad_options_are_refused(query: bytes) -> None:
    """What Deepgram answers with HTTP 400."""
    with pytest.raises(QueryError):
        parse_query(query)


def test_control_messages() -> None:
    """KeepAlive, Finalize, CloseStream; anything else is a SchemaError."""
    for kind in ("KeepAlive", "Finalize", "CloseStream"):
        assert parse_control(json.dumps({"type": kind})) == kind
    with pytest.raises(ClientError) as info:
        parse_control('{"type": "Configure"}')
    assert info.value.detail == "SchemaError"


def encoder(**options: Any) -> DeepgramEncoder:
    return DeepgramEncoder(ListenOptions(**options), ModelInfo("whisper-tiny.en"), "req-1")


def results(frames: list[str]) -> list[ListenV1Results]:
    return [ListenV1Results.model_validate(json.loads(f)) for f in frames]


def test_finals_tile_the_stream_and_carry_words_and_confidence() -> None:
    """A phrase is a final Results; an endpoint flush is speech_final; a Finalize flush is
    from_finalize; start/duration follow on from the previous final."""
    enc = encoder(punctuate=True)
    (first,) = results(enc.frames(Phrase(0, 1, "Hello, world.", words("Hello, world."))))
    assert (first.is_final, first.speech_final, first.from_finalize) == (True, False, False)
    assert (first.start, first.duration) == (0.0, 0.55)
    alt = first.channel.alternatives[0]
    assert alt.transcript == "Hello, world."
    assert alt.confidence == 0.8
    assert [(w.word, w.punctuated_word) for w in alt.words] == [
        ("hello", "Hello,"),
        ("world", "world."),
    ]
    (second,) = results(enc.frames(Flushed(0, 2000, words("Again.", 1000), "endpoint")))
    assert (second.start, second.duration, second.speech_final) == (0.55, 1.45, True)
    (third,) = results(enc.frames(Flushed(2000, 2500, (), "client")))
    assert (third.from_finalize, third.channel.alternatives[0].transcript) == (True, "")


def test_without_punctuate_the_transcript_is_bare_words() -> None:
    """Deepgram's default: lower case, no punctuation."""
    (res,) = results(encoder().frames(Phrase(0, 1, "Hello, World.", words("Hello, World."))))
    assert res.channel.alternatives[0].transcript == "hello world"


def test_interim_results_only_when_asked_and_only_pending_words() -> None:
    """Pending hypotheses are interim Results; raw segment text is never sent."""
    pending = Hypothesis(0, 1, "so far", words("so far"), pending=True)
    assert encoder().frames(pending) == []
    enc = encoder(interim_results=True)
    (res,) = results(enc.frames(pending))
    assert not res.is_final
    assert enc.frames(Hypothesis(0, 1, "so far", words("so far"))) == []


def test_speech_started_utterance_end_and_metadata() -> None:
    """vad_events and utterance_end_ms messages; the UtteranceEnd waits for the endpoint's
    final results; Metadata at the end of the stream."""
    enc = encoder(vad_events=True, utterance_end_ms=1000, endpointing_ms=300)
    (started,) = enc.frames(SpeechStarted(1500))
    assert ListenV1SpeechStarted.model_validate(json.loads(started)).timestamp == 1.5
    assert enc.frames(SpeechStopped(3000, 300, flushing=True)) == []
    assert enc.frames(SpeechStopped(3000, 1000)) == []  # the endpoint is still transcribing
    frames = enc.frames(Flushed(0, 3300, words("one two", 1500), "endpoint"))
    assert len(frames) == 2
    end = ListenV1UtteranceEnd.model_validate(json.loads(frames[1]))
    assert end.last_word_end == 2.05
    enc.sha256 = "ab"
    (meta,) = enc.frames(Phrase(0, 4000, "one two", (), "EndOfStream"))
    metadata = ListenV1Metadata.model_validate(json.loads(meta))
    assert (metadata.duration, metadata.channels, metadata.request_id) == (4.0, 1, "req-1")


def test_errors_are_deepgram_error_messages() -> None:
    """An error names its variant and description."""
    (frame,) = encoder().frames(Error(ErrorCode.INVALID_MESSAGE, "bad", "SchemaError"))
    error = ListenV1Error.model_validate(json.loads(frame))
    assert (error.variant, error.description) == ("SchemaError", "bad")


def test_each_utterance_gets_its_utterance_end_even_when_transcription_lags() -> None:
    """Two utterances ended before either endpoint was transcribed: two UtteranceEnds, each
    after its utterance's final Results."""
    enc = encoder(utterance_end_ms=1000, endpointing_ms=300)
    for at in (2000, 5000):
        enc.frames(SpeechStopped(at, 300, flushing=True))
        assert enc.frames(SpeechStopped(at, 1000)) == []
    first = enc.frames(Flushed(0, 2300, words("one", 1500), "endpoint"))
    second = enc.frames(Flushed(2300, 5300, words("two", 4500), "endpoint"))
    assert [json.loads(f)["type"] for f in first + second] == ["Results", "UtteranceEnd"] * 2
