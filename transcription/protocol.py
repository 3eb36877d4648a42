"""The wire format: client messages, server events, error codes and close codes.

Normative: ``shared/spec/PROTOCOL.md`` ("Session state machine", "speech.config", "Windows and
events") and the C++ seed README ("Messages", "Error Codes"). Every rule of the spec about the
shape of a message has its home here; the consumer only calls ``parse_client_message`` and the
``*_event`` builders.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from transcription.inference.types import Word

# --- limits of the wire format (PROTOCOL.md "speech.config") ---
LANGUAGE_MAX_CHARS = 16
MODEL_ID_MAX_CHARS = 128
SAMPLE_RATE_MIN_HZ = 8000
SAMPLE_RATE_MAX_HZ = 96000
WINDOW_MIN_MS = 1000
WINDOW_MAX_MS = 60000
ENCODINGS = ("pcm_s16le", "opus")

# --- close codes (RFC 6455 section 7.4.1) ---
# An application may only send 1000 or 3000-4999 (autobahn enforces it), so our own reasons
# mirror the RFC codes in the private 4000 range. 1009 is sent by the WebSocket layer itself.
CLOSE_NORMAL = 1000
CLOSE_TOO_BIG = 1009
CLOSE_IDLE_TIMEOUT = 4008  # mirrors 1008 policy violation: no message for WSS_IDLE_TIMEOUT_S
CLOSE_TRY_AGAIN = 4013  # mirrors 1013 try again later: node full/draining, no worker


class ErrorCode(enum.StrEnum):
    """The ``code`` of a ``speech.error`` (seed "Error Codes", plus two server-side ones)."""

    INVALID_MESSAGE = "INVALID_MESSAGE"
    INVALID_STATE = "INVALID_STATE"
    SESSION_LIMIT = "SESSION_LIMIT"
    SESSION_NOT_FOUND = "SESSION_NOT_FOUND"
    AUDIO_ERROR = "AUDIO_ERROR"
    RATE_LIMITED = "RATE_LIMITED"
    # Not in the seed; seed clients show the message. Sent when no inference worker answers.
    SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
    INTERNAL_ERROR = "INTERNAL_ERROR"


class ClientError(Exception):
    """A client mistake: becomes one ``speech.error``; ``close_code`` set when it is fatal."""

    def __init__(self, code: ErrorCode, message: str, *, close_code: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.close_code = close_code


def invalid(message: str) -> ClientError:
    return ClientError(ErrorCode.INVALID_MESSAGE, message)


# --- client messages ---


@dataclass(frozen=True, slots=True)
class ConfigDefaults:
    """Server-side defaults for fields a ``speech.config`` omits (PROTOCOL.md "speech.config")."""

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
    encoding: Literal["pcm_s16le", "opus"]
    window_duration_ms: int
    overlap_duration_ms: int
    model_id: str
    resume_checkpoint: Mapping[str, Any] | None = None

    def effective(self, serving_model_id: str) -> dict[str, Any]:
        """The ``effective_config`` of the ack: what the server will actually do."""
        return {
            "language": self.language,
            "sample_rate": self.sample_rate,
            "encoding": self.encoding,
            "window_duration_ms": self.window_duration_ms,
            "overlap_duration_ms": self.overlap_duration_ms,
            "model_id": serving_model_id,
        }


@dataclass(frozen=True, slots=True)
class SpeechEnd:
    """``speech.end``: no more audio will come."""


ClientMessage = SpeechConfig | SpeechEnd


def _int_field(payload: Mapping[str, Any], name: str, default: int, lo: int, hi: int) -> int:
    value = payload.get(name, default)
    # JSON booleans are not integers, and 5000.0 is not a JSON integer (PROTOCOL.md)
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


def parse_speech_config(payload: Mapping[str, Any], defaults: ConfigDefaults) -> SpeechConfig:
    """Validate a ``speech.config`` payload; omitted fields take the server's defaults."""
    language = _str_field(payload, "language", defaults.language, LANGUAGE_MAX_CHARS)
    sample_rate = _int_field(
        payload, "sample_rate", defaults.sample_rate, SAMPLE_RATE_MIN_HZ, SAMPLE_RATE_MAX_HZ
    )
    encoding = payload.get("encoding", defaults.encoding)
    if encoding not in ENCODINGS:
        raise invalid("Missing or invalid 'encoding': must be 'pcm_s16le' or 'opus'")
    window = _int_field(
        payload, "window_duration_ms", defaults.window_duration_ms, WINDOW_MIN_MS, WINDOW_MAX_MS
    )
    default_overlap = min(defaults.overlap_duration_ms, window - 1)
    overlap = _int_field(payload, "overlap_duration_ms", default_overlap, 0, window - 1)
    model_id = _str_field(payload, "model_id", defaults.model_id, MODEL_ID_MAX_CHARS)
    resume = payload.get("resume_checkpoint")
    if resume is not None and not isinstance(resume, dict):
        raise invalid("Invalid 'resume_checkpoint': must be an object or null")
    return SpeechConfig(
        language=language,
        sample_rate=sample_rate,
        encoding=encoding,
        window_duration_ms=window,
        overlap_duration_ms=overlap,
        model_id=model_id,
        resume_checkpoint=resume,
    )


def parse_client_message(text: str, defaults: ConfigDefaults) -> ClientMessage:
    """Parse one text frame into a typed message or raise ``ClientError(INVALID_MESSAGE)``."""
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        raise invalid("Malformed JSON: the text frame is not valid JSON") from None
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
    raise invalid(f"Unknown message type '{msg_type[:64]}'")


# --- server events ---


def _event(event_type: str, session_id: str | None, payload: Mapping[str, Any]) -> str:
    return json.dumps(
        {"type": event_type, "session_id": session_id or "", "payload": payload},
        ensure_ascii=False,
        separators=(",", ":"),
    )


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


def confidence(words: Sequence[Word]) -> float:
    """A phrase's confidence: the mean word probability (0 when there are no words)."""
    if not words:
        return 0.0
    return round(sum(w.probability for w in words) / len(words), 4)


def config_ack_event(session_id: str, effective_config: Mapping[str, Any], **extra: Any) -> str:
    return _event(
        "speech.config.ack",
        session_id,
        {"session_id": session_id, "effective_config": dict(effective_config), **extra},
    )


def hypothesis_event(
    session_id: str, offset_ms: int, duration_ms: int, text: str, words: Sequence[Word]
) -> str:
    return _event(
        "speech.hypothesis",
        session_id,
        {
            "offset": offset_ms,
            "duration": duration_ms,
            "text": text,
            "words": words_payload(words),
        },
    )


def phrase_event(
    session_id: str,
    offset_ms: int,
    duration_ms: int,
    text: str,
    words: Sequence[Word],
    status: Literal["Success", "EndOfStream"],
    phrase_confidence: float | None = None,
) -> str:
    return _event(
        "speech.phrase",
        session_id,
        {
            "offset": offset_ms,
            "duration": duration_ms,
            "text": text,
            "confidence": confidence(words) if phrase_confidence is None else phrase_confidence,
            "status": status,
            "words": words_payload(words),
        },
    )


def checkpoint_event(session_id: str, checkpoint: Mapping[str, Any]) -> str:
    return _event("speech.checkpoint", session_id, checkpoint)


def backpressure_event(session_id: str, action: Literal["slow_down", "ok"]) -> str:
    return _event("speech.backpressure", session_id, {"action": action})


def error_event(session_id: str | None, code: ErrorCode, message: str) -> str:
    return _event("speech.error", session_id, {"code": str(code), "message": message})
