"""What a session says, independent of any wire format: typed events, error and close codes.

Normative: ``docs/PROTOCOL.md`` "Server events", "Error codes" and "Close codes". The sans-IO
``Session`` returns these frozen objects; each wire protocol has one encoder at the edge
(``protocol.encode`` for ``/transcribe``) that turns them into frames. Nothing downstream parses
JSON to tell a phrase from an error.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from transcription.inference.types import Word


class ErrorCode(enum.StrEnum):
    """The ``code`` of a ``speech.error`` (the seed's codes plus four of ours)."""

    INVALID_MESSAGE = "INVALID_MESSAGE"
    INVALID_STATE = "INVALID_STATE"
    SESSION_LIMIT = "SESSION_LIMIT"
    SESSION_NOT_FOUND = "SESSION_NOT_FOUND"
    AUDIO_ERROR = "AUDIO_ERROR"
    RATE_LIMITED = "RATE_LIMITED"
    # Not in the seed; seed clients show the message.
    SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"  # no inference worker answered
    INTERNAL_ERROR = "INTERNAL_ERROR"  # a bug on our side, logged with its traceback
    UNAUTHORIZED = "UNAUTHORIZED"  # the key was revoked or expired during the session


class CloseCode(enum.IntEnum):
    """WebSocket close codes the server sends (RFC 6455 section 7.4; docs/PROTOCOL.md
    "Close codes"). Our own reasons mirror RFC codes in the private 4000 range."""

    NORMAL = 1000
    POLICY_VIOLATION = 1008  # sustained abuse, or a client that stopped reading
    TOO_BIG = 1009  # sent by the WebSocket layer itself
    INTERNAL_ERROR = 1011
    KEY_REVOKED = 4001  # mirrors HTTP 401
    IDLE_TIMEOUT = 4008  # mirrors 1008: no message, or no speech.config, in time
    TRY_AGAIN = 4013  # mirrors 1013: no inference worker answered


class ClientError(Exception):
    """Raised for anything a client did wrong (or cannot have now); becomes one ``Error``
    event, and a close when ``close_code`` is set. The one error funnel of STYLE.md."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        close_code: int | None = None,
        detail: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.close_code = close_code
        # A wire API's own error code where it has finer ones than ``ErrorCode`` (the
        # Realtime API's ``input_audio_buffer_commit_empty``); the seed protocol ignores it.
        self.detail = detail


def invalid(message: str) -> ClientError:
    """An ``INVALID_MESSAGE`` error naming the field and the rule."""
    return ClientError(ErrorCode.INVALID_MESSAGE, message)


# --- events ---


@dataclass(frozen=True, slots=True)
class ConfigAck:
    """The session is configured (``speech.config.ack``)."""

    effective_config: Mapping[str, Any]
    resumed: bool = False
    last_audio_ms: int = 0


@dataclass(frozen=True, slots=True)
class Hypothesis:
    """Interim text that may still change (``speech.hypothesis``)."""

    offset_ms: int
    duration_ms: int
    text: str
    words: tuple[Word, ...] = ()
    # True for the words after the committed transcript that the session holds back (they
    # will be committed or corrected); False for the raw text of one transcribed segment,
    # which may repeat committed words.
    pending: bool = False


@dataclass(frozen=True, slots=True)
class Phrase:
    """Final text (``speech.phrase``): ``Success`` per committed span, ``EndOfStream`` once."""

    offset_ms: int
    duration_ms: int
    text: str
    words: tuple[Word, ...] = ()
    status: Literal["Success", "EndOfStream"] = "Success"
    confidence: float = 0.0
    # The session's language (docs/PROTOCOL.md "Language detection"): its code once known, and
    # for a language detected from "auto", how sure the detection was.
    language: str | None = None
    language_probability: float | None = None


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The signed resume point (``speech.checkpoint``); stored before it is sent."""

    payload: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Backpressure:
    """Flow control (``speech.backpressure``): sent once on crossing each threshold."""

    action: Literal["slow_down", "ok"]


@dataclass(frozen=True, slots=True)
class Error:
    """A ``speech.error``; the session goes on unless a ``Close`` follows."""

    code: ErrorCode
    message: str
    detail: str | None = None  # ``ClientError.detail``


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """The speech gate heard speech start at ``at_ms`` (session timeline) after a stop; only
    sessions started with ``TurnOptions`` emit it."""

    at_ms: int


@dataclass(frozen=True, slots=True)
class SpeechStopped:
    """Speech ended at ``at_ms`` and ``silence_ms`` of silence followed (one event per
    threshold of ``TurnOptions.stop_after_ms``). ``flushing``: the session now commits the
    audio received so far, and a ``Flushed`` follows (an endpoint)."""

    at_ms: int
    silence_ms: int
    flushing: bool = False


FlushReason = Literal["client", "endpoint"]


@dataclass(frozen=True, slots=True)
class Flushed:
    """Every word of the audio before ``end_ms`` is committed (``Session.flush``, or an
    endpoint). ``words`` are those committed by the flush itself, not sent as a ``Phrase``;
    one ``Flushed`` answers each flush, in order."""

    start_ms: int  # the end of the previous flush (the timeline start for the first)
    end_ms: int
    words: tuple[Word, ...]
    reason: FlushReason
    confidence: float = 0.0


@dataclass(frozen=True, slots=True)
class Close:
    """The server closes the connection with ``code`` after the events before it."""

    code: int


Event = (
    ConfigAck
    | Hypothesis
    | Phrase
    | Checkpoint
    | Backpressure
    | Error
    | SpeechStarted
    | SpeechStopped
    | Flushed
    | Close
)


def error_events(exc: ClientError) -> list[Event]:
    """The events one ``ClientError`` becomes: the error, then the close if it is fatal."""
    events: list[Event] = [Error(exc.code, exc.message, exc.detail)]
    if exc.close_code is not None:
        events.append(Close(exc.close_code))
    return events


def confidence(words: Sequence[Word]) -> float:
    """A phrase's confidence: the mean word probability (0 when there are no words)."""
    if not words:
        return 0.0
    return round(sum(w.probability for w in words) / len(words), 4)
