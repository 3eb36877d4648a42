"""The wire format of PROTOCOL.md: every parsing rule and event shape."""

from __future__ import annotations

import json

import pytest

from transcription import protocol
from transcription.events import Backpressure, ClientError, Error, ErrorCode, Phrase, confidence
from transcription.inference.types import Word
from transcription.protocol import ConfigDefaults, SpeechConfig, SpeechEnd

DEFAULTS = ConfigDefaults(model_id="whisper-tiny.en")


def parse(obj: object) -> protocol.ClientMessage:
    return protocol.parse_client_message(json.dumps(obj), DEFAULTS)


def config_msg(**payload: object) -> dict[str, object]:
    base: dict[str, object] = {
        "language": "en",
        "sample_rate": 16000,
        "encoding": "pcm_s16le",
        "window_duration_ms": 5000,
        "overlap_duration_ms": 500,
    }
    base.update(payload)
    return {"type": "speech.config", "payload": base}


def error_of(obj: object) -> ClientError:
    with pytest.raises(ClientError) as info:
        if isinstance(obj, str):
            protocol.parse_client_message(obj, DEFAULTS)
        else:
            parse(obj)
    return info.value


def test_full_config_parses_into_typed_message() -> None:
    """A complete speech.config becomes a SpeechConfig with exactly those values."""
    msg = parse(config_msg(model_id="whisper-large-v3"))
    assert msg == SpeechConfig("en", 16000, "pcm_s16le", 5000, 500, "whisper-large-v3", None)


def test_omitted_optional_fields_take_server_defaults() -> None:
    """Fields the client omits come from the server's configuration."""
    msg = parse({"type": "speech.config", "payload": {}})
    assert isinstance(msg, SpeechConfig)
    assert (msg.language, msg.sample_rate, msg.encoding) == ("en", 16000, "pcm_s16le")
    assert msg.model_id == "whisper-tiny.en"


@pytest.mark.parametrize("encoding", ["pcm_mulaw", "pcm_alaw"])
def test_telephony_encodings_default_to_8_khz(encoding: str) -> None:
    """pcm_mulaw and pcm_alaw (G.711) are 8 kHz unless sample_rate says otherwise."""
    msg = parse({"type": "speech.config", "payload": {"encoding": encoding}})
    assert isinstance(msg, SpeechConfig)
    assert (msg.encoding, msg.sample_rate) == (encoding, 8000)
    msg = parse(config_msg(encoding=encoding, sample_rate=16000))
    assert isinstance(msg, SpeechConfig)
    assert msg.sample_rate == 16000
    assert msg.effective("m")["encoding"] == encoding


def test_speech_end_parses() -> None:
    """speech.end with an empty payload is a SpeechEnd."""
    assert parse({"type": "speech.end", "payload": {}}) == SpeechEnd()


@pytest.mark.parametrize(
    ("frame", "needle"),
    [
        ("not json", "JSON"),
        ("[1, 2]", "JSON object"),
        ('{"payload": {}}', "'type'"),
        ('{"type": 5, "payload": {}}', "'type'"),
        ('{"type": "speech.config"}', "'payload'"),
        ('{"type": "speech.config", "payload": []}', "'payload'"),
        ('{"type": "speech.start", "payload": {}}', "Unknown message type"),
    ],
)
def test_malformed_frames_are_invalid_message(frame: str, needle: str) -> None:
    """Non-JSON, non-objects, missing type/payload and unknown types are INVALID_MESSAGE."""
    err = error_of(frame)
    assert err.code is ErrorCode.INVALID_MESSAGE
    assert needle in err.message


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("language", ""),
        ("language", "x" * 17),
        ("language", 5),
        ("language", "xx"),
        ("language", "klingon"),
        ("sample_rate", 7999),
        ("sample_rate", 96001),
        ("sample_rate", 16000.0),
        ("sample_rate", True),
        ("sample_rate", "16000"),
        ("encoding", "mp3"),
        ("window_duration_ms", 999),
        ("window_duration_ms", 60001),
        ("window_duration_ms", False),
        ("overlap_duration_ms", -1),
        ("overlap_duration_ms", 5000),
        ("model_id", "m" * 129),
        ("model_id", 7),
        ("resume_checkpoint", "abc"),
        ("task", "translation"),
        ("task", True),
        ("task", None),
    ],
)
def test_out_of_range_or_wrong_type_fields_name_the_field(field: str, value: object) -> None:
    """A payload field of the wrong JSON type or out of range is INVALID_MESSAGE naming it."""
    err = error_of(config_msg(**{field: value}))
    assert err.code is ErrorCode.INVALID_MESSAGE
    assert field in err.message


def test_range_edges_are_accepted() -> None:
    """The inclusive edges of every range are valid."""
    msg = parse(
        config_msg(
            sample_rate=96000,
            window_duration_ms=1000,
            overlap_duration_ms=999,
            language="en-" + "x" * 13,
            model_id="m" * 128,
        )
    )
    assert isinstance(msg, SpeechConfig)
    assert parse(config_msg(sample_rate=8000, window_duration_ms=60000, overlap_duration_ms=0))


