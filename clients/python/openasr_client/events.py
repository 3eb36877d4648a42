"""Typed server events of the OpenASR wire protocol, parsed once at the edge.

Shapes: the C++ seed README ("Server → Client") plus OpenASR's extra ``words`` list on phrases
and hypotheses (``PROTOCOL.md`` "Windows and events"). Unknown fields are ignored and unknown
event types become ``Unknown``, so a newer server never breaks an older client.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "Backpressure",
    "Checkpoint",
    "ConfigAck",
    "EndOfStream",
    "Error",
    "Event",
    "Hypothesis",
    "Phrase",
    "ProtocolError",
    "Unknown",
    "Word",
    "join_words",
    "parse_event",
]


class ProtocolError(ValueError):
    """A server frame that is not a protocol event (not JSON, no ``type``, bad field type)."""


@dataclass(frozen=True, slots=True)
class Word:
    """One word on the session timeline: ``offset``/``duration`` in ms, confidence 0..1."""

    text: str
    offset: int
    duration: int
    confidence: float = 0.0

    @property
    def end(self) -> int:
        """End of the word in ms from session start."""
        return self.offset + self.duration


@dataclass(frozen=True, slots=True)
class ConfigAck:
    """``speech.config.ack``: the session exists; ``effective_config`` is what the server does."""

    session_id: str
    effective_config: Mapping[str, Any]
    resumed: bool = False
    last_audio_ms: int = 0


@dataclass(frozen=True, slots=True)
class Hypothesis:
    """``speech.hypothesis``: interim text that may still change."""

    session_id: str
    text: str
    offset: int
    duration: int
    words: tuple[Word, ...] = ()


@dataclass(frozen=True, slots=True)
class Phrase:
    """``speech.phrase`` with status ``Success``: finalized text, it will not change."""

    session_id: str
    text: str
    offset: int
    duration: int
    confidence: float = 0.0
    words: tuple[Word, ...] = ()

    @property
    def end(self) -> int:
        """End of the phrase in ms from session start."""
        return self.offset + self.duration


@dataclass(frozen=True, slots=True)
class EndOfStream:
    """``speech.phrase`` with status ``EndOfStream``: the full transcript after ``speech.end``."""

    session_id: str
    text: str
    offset: int
    duration: int
    confidence: float = 0.0


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """``speech.checkpoint``: keep ``raw`` and hand it back as ``resume_checkpoint``."""

    session_id: str
    last_audio_ms: int
    full_transcript: str
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Backpressure:
    """``speech.backpressure``: ``slow_down`` pauses sending, ``ok`` continues."""

    session_id: str
    action: Literal["slow_down", "ok"]


@dataclass(frozen=True, slots=True)
class Error:
    """``speech.error``: ``code`` is one of the seed's error codes (e.g. ``RATE_LIMITED``)."""

    session_id: str
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class Unknown:
    """An event type this client does not know (kept for forward compatibility)."""

    type: str
    session_id: str
    payload: Mapping[str, Any]


Event = ConfigAck | Hypothesis | Phrase | EndOfStream | Checkpoint | Backpressure | Error | Unknown


def _int(payload: Mapping[str, Any], name: str, default: int | None = None) -> int:
    value = payload.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ProtocolError(f"'{name}' must be a number, got {value!r}")
    return int(value)


def _str(payload: Mapping[str, Any], name: str, default: str | None = None) -> str:
    value = payload.get(name, default)
    if not isinstance(value, str):
        raise ProtocolError(f"'{name}' must be a string, got {value!r}")
    return value


def _float(payload: Mapping[str, Any], name: str) -> float:
    value = payload.get(name, 0.0)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ProtocolError(f"'{name}' must be a number, got {value!r}")
    return float(value)


def _words(payload: Mapping[str, Any]) -> tuple[Word, ...]:
    raw = payload.get("words") or []
    if not isinstance(raw, list):
        raise ProtocolError("'words' must be a list")
    words = []
    for item in raw:
        if not isinstance(item, dict):
            raise ProtocolError("'words' items must be objects")
        words.append(
            Word(
                text=_str(item, "text"),
                offset=_int(item, "offset"),
                duration=_int(item, "duration", 0),
                confidence=_float(item, "confidence"),
            )
        )
    return tuple(words)


def parse_event(frame: str | bytes | Mapping[str, Any]) -> Event:
    """Parse one server text frame (or its decoded JSON) into a typed event."""
    if isinstance(frame, str | bytes):
        try:
            data = json.loads(frame)
        except (ValueError, RecursionError) as exc:
            raise ProtocolError(f"server frame is not JSON: {exc}") from None
    else:
        data = frame
    if not isinstance(data, dict):
        raise ProtocolError("server frame must be a JSON object")
    kind = data.get("type")
    if not isinstance(kind, str):
        raise ProtocolError("server frame lacks a string 'type'")
    payload = data.get("payload")
    if not isinstance(payload, dict):
        raise ProtocolError(f"{kind}: 'payload' must be an object")
    sid = data.get("session_id") or payload.get("session_id") or ""
    if not isinstance(sid, str):
        raise ProtocolError("'session_id' must be a string")
    if kind == "speech.config.ack":
        effective = payload.get("effective_config") or {}
        if not isinstance(effective, dict):
            raise ProtocolError("'effective_config' must be an object")
        return ConfigAck(
            session_id=_str(payload, "session_id", sid),
            effective_config=effective,
            resumed=bool(payload.get("resumed", False)),
            last_audio_ms=_int(payload, "last_audio_ms", 0),
        )
    if kind == "speech.hypothesis":
        return Hypothesis(
            session_id=sid,
            text=_str(payload, "text"),
            offset=_int(payload, "offset", 0),
            duration=_int(payload, "duration", 0),
            words=_words(payload),
        )
    if kind == "speech.phrase":
        status = _str(payload, "status", "Success")
        common = {
            "session_id": sid,
            "text": _str(payload, "text"),
            "offset": _int(payload, "offset", 0),
            "duration": _int(payload, "duration", 0),
            "confidence": _float(payload, "confidence"),
        }
        if status == "EndOfStream":
            return EndOfStream(**common)
        return Phrase(**common, words=_words(payload))
    if kind == "speech.checkpoint":
        return Checkpoint(
            session_id=_str(payload, "session_id", sid),
            last_audio_ms=_int(payload, "last_audio_ms", 0),
            full_transcript=_str(payload, "full_transcript", ""),
            raw=dict(payload),
        )
    if kind == "speech.backpressure":
        action = payload.get("action")
        if action not in ("slow_down", "ok"):
            raise ProtocolError(f"'action' must be 'slow_down' or 'ok', got {action!r}")
        return Backpressure(session_id=sid, action=action)
    if kind == "speech.error":
        return Error(
            session_id=sid,
            code=_str(payload, "code", "UNKNOWN"),
            message=_str(payload, "message", ""),
        )
    return Unknown(type=kind, session_id=sid, payload=payload)


_ATTACHING = frozenset(".,!?;:…%)]}\"'»”’")


def join_words(words: tuple[Word, ...] | list[Word]) -> str:
    """Words joined with spaces; bare punctuation attaches to the word before it."""
    parts: list[str] = []
    for word in words:
        text = word.text.strip()
        if not text:
            continue
        bare_punct = not any(ch.isalnum() for ch in text) and text[0] in _ATTACHING
        if parts and not bare_punct:
            parts.append(" ")
        parts.append(text)
    return "".join(parts)
