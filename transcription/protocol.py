"""The ``/transcribe`` wire format: parse client frames into typed messages, encode events.

Normative: ``docs/PROTOCOL.md`` ("Session state machine", "Client messages", "Server events")
and the C++ seed README ("Messages", "Error Codes"). Every rule about the shape of a frame has
its home here: the consumer calls ``parse_client_message`` on each text frame and ``encode`` on
each typed event (``events.py``) the session returns. Another wire protocol gets a module of
its own beside this one, on the same events.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn, get_args

from transcription.audio.decode import Encoding
from transcription.events import (
    Backpressure,
    Checkpoint,
    Close,
    ConfigAck,
    Error,
    Event,
    Flushed,
    Hypothesis,
    Phrase,
    SpeechStarted,
    SpeechStopped,
    invalid,
)
from transcription.inference.types import Word
from transcription.languages import TRANSCRIBE, Task, UnknownLanguage, normalize_language

# --- limits of the wire format (docs/PROTOCOL.md "speech.config") ---
LANGUAGE_MAX_CHARS = 16
MODEL_ID_MAX_CHARS = 128
SAMPLE_RATE_MIN_HZ = 8000
SAMPLE_RATE_MAX_HZ = 96000
WINDOW_MIN_MS = 1000
WINDOW_MAX_MS = 60000
ENCODINGS = ("pcm_s16le", "opus", "pcm_mulaw", "pcm_alaw")
TASKS: tuple[Task, ...] = get_args(Task)
# G.711 is telephony audio: without a sample_rate it is taken to be 8 kHz (not the default).
G711_ENCODINGS = ("pcm_mulaw", "pcm_alaw")
G711_DEFAULT_RATE_HZ = 8000
# Hostile JSON (docs/PROTOCOL.md "Client messages"): the deepest legitimate frame is a
# resume_checkpoint's word list (depth 5); integers beyond 20 digits fit no field, and Python
# refuses to parse more than 4300 digits at all (ValueError, not JSONDecodeError).
JSON_MAX_DEPTH = 16
JSON_MAX_INT_DIGITS = 20


# --- client messages ---


@dataclass(frozen=True, slots=True)
class ConfigDefaults:
    """Server-side defaults for fields a ``speech.config`` omits."""

    language: str = "en"
    sample_rate: int = 16000
    encoding: str = "pcm_s16le"
    window_duration_ms: int = 5000
    overlap_duration_ms: int = 500
    model_id: str = "whisper-tiny.en"


@dataclass(frozen=True, slots=True)
class SpeechConfig:
    """A validated ``speech.config`` payload."""

    language: str
    sample_rate: int
    encoding: Encoding
    window_duration_ms: int
    overlap_duration_ms: int
    model_id: str
    resume_checkpoint: Mapping[str, Any] | None = None
    task: Task = TRANSCRIBE  # an extra field: "translate" gives English text of any language

    def effective(self, serving_model_id: str) -> dict[str, Any]:
        """The ``effective_config`` of the ack: what the server will actually do."""
        return {
            "language": self.language,
            "sample_rate": self.sample_rate,
            "encoding": self.encoding,
            "window_duration_ms": self.window_duration_ms,
            "overlap_duration_ms": self.overlap_duration_ms,
            "model_id": serving_model_id,
            "task": self.task,
        }


@dataclass(frozen=True, slots=True)
class SpeechEnd:
    """``speech.end``: no more audio will come."""


ClientMessage = SpeechConfig | SpeechEnd


def _int_field(payload: Mapping[str, Any], name: str, default: int, lo: int, hi: int) -> int:
    value = payload.get(name, default)
    # JSON booleans are not integers, and 5000.0 is not a JSON integer (docs/PROTOCOL.md)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise invalid(f"Missing or invalid '{name}': must be an integer between {lo} and {hi}")
    return value


def _str_field(payload: Mapping[str, Any], name: str, default: str, max_chars: int) -> str:
    value = payload.get(name, default)
    if value is None and name == "model_id":
        value = default
    if not isinstance(value, str) or not 0 < len(value) <= max_chars:
        raise invalid(f"Missing or invalid '{name}': must be a string of 1 to {max_chars} chars")
    return value


def language_field(value: str, name: str = "language") -> str:
    """A language as its Whisper code (``languages.normalize_language``), or
    ``INVALID_MESSAGE`` naming the field and where the codes come from."""
    try:
        return normalize_language(value)
    except UnknownLanguage as exc:
        raise invalid(f"Invalid '{name}': {exc}") from None


def parse_speech_config(payload: Mapping[str, Any], defaults: ConfigDefaults) -> SpeechConfig:
    """Validate a ``speech.config`` payload; omitted fields take the server's defaults."""
    language = language_field(
        _str_field(payload, "language", defaults.language, LANGUAGE_MAX_CHARS)
    )
    encoding = payload.get("encoding", defaults.encoding)
    if encoding not in ENCODINGS:
        raise invalid(
            "Missing or invalid 'encoding': must be 'pcm_s16le', 'opus', 'pcm_mulaw' or 'pcm_alaw'"
        )
    default_rate = G711_DEFAULT_RATE_HZ if encoding in G711_ENCODINGS else defaults.sample_rate
    sample_rate = _int_field(
        payload, "sample_rate", default_rate, SAMPLE_RATE_MIN_HZ, SAMPLE_RATE_MAX_HZ
    )
    window = _int_field(
        payload, "window_duration_ms", defaults.window_duration_ms, WINDOW_MIN_MS, WINDOW_MAX_MS
    )
    default_overlap = min(defaults.overlap_duration_ms, window - 1)
    overlap = _int_field(payload, "overlap_duration_ms", default_overlap, 0, window - 1)
    model_id = _str_field(payload, "model_id", defaults.model_id, MODEL_ID_MAX_CHARS)
    resume = payload.get("resume_checkpoint")
    if resume is not None and not isinstance(resume, dict):
        raise invalid("Invalid 'resume_checkpoint': must be an object or null")
    task = payload.get("task", TRANSCRIBE)
    if task not in TASKS:
        raise invalid("Invalid 'task': must be 'transcribe' or 'translate'")
    return SpeechConfig(
        language=language,
        sample_rate=sample_rate,
        encoding=encoding,
        window_duration_ms=window,
        overlap_duration_ms=overlap,
        model_id=model_id,
        resume_checkpoint=resume,
        task=task,
    )