def test_an_unknown_language_is_refused_naming_the_field_and_the_list() -> None:
    """language "xx" is INVALID_MESSAGE naming 'language' and Whisper's language list."""
    err = error_of(config_msg(language="xx"))
    assert err.code is ErrorCode.INVALID_MESSAGE
    assert "'language'" in err.message and "Whisper language code" in err.message


@pytest.mark.parametrize(
    ("given", "code"),
    [
        ("de", "de"),
        ("DE", "de"),
        ("en-US", "en"),
        ("pt_BR", "pt"),
        ("German", "de"),
        ("Auto", "auto"),
    ],
)
def test_a_language_is_normalised_to_its_whisper_code(given: str, code: str) -> None:
    """Any case, a region subtag or the English name: the config holds Whisper's code."""
    msg = parse(config_msg(language=given))
    assert isinstance(msg, SpeechConfig) and msg.language == code


def test_null_model_id_means_default() -> None:
    """model_id null is treated like an omitted model_id."""
    msg = parse(config_msg(model_id=None))
    assert isinstance(msg, SpeechConfig) and msg.model_id == "whisper-tiny.en"


def test_effective_config_reports_the_serving_model() -> None:
    """The ack's effective_config names the model that actually serves."""
    msg = parse(config_msg(model_id="whisper-large-v3"))
    assert isinstance(msg, SpeechConfig)
    assert msg.effective("whisper-tiny.en")["model_id"] == "whisper-tiny.en"


def test_task_defaults_to_transcribe_and_translate_is_taken() -> None:
    """task (an extra field) is "transcribe" when omitted; "translate" is kept, and the ack's
    effective_config shows it either way."""
    plain, translated = parse(config_msg()), parse(config_msg(task="translate"))
    assert isinstance(plain, SpeechConfig) and isinstance(translated, SpeechConfig)
    assert (plain.task, translated.task) == ("transcribe", "translate")
    assert plain.effective("m")["task"] == "transcribe"
    assert translated.effective("m")["task"] == "translate"


def test_an_unknown_task_is_refused_naming_the_field_and_the_choices() -> None:
    """task "summarise" is INVALID_MESSAGE naming 'task' and both values."""
    err = error_of(config_msg(task="summarise"))
    assert err.code is ErrorCode.INVALID_MESSAGE
    assert "'task'" in err.message and "'transcribe' or 'translate'" in err.message


def test_events_have_type_session_id_and_payload() -> None:
    """Every server event is {type, session_id, payload} like the seed's."""
    words = (Word("Hello", 0, 400, 0.9), Word("world.", 450, 900, 0.7))
    event = Phrase(0, 900, "Hello world.", words, "Success", confidence(words))
    phrase = json.loads(protocol.encode(event, "abc"))
    assert phrase["type"] == "speech.phrase" and phrase["session_id"] == "abc"
    assert phrase["payload"]["status"] == "Success"
    assert phrase["payload"]["confidence"] == pytest.approx(0.8)
    assert phrase["payload"]["words"][1] == {
        "text": "world.",
        "offset": 450,
        "duration": 450,
        "confidence": 0.7,
    }
    err = json.loads(protocol.encode(Error(ErrorCode.AUDIO_ERROR, "bad packet"), ""))
    assert err["payload"] == {"code": "AUDIO_ERROR", "message": "bad packet"}
    bp = json.loads(protocol.encode(Backpressure("slow_down"), "abc"))
    assert bp["payload"] == {"action": "slow_down"}


@pytest.mark.parametrize(
    "frame",
    [
        '{"type":"\\ud800","payload":{}}',
        '{"type":"speech.config","payload":{"sample_rate":' + "9" * 5000 + "}}",
        '{"type":"speech.config","payload":{"language":"\\udfff"}}',
        '{"type":"speech.config","payload":{"resume_checkpoint":{"session_id":"\\ud800"}}}',
        '{"type":"speech.config","payload":{"resume_checkpoint":'
        '{"session_id":"a","signature":"b","full_transcript":"\\ud800"}}}',
        '{"type":"speech.config","payload":{"sample_rate":NaN}}',
        '{"type":"speech.config","payload":{"sample_rate":Infinity}}',
        '{"type":"speech.config","payload":{"sample_rate":1e999}}',
        "[" * 100_000 + "]" * 100_000,
        '{"type":"speech.end","payload":{"a":' + "[" * 40 + "]" * 40 + "}}",
    ],
)
def test_hostile_json_is_invalid_message(frame: str) -> None:
    """Surrogates, huge integers, NaN/Infinity and deep nesting are INVALID_MESSAGE, never
    an unexpected exception."""
    with pytest.raises(ClientError) as info:
        parse(frame)
    assert info.value.code is ErrorCode.INVALID_MESSAGE


def test_an_event_is_always_encodable_as_utf8() -> None:
    """Even a lone surrogate that got into an event's text leaves as a valid UTF-8 frame."""
    frame = protocol.encode(Error(ErrorCode.INVALID_MESSAGE, "bad \ud800"), "")
    frame.encode("utf-8")
    assert json.loads(frame)["payload"]["message"] == "bad \ud800"
