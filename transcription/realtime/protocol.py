"""The OpenAI Realtime API in transcription mode (``/v1/realtime?intent=transcription``): parse
client events, encode the session's events.

Reference: the event models of the ``openai`` SDK (``openai.types.realtime``: the current
``session.update`` with ``type: "transcription"``; ``openai.types.beta.realtime``: the older
``transcription_session.update``) and the Realtime API reference. What is supported, and what
is accepted and ignored, is listed in the README ("OpenAI Realtime transcription").

Items: every commit (the client's ``input_audio_buffer.commit``, or a ``server_vad`` endpoint)
closes one input-audio item. Its transcript streams as
``conversation.item.input_audio_transcription.delta`` events that only ever append: a delta is
sent only for words the session has committed (never an interim guess), so the deltas of an
item concatenate to its ``completed`` transcript.
"""

from __future__ import annotations

import base64
import binascii
import collections
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from transcription.events import (
    Backpressure,
    Checkpoint,
    Close,
    ConfigAck,
    Error,
    ErrorCode,
    Event,
    Flushed,
    Hypothesis,
    Phrase,
    SpeechStarted,
    SpeechStopped,
)
from transcription.inference.types import Word
from transcription.protocol import parse_json
from transcription.realtime.config import (
    RealtimeConfig,
    SessionUpdate,
    error,
    new_id,
    parse_session_update,
)
from transcription.transcript import join_words

# The Realtime API refuses a commit of less than 100 ms of audio.
MIN_COMMIT_MS = 100


# --- client events ---


@dataclass(frozen=True, slots=True)
class Append:
    """``input_audio_buffer.append``: decoded audio bytes."""

    audio: bytes


@dataclass(frozen=True, slots=True)
class Commit:
    """``input_audio_buffer.commit``."""


@dataclass(frozen=True, slots=True)
class Clear:
    """``input_audio_buffer.clear``."""


ClientEvent = SessionUpdate | Append | Commit | Clear


def parse_client_event(text: str, current: RealtimeConfig) -> tuple[str | None, ClientEvent]:
    """One text frame: its ``event_id`` and the typed event; ClientError otherwise."""
    data = parse_json(text)
    if not isinstance(data, dict):
        raise error("The event must be a JSON object", "invalid_event")
    event_id = data.get("event_id")
    event_id = event_id if isinstance(event_id, str) else None
    kind = data.get("type")
    if not isinstance(kind, str):
        raise error("Missing or invalid 'type': must be a string", "invalid_event", "type")
    if kind == "input_audio_buffer.append":
        return event_id, Append(_audio(data.get("audio")))
    if kind == "input_audio_buffer.commit":
        return event_id, Commit()
    if kind == "input_audio_buffer.clear":
        return event_id, Clear()
    if kind in ("session.update", "transcription_session.update"):
        session = data.get("session")
        if not isinstance(session, dict):
            raise error("Missing or invalid 'session': must be an object", "invalid_value")
        return event_id, parse_session_update(kind, session, current)
    raise error(
        f"Unsupported event type {kind[:64]!r} in a transcription session: use session.update "
        "or input_audio_buffer.append / commit / clear",
        "invalid_event",
        "type",
    )


def _audio(value: Any) -> bytes:
    if not isinstance(value, str):
        raise error("Missing or invalid 'audio': must be a base64 string", "invalid_value", "audio")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise error("Invalid 'audio': not valid base64", "invalid_value", "audio") from None


# --- server events ---


def frame(event_type: str, **fields: Any) -> str:
    """One server event as a text frame, with a fresh ``event_id``."""
    body = {"type": event_type, "event_id": new_id("event"), **fields}
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))


def logprobs(words: Sequence[Word], first: bool) -> list[dict[str, Any]]:
    """Per-word log probabilities (``include: ["item.input_audio_transcription.logprobs"]``):
    our unit is the word Whisper returned, with the spacing of the delta text."""
    out = []
    for i, word in enumerate(words):
        token = word.text if first and i == 0 else f" {word.text}"
        out.append(
            {
                "token": token,
                "bytes": list(token.encode()),
                "logprob": round(math.log(max(word.probability, 1e-6)), 4),
            }
        )
    return out