def _reject_constant(name: str) -> NoReturn:
    raise invalid(f"Malformed JSON: {name} is not a JSON number")


def _bounded_int(digits: str) -> int:
    if len(digits.lstrip("-")) > JSON_MAX_INT_DIGITS:
        raise invalid(f"Invalid number: integers have at most {JSON_MAX_INT_DIGITS} digits")
    return int(digits)


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise invalid("Invalid number: out of range")
    return value


def _check_tree(value: Any, depth: int = 0) -> None:
    """Refuse what ``json.loads`` accepts but nothing downstream should see: nesting deeper
    than any message has, and strings with lone surrogates (``"\\ud800"`` is valid JSON
    text but not encodable as UTF-8, so it would fail later, wherever it is echoed)."""
    if depth > JSON_MAX_DEPTH:
        raise invalid(f"Invalid message: nested deeper than {JSON_MAX_DEPTH} levels")
    if isinstance(value, str):
        _check_text(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(key)
            _check_tree(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_tree(item, depth + 1)


def _check_text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise invalid("Invalid string: contains a lone UTF-16 surrogate") from None


def parse_json(text: str) -> Any:
    """One text frame as JSON, hardened (no NaN, bounded integers and depth, no lone
    surrogates); ``ClientError(INVALID_MESSAGE)`` otherwise. Every wire API parses with it."""
    try:
        data = json.loads(
            text,
            parse_constant=_reject_constant,
            parse_int=_bounded_int,
            parse_float=_finite_float,
        )
    except (ValueError, RecursionError):
        # JSONDecodeError is a ValueError; so is int()'s refusal of a huge literal.
        raise invalid("Malformed JSON: the text frame is not valid JSON") from None
    _check_tree(data)
    return data


def parse_client_message(text: str, defaults: ConfigDefaults) -> ClientMessage:
    """Parse one text frame into a typed message or raise ``ClientError(INVALID_MESSAGE)``."""
    data = parse_json(text)
    if not isinstance(data, dict):
        raise invalid("Invalid message: must be a JSON object with 'type' and 'payload'")
    msg_type = data.get("type")
    if not isinstance(msg_type, str):
        raise invalid("Missing or invalid 'type': must be a string")
    payload = data.get("payload")
    if not isinstance(payload, dict):
        raise invalid("Missing or invalid 'payload': must be a JSON object")
    if msg_type == "speech.config":
        return parse_speech_config(payload, defaults)
    if msg_type == "speech.end":
        return SpeechEnd()
    raise invalid(f"Unknown message type {msg_type[:64]!r}")


# --- server events ---


def words_payload(words: Sequence[Word]) -> list[dict[str, Any]]:
    """Per-word timeline (an extra field; seed clients ignore it)."""
    return [
        {
            "text": w.text,
            "offset": w.start_ms,
            "duration": max(0, w.end_ms - w.start_ms),
            "confidence": round(w.probability, 4),
        }
        for w in words
    ]


def _frame(event_type: str, session_id: str, payload: Mapping[str, Any]) -> str:
    body = {"type": event_type, "session_id": session_id, "payload": payload}
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # Whatever got in (a surrogate from a decoder), the frame still goes out.
        text = json.dumps(body, ensure_ascii=True, separators=(",", ":"))
    return text


def encode(event: Event, session_id: str) -> str:
    """The text frame of one event (``Close`` has none: the consumer closes the socket)."""
    match event:
        case ConfigAck():
            ack: dict[str, Any] = {
                "session_id": session_id,
                "effective_config": dict(event.effective_config),
            }
            if event.resumed:
                ack.update(resumed=True, last_audio_ms=event.last_audio_ms)
            return _frame("speech.config.ack", session_id, ack)
        case Hypothesis():
            return _frame(
                "speech.hypothesis",
                session_id,
                {
                    "offset": event.offset_ms,
                    "duration": event.duration_ms,
                    "text": event.text,
                    "words": words_payload(event.words),
                },
            )
        case Phrase():
            phrase: dict[str, Any] = {
                "offset": event.offset_ms,
                "duration": event.duration_ms,
                "text": event.text,
                "confidence": event.confidence,
                "status": event.status,
                "words": words_payload(event.words),
            }
            if event.language is not None:
                phrase["language"] = event.language
            if event.language_probability is not None:
                phrase["language_probability"] = event.language_probability
            return _frame("speech.phrase", session_id, phrase)
        case Checkpoint():
            return _frame("speech.checkpoint", session_id, event.payload)
        case Backpressure():
            return _frame("speech.backpressure", session_id, {"action": event.action})
        case Error():
            return _frame(
                "speech.error", session_id, {"code": str(event.code), "message": event.message}
            )
        case Close() | SpeechStarted() | SpeechStopped() | Flushed():
            # Close: the consumer closes the socket. The speech and flush events exist only
            # for sessions of the compatible APIs (TurnOptions, Session.flush).
            raise ValueError(f"{type(event).__name__} has no /transcribe frame")
