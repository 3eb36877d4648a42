"""Tests for transcription/realtime/protocol.py and config.py: the Realtime API's client
events parsed, and the session's events encoded so the ``openai`` SDK's own models read
them."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from openai.types.realtime import (
    ConversationItemInputAudioTranscriptionCompletedEvent,
    ConversationItemInputAudioTranscriptionDeltaEvent,
    InputAudioBufferCommittedEvent,
    InputAudioBufferSpeechStartedEvent,
    RealtimeErrorEvent,
    SessionCreatedEvent,
)

from transcription.events import (
    ClientError,
    Error,
    ErrorCode,
    Flushed,
    Phrase,
    SpeechStarted,
    SpeechStopped,
)
from transcription.inference.types import Word
from transcription.realtime.config import RealtimeConfig, ServerVad, SessionUpdate
from transcription.realtime.protocol import (
    Append,
    Clear,
    Commit,
    RealtimeEncoder,
    parse_client_event,
)


def parse(event: dict[str, Any], current: RealtimeConfig | None = None) -> Any:
    return parse_client_event(json.dumps(event), current or RealtimeConfig())[1]


def words(text: str, start_ms: int = 0, p: float = 0.9) -> tuple[Word, ...]:
    return tuple(
        Word(t, start_ms + 300 * i, start_ms + 300 * i + 250, p) for i, t in enumerate(text.split())
    )


def test_the_current_session_update_sets_format_vad_language_and_logprobs() -> None:
    """session.update with type transcription (openai.types.realtime)."""
    update = parse(
        {
            "type": "session.update",
            "session": {
                "type": "transcription",
                "audio": {
                    "input": {
                        "format": {"type": "audio/pcmu"},
                        "transcription": {"model": "gpt-4o-transcribe", "language": "en"},
                        "turn_detection": {
                            "type": "server_vad",
                            "threshold": 0.6,
                            "prefix_padding_ms": 200,
                            "silence_duration_ms": 700,
                        },
                    }
                },
                "include": ["item.input_audio_transcription.logprobs"],
            },
        }
    )
    assert isinstance(update, SessionUpdate) and not update.beta
    config = update.config
    assert (config.format, config.encoding, config.sample_rate) == ("g711_ulaw", "pcm_mulaw", 8000)
    assert config.turn_detection == ServerVad(0.6, 200, 700)
    assert (config.language, config.model, config.logprobs) == ("en", "gpt-4o-transcribe", True)


def test_the_older_transcription_session_update_is_understood() -> None:
    """transcription_session.update (openai.types.beta.realtime) with turn_detection null."""
    update = parse(
        {
            "type": "transcription_session.update",
            "session": {"input_audio_format": "g711_alaw", "turn_detection": None},
        }
    )
    assert isinstance(update, SessionUpdate) and update.beta
    assert (update.config.encoding, update.config.turn_detection) == ("pcm_alaw", None)
    assert update.changed == {"format", "turn_detection"}


def test_an_update_keeps_what_it_does_not_mention() -> None:
    """Fields absent from session.update keep their value."""
    current = RealtimeConfig(format="g711_alaw", turn_detection=None)
    update = parse({"type": "session.update", "session": {"type": "transcription"}}, current)
    assert update.config == current


def test_append_commit_and_clear() -> None:
    """The input audio buffer events."""
    audio = b"\x01\x02\x03\x04"
    appended = parse(
        {"type": "input_audio_buffer.append", "audio": base64.b64encode(audio).decode()}
    )
    assert appended == Append(audio)
    assert parse({"type": "input_audio_buffer.commit"}) == Commit()
    assert parse({"type": "input_audio_buffer.clear"}) == Clear()


@pytest.mark.parametrize(
    ("event", "param"),
    [
        ({"type": "input_audio_buffer.append", "audio": "not base64!"}, "audio"),
        ({"type": "session.update", "session": {"type": "realtime"}}, "session.type"),
        (
            {
                "type": "session.update",
                "session": {"audio": {"input": {"format": {"type": "audio/pcm", "rate": 16000}}}},
            },
            "session.audio.input.format.rate",
        ),
        ({"type": "response.create"}, "type"),
        ({"type": "session.update", "session": {"include": ["item.foo"]}}, "include"),
    ],
)
def test_invalid_events_name_the_param(event: dict[str, Any], param: str) -> None:
    """A refused event is an invalid_request_error naming the parameter."""
    with pytest.raises(ClientError) as info:
        parse(event)
    assert info.value.code is ErrorCode.INVALID_MESSAGE
    assert info.value.detail is not None and info.value.detail.endswith(param)


def sdk(frame: str, model: Any) -> Any:
    """Validate a frame against the SDK's model (strictly: every required field)."""
    return model.model_validate(json.loads(frame))


