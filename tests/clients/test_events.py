"""``openasr_client.events``: server frames parsed into typed events."""

from __future__ import annotations

import json

import pytest
from openasr_client import (
    Backpressure,
    Checkpoint,
    ConfigAck,
    EndOfStream,
    Error,
    Hypothesis,
    Phrase,
    ProtocolError,
    Unknown,
    Word,
    parse_event,
)
from openasr_client.events import join_words

SID = "d785d7fad5ecd9ee3eed4ddeb2953e59"


def frame(kind: str, payload: dict[str, object]) -> str:
    return json.dumps({"type": kind, "session_id": SID, "payload": payload})


def test_config_ack_carries_effective_config_and_resume_fields() -> None:
    """speech.config.ack → ConfigAck with effective_config, resumed and last_audio_ms."""
    event = parse_event(
        frame(
            "speech.config.ack",
            {
                "session_id": SID,
                "effective_config": {"model_id": "whisper-tiny.en"},
                "resumed": True,
                "last_audio_ms": 4500,
            },
        )
    )
    assert event == ConfigAck(SID, {"model_id": "whisper-tiny.en"}, True, 4500)


def test_seed_phrase_without_words_parses() -> None:
    """A seed-style phrase (no words) → Phrase with an empty word tuple."""
    event = parse_event(
        frame(
            "speech.phrase",
            {
                "offset": 0,
                "duration": 5000,
                "text": "Hello.",
                "confidence": 1.0,
                "status": "Success",
            },
        )
    )
    assert event == Phrase(SID, "Hello.", 0, 5000, 1.0, ())


def test_phrase_words_become_word_objects() -> None:
    """The words extra field → Word(text, offset, duration, confidence), end = offset+duration."""
    words = [{"text": "Hi", "offset": 100, "duration": 250, "confidence": 0.93}]
    event = parse_event(
        frame(
            "speech.phrase",
            {"offset": 100, "duration": 250, "text": "Hi", "status": "Success", "words": words},
        )
    )
    assert isinstance(event, Phrase)
    assert event.words == (Word("Hi", 100, 250, 0.93),)
    assert event.words[0].end == 350 and event.end == 350


def test_end_of_stream_is_its_own_type() -> None:
    """status EndOfStream → EndOfStream (the full transcript), not a Phrase."""
    event = parse_event(
        frame(
            "speech.phrase",
            {"offset": 0, "duration": 9000, "text": "All.", "status": "EndOfStream"},
        )
    )
    assert event == EndOfStream(SID, "All.", 0, 9000, 0.0)


def test_hypothesis_checkpoint_backpressure_error() -> None:
    """The other server events parse into their dataclasses; a checkpoint keeps its raw object."""
    hyp = parse_event(frame("speech.hypothesis", {"offset": 5, "duration": 10, "text": "x"}))
    assert hyp == Hypothesis(SID, "x", 5, 10, ())
    raw = {"session_id": SID, "last_audio_ms": 5000, "full_transcript": "a b", "sig": "s"}
    cp = parse_event(frame("speech.checkpoint", raw))
    assert isinstance(cp, Checkpoint)
    assert (cp.last_audio_ms, cp.full_transcript, dict(cp.raw)) == (5000, "a b", raw)
    assert parse_event(frame("speech.backpressure", {"action": "slow_down"})) == Backpressure(
        SID, "slow_down"
    )
    err = parse_event(frame("speech.error", {"code": "RATE_LIMITED", "message": "slow"}))
    assert err == Error(SID, "RATE_LIMITED", "slow")


def test_unknown_type_is_kept_not_rejected() -> None:
    """A newer server's event type parses as Unknown (forward compatible)."""
    event = parse_event(frame("speech.future", {"x": 1}))
    assert event == Unknown("speech.future", SID, {"x": 1})


@pytest.mark.parametrize(
    "raw",
    [
        "not json",
        "[1, 2]",
        json.dumps({"payload": {}}),
        json.dumps({"type": "speech.phrase", "payload": []}),
        frame("speech.phrase", {"text": 5, "status": "Success"}),
        frame("speech.phrase", {"text": "a", "offset": True}),
        frame("speech.backpressure", {"action": "faster"}),
        frame("speech.hypothesis", {"text": "a", "words": [{"text": "a"}]}),
    ],
)
def test_malformed_frames_raise_protocol_error(raw: str) -> None:
    """Frames that are not protocol events raise ProtocolError naming the problem."""
    with pytest.raises(ProtocolError):
        parse_event(raw)


def test_join_words_attaches_bare_punctuation() -> None:
    """join_words puts spaces between words but none before bare punctuation."""
    words = [Word("Hello", 0, 1), Word(",", 1, 1), Word("world", 2, 1), Word(".", 3, 1)]
    assert join_words(words) == "Hello, world."