_ERROR_TYPES = {
    ErrorCode.INTERNAL_ERROR: "server_error",
    ErrorCode.SERVICE_UNAVAILABLE: "server_error",
}


@dataclass
class _Item:
    item_id: str
    words: list[Word]

    @property
    def text(self) -> str:
        return join_words(self.words)


class RealtimeEncoder:
    """The session's events as Realtime server events; holds the items (one per commit)."""

    def __init__(self) -> None:
        self.config = RealtimeConfig()
        self._open = _Item(new_id("item"), [])  # receives audio and words until committed
        self._committed: collections.deque[_Item] = collections.deque()  # awaiting Flushed
        self._previous_item_id: str | None = None

    def commit(self) -> str:
        """The open item is committed (a flush was asked for): the committed event."""
        item, self._open = self._open, _Item(new_id("item"), [])
        self._committed.append(item)
        previous, self._previous_item_id = self._previous_item_id, item.item_id
        return frame(
            "input_audio_buffer.committed", item_id=item.item_id, previous_item_id=previous
        )

    def frames(self, event: Event) -> list[str]:
        """The Realtime events of one session event."""
        match event:
            case Phrase(status="Success"):
                return self._delta(self._open, event.words)
            case Flushed():
                item = self._committed.popleft() if self._committed else self._open
                return [*self._delta(item, event.words), self._completed(item, event)]
            case SpeechStarted():
                start = max(0, event.at_ms - self._padding_ms())
                return [
                    frame(
                        "input_audio_buffer.speech_started",
                        audio_start_ms=start,
                        item_id=self._open.item_id,
                    )
                ]
            case SpeechStopped():
                if not event.flushing:
                    return []
                stopped = frame(
                    "input_audio_buffer.speech_stopped",
                    audio_end_ms=event.at_ms,
                    item_id=self._open.item_id,
                )
                return [stopped, self.commit()]
            case Error():
                return self._error(event)
            case ConfigAck() | Hypothesis() | Phrase() | Checkpoint() | Backpressure() | Close():
                # Deltas carry committed words only; the API has no checkpoints or resume.
                return []

    def _padding_ms(self) -> int:
        vad = self.config.turn_detection
        return vad.prefix_padding_ms if vad else 0

    def _delta(self, item: _Item, words: Sequence[Word]) -> list[str]:
        if not words:
            return []
        first = not item.words
        before = item.text
        item.words += words
        text = item.text[len(before) :] if item.text.startswith(before) else " " + join_words(words)
        fields: dict[str, Any] = {"item_id": item.item_id, "content_index": 0, "delta": text}
        if self.config.logprobs:
            fields["logprobs"] = logprobs(words, first)
        return [frame("conversation.item.input_audio_transcription.delta", **fields)]

    def _completed(self, item: _Item, event: Flushed) -> str:
        fields: dict[str, Any] = {
            "item_id": item.item_id,
            "content_index": 0,
            "transcript": item.text,
            "usage": {
                "type": "duration",
                "seconds": round((event.end_ms - event.start_ms) / 1000, 3),
            },
        }
        if self.config.logprobs:
            fields["logprobs"] = logprobs(item.words, True)
        return frame("conversation.item.input_audio_transcription.completed", **fields)

    def _error(self, event: Error) -> list[str]:
        code, _, param = (event.detail or "").partition(":")
        frames = []
        if event.code in _ERROR_TYPES:
            # The words of committed items will not come: each fails.
            for item in self._committed:
                frames.append(
                    frame(
                        "conversation.item.input_audio_transcription.failed",
                        item_id=item.item_id,
                        content_index=0,
                        error={
                            "type": "server_error",
                            "code": str(event.code).lower(),
                            "message": event.message,
                            "param": None,
                        },
                    )
                )
            self._committed.clear()
        frames.append(error_frame(event, code or str(event.code).lower(), param or None))
        return frames


def error_frame(event: Error, code: str, param: str | None) -> str:
    """An ``error`` server event."""
    return frame(
        "error",
        error={
            "type": _ERROR_TYPES.get(event.code, "invalid_request_error"),
            "code": code,
            "message": event.message,
            "param": param,
            "event_id": None,
        },
    )