def test_session_created_validates_as_the_sdk_model() -> None:
    """The session object is a RealtimeTranscriptionSessionCreateRequest."""
    from transcription.realtime.protocol import frame

    event = sdk(
        frame("session.created", session=RealtimeConfig().ga("sess_1")), SessionCreatedEvent
    )
    assert event.session.type == "transcription"
    assert event.session.audio.input.turn_detection.type == "server_vad"


def test_deltas_only_append_and_concatenate_to_the_completed_transcript() -> None:
    """Committed phrases become deltas of the open item; the flush completes it with the
    concatenation; the next item starts fresh."""
    encoder = RealtimeEncoder()
    started = sdk(encoder.frames(SpeechStarted(1000))[0], InputAudioBufferSpeechStartedEvent)
    assert started.audio_start_ms == 700  # prefix padding 300 ms
    deltas = [
        sdk(f, ConversationItemInputAudioTranscriptionDeltaEvent)
        for f in encoder.frames(Phrase(0, 1, "Hello there,", words("Hello there,")))
    ]
    stop = encoder.frames(SpeechStopped(3000, 500, flushing=True))
    committed = sdk(stop[1], InputAudioBufferCommittedEvent)
    flushed = encoder.frames(Flushed(0, 3500, words("how are you?", 1000), "endpoint"))
    deltas += [sdk(flushed[0], ConversationItemInputAudioTranscriptionDeltaEvent)]
    completed = sdk(flushed[1], ConversationItemInputAudioTranscriptionCompletedEvent)
    assert "".join(d.delta for d in deltas) == completed.transcript == "Hello there, how are you?"
    assert {d.item_id for d in deltas} == {committed.item_id, completed.item_id, started.item_id}
    assert all(d.content_index == 0 for d in deltas)
    assert completed.usage.seconds == 3.5
    nxt = sdk(encoder.frames(SpeechStarted(5000))[0], InputAudioBufferSpeechStartedEvent)
    assert nxt.item_id != completed.item_id


def test_logprobs_come_from_word_probabilities_when_included() -> None:
    """include logprobs: one entry per word, log of its probability."""
    encoder = RealtimeEncoder()
    encoder.config = RealtimeConfig(logprobs=True)
    (delta,) = encoder.frames(Phrase(0, 1, "a b", words("a b", p=0.5)))
    event = sdk(delta, ConversationItemInputAudioTranscriptionDeltaEvent)
    assert event.logprobs is not None
    assert [lp.token for lp in event.logprobs] == ["a", " b"]
    assert event.logprobs[0].logprob == pytest.approx(-0.6931, abs=1e-3)


def test_errors_are_realtime_error_events_and_fail_pending_items() -> None:
    """A client error keeps its code; a worker failure fails the committed items."""
    encoder = RealtimeEncoder()
    (frame,) = encoder.frames(
        Error(ErrorCode.INVALID_MESSAGE, "too small", "input_audio_buffer_commit_empty")
    )
    event = sdk(frame, RealtimeErrorEvent)
    assert (event.error.type, event.error.code) == (
        "invalid_request_error",
        "input_audio_buffer_commit_empty",
    )
    encoder.commit()
    frames = encoder.frames(Error(ErrorCode.SERVICE_UNAVAILABLE, "no worker"))
    assert [json.loads(f)["type"] for f in frames] == [
        "conversation.item.input_audio_transcription.failed",
        "error",
    ]
