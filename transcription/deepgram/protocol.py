"""Deepgram's live streaming API (``/v1/listen``): the query options, the client's control
messages, and the session's events as Deepgram messages.

Reference: the message models of ``deepgram-sdk`` (``deepgram.listen.v1.types``:
``ListenV1Results``, ``ListenV1Metadata``, ``ListenV1SpeechStarted``, ``ListenV1UtteranceEnd``,
``ListenV1Error``; client ``KeepAlive``, ``Finalize``, ``CloseStream``) and Deepgram's
streaming documentation. What is supported, and what is accepted and ignored, is listed in
the README ("Deepgram live streaming").

Mapping: a committed phrase is a final ``Results`` (``is_final``); an endpoint (``endpointing``
ms of silence) flushes the session and its ``Results`` has ``speech_final``; ``Finalize``
flushes too and its ``Results`` has ``from_finalize``. Interim ``Results`` carry only the
words after the last final one. ``start`` / ``duration`` of each ``Results`` cover the audio
since the previous final one, so finals tile the stream.
"""

from __future__ import annotations

import collections
import datetime
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qs

from transcription.audio.decode import Encoding
from transcription.events import (
    Backpressure,
    Checkpoint,
    ClientError,
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
    confidence,
)
from transcription.inference.types import Word
from transcription.protocol import SAMPLE_RATE_MAX_HZ, SAMPLE_RATE_MIN_HZ, parse_json
from transcription.transcript import join_words, normalize

ENCODINGS: dict[str, Encoding] = {
    "linear16": "pcm_s16le",
    "mulaw": "pcm_mulaw",
    "alaw": "pcm_alaw",
    "opus": "opus",
}
DEFAULT_RATES_HZ = {"linear16": 16000, "mulaw": 8000, "alaw": 8000, "opus": 48000}
DEEPGRAM_DEFAULT_ENDPOINTING_MS = 10
# The speech gate scores 32 ms frames and a pause inside a phrase lasts up to ~250 ms: an
# endpoint after less silence would cut phrases into words, which Whisper hears worse.
MIN_ENDPOINTING_MS = 300
VAD_EVENTS_STOP_MS = 500  # vad_events alone: speech is over after this much silence
MAX_SILENCE_MS = 60_000
# Deepgram's own options this server accepts and ignores (README "Deepgram live streaming").
IGNORED = frozenset(
    {
        "smart_format",
        "diarize",
        "diarize_model",
        "dictation",
        "detect_entities",
        "extra",
        "filler_words",
        "keyterm",
        "keywords",
        "language_hint",
        "mip_opt_out",
        "multichannel",
        "numerals",
        "profanity_filter",
        "redact",
        "replace",
        "search",
        "tag",
        "version",
        "callback",
        "callback_method",
    }
)


class QueryError(ValueError):
    """An option of the upgrade's query string Deepgram would refuse with HTTP 400."""


@dataclass(frozen=True, slots=True)
class ListenOptions:
    """The validated query of ``/v1/listen``."""

    model: str = "nova-3"
    language: str = "en"
    encoding: str = "linear16"
    sample_rate: int = 16000
    interim_results: bool = False
    endpointing_ms: int | None = DEEPGRAM_DEFAULT_ENDPOINTING_MS  # None: endpointing=false
    utterance_end_ms: int | None = None
    vad_events: bool = False
    punctuate: bool = False

    @property
    def session_encoding(self) -> Encoding:
        return ENCODINGS[self.encoding]

    @property
    def effective_endpointing_ms(self) -> int | None:
        """The silence that ends a phrase here (raised to ``MIN_ENDPOINTING_MS``)."""
        if self.endpointing_ms is None:
            return None
        return max(self.endpointing_ms, MIN_ENDPOINTING_MS)

    @property
    def stop_after_ms(self) -> tuple[int, ...]:
        """The silences the session reports: the endpoint, the utterance end, or (for
        ``vad_events`` alone) a plain end of speech."""
        stops = {
            ms for ms in (self.effective_endpointing_ms, self.utterance_end_ms) if ms is not None
        }
        if not stops and self.vad_events:
            stops.add(VAD_EVENTS_STOP_MS)
        return tuple(sorted(stops))


def _bool(query: Mapping[str, str], name: str, default: bool) -> bool:
    value = query.get(name)
    if value is None:
        return default
    if value.lower() not in ("true", "false"):
        raise QueryError(f"Invalid '{name}': must be true or false")
    return value.lower() == "true"


def _int(value: str, name: str, lo: int, hi: int) -> int:
    if not value.isdigit() or not lo <= int(value) <= hi:
        raise QueryError(f"Invalid '{name}': must be an integer between {lo} and {hi}")
    return int(value)


def parse_query(query_string: bytes) -> ListenOptions:
    """The upgrade's query string as ``ListenOptions``; ``QueryError`` for a bad value."""
    try:
        raw = parse_qs(query_string.decode("latin1"), keep_blank_values=True, max_num_fields=64)
    except ValueError:
        raise QueryError("Invalid query string") from None
    query = {name: values[-1] for name, values in raw.items()}
    encoding = query.get("encoding", "linear16").lower()
    if encoding not in ENCODINGS:
        raise QueryError(
            "Invalid 'encoding': must be linear16, mulaw, alaw or opus (raw audio; "
            "containerised audio is not supported)"
        )
    rate = query.get("sample_rate")
    sample_rate = (
        DEFAULT_RATES_HZ[encoding]
        if rate is None
        else _int(rate, "sample_rate", SAMPLE_RATE_MIN_HZ, SAMPLE_RATE_MAX_HZ)
    )
    if query.get("channels", "1") != "1":
        raise QueryError("Invalid 'channels': only mono audio (channels=1) is supported")
    endpointing = query.get("endpointing", str(DEEPGRAM_DEFAULT_ENDPOINTING_MS)).lower()
    endpointing_ms = (
        None if endpointing == "false" else _int(endpointing, "endpointing", 0, MAX_SILENCE_MS)
    )
    if endpointing_ms == 0:
        endpointing_ms = None  # Deepgram: 0 turns endpointing off
    utterance_end = query.get("utterance_end_ms")
    language = query.get("language", "en").strip().lower()
    if not 0 < len(language) <= 16:
        raise QueryError("Invalid 'language': must be a language code such as en")
    model = query.get("model", "nova-3")
    if not 0 < len(model) <= 128:
        raise QueryError("Invalid 'model'")
    punctuate = _bool(query, "punctuate", False) or _bool(query, "smart_format", False)
    return ListenOptions(
        model=model,
        # Whisper takes the base language of a BCP-47 tag (en-US -> en).
        language=language.split("-")[0],
        encoding=encoding,
        sample_rate=sample_rate,
        interim_results=_bool(query, "interim_results", False),
        endpointing_ms=endpointing_ms,
        utterance_end_ms=None
        if utterance_end is None
        else _int(utterance_end, "utterance_end_ms", 1, MAX_SILENCE_MS),
        vad_events=_bool(query, "vad_events", False),
        punctuate=punctuate,
    )


# --- client messages ---

ControlMessage = Literal["KeepAlive", "Finalize", "CloseStream"]


def parse_control(text: str) -> ControlMessage:
    """A text frame: ``{"type": "KeepAlive" | "Finalize" | "CloseStream"}``."""
    data = parse_json(text)
    kind = data.get("type") if isinstance(data, dict) else None
    if kind in ("KeepAlive", "Finalize", "CloseStream"):
        return kind  # type: ignore[no-any-return]
    raise ClientError(
        ErrorCode.INVALID_MESSAGE,
        'Unknown message: text frames must be {"type": "KeepAlive"}, '
        '{"type": "Finalize"} or {"type": "CloseStream"}',
        detail="SchemaError",
    )


# --- server messages ---


def _seconds(ms: int) -> float:
    return round(ms / 1000, 3)


def bare_word(text: str) -> str:
    """Deepgram's ``word``: lower case, without the punctuation around it."""
    return text.strip().strip(".,!?;:\"'()[]{}…«»“”‘’").lower() or text.strip().lower()


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """The serving model as Deepgram's metadata names it."""

    name: str
    version: str = "whisper.cpp"
    arch: str = "whisper"

    @property
    def uuid(self) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"openasr:{self.name}"))


class DeepgramEncoder:
    """The session's events as Deepgram messages, for one connection."""

    def __init__(self, options: ListenOptions, model: ModelInfo, request_id: str) -> None:
        self.options = options
        self.model = model
        self.request_id = request_id
        self.created = datetime.datetime.now(datetime.UTC).isoformat().replace("+00:00", "Z")
        self.sha256 = ""  # set by the consumer before the end
        self._final_until_ms = 0  # the end of the audio the final results cover
        self._last_word_end_ms = 0
        self._endpoints_asked = 0  # endpoint flushes started
        self._endpoints_done = 0  # endpoint flushes whose Results were sent
        # UtteranceEnds waiting for the endpoints asked before them to be answered
        self._utterance_ends: collections.deque[int] = collections.deque()

    def frames(self, event: Event) -> list[str]:
        """The Deepgram messages of one session event."""
        match event:
            case Hypothesis(pending=True) if self.options.interim_results:
                return self._results(event.words, end_ms=None, final=False)
            case Phrase(status="Success"):
                return self._results(event.words, end_ms=None, final=True)
            case Phrase(status="EndOfStream"):
                return [self._metadata(event.duration_ms)]
            case Flushed():
                frames = self._results(
                    event.words,
                    end_ms=event.end_ms,
                    final=True,
                    speech_final=event.reason == "endpoint",
                    from_finalize=event.reason == "client",
                )
                self._endpoints_done += event.reason == "endpoint"
                return frames + self._utterance_end_frames()
            case SpeechStarted() if self.options.vad_events:
                return [
                    _json(
                        {
                            "type": "SpeechStarted",
                            "channel": [0],
                            "timestamp": _seconds(event.at_ms),
                        }
                    )
                ]
            case SpeechStopped():
                self._endpoints_asked += event.flushing
                if event.silence_ms == self.options.utterance_end_ms:
                    self._utterance_ends.append(self._endpoints_asked)
                return self._utterance_end_frames()
            case Error():
                return [
                    _json(
                        {
                            "type": "Error",
                            "variant": event.detail or str(event.code),
                            "description": event.message,
                            "message": "",
                        }
                    )
                ]
            case (
                ConfigAck()
                | Hypothesis()
                | SpeechStarted()
                | Checkpoint()
                | Backpressure()
                | Close()
            ):
                return []
        return []  # Phrase statuses are a Literal: unreachable, for the type checker

    def _utterance_end_frames(self) -> list[str]:
        """The UtteranceEnd, once the final results of the utterance are out (an endpoint
        flush may still be transcribing it when the silence is long enough)."""
        frames = []
        while self._utterance_ends and self._utterance_ends[0] <= self._endpoints_done:
            self._utterance_ends.popleft()
            end = {"type": "UtteranceEnd", "channel": [0, 1]}
            frames.append(_json({**end, "last_word_end": _seconds(self._last_word_end_ms)}))
        return frames

    def _results(
        self,
        words: Sequence[Word],
        *,
        end_ms: int | None,
        final: bool,
        speech_final: bool = False,
        from_finalize: bool = False,
    ) -> list[str]:
        spoken = [w for w in words if normalize(w.text)]
        if not spoken and end_ms is None:
            return []
        start = self._final_until_ms
        end = max(end_ms or 0, spoken[-1].end_ms if spoken else 0, start)
        if final:
            self._final_until_ms = end
            if spoken:
                self._last_word_end_ms = spoken[-1].end_ms
        if self.options.punctuate:
            transcript = join_words(words)
        else:
            transcript = " ".join(bare_word(w.text) for w in spoken)
        body = {
            "type": "Results",
            "channel_index": [0, 1],
            "duration": _seconds(end - start),
            "start": _seconds(start),
            "is_final": final,
            "speech_final": speech_final,
            "from_finalize": from_finalize,
            "channel": {
                "alternatives": [
                    {
                        "transcript": transcript,
                        "confidence": confidence(spoken),
                        "words": [_word(w) for w in spoken],
                    }
                ]
            },
            "metadata": {
                "request_id": self.request_id,
                "model_info": {
                    "name": self.model.name,
                    "version": self.model.version,
                    "arch": self.model.arch,
                },
                "model_uuid": self.model.uuid,
            },
        }
        return [_json(body)]

    def _metadata(self, duration_ms: int) -> str:
        info = {"name": self.model.name, "version": self.model.version, "arch": self.model.arch}
        return _json(
            {
                "type": "Metadata",
                "transaction_key": "deprecated",
                "request_id": self.request_id,
                "sha256": self.sha256,
                "created": self.created,
                "duration": _seconds(duration_ms),
                "channels": 1,
                "models": [self.model.uuid],
                "model_info": {self.model.uuid: info},
            }
        )


def _word(word: Word) -> dict[str, Any]:
    bare = bare_word(word.text)
    return {
        "word": bare,
        "start": _seconds(word.start_ms),
        "end": _seconds(word.end_ms),
        "confidence": round(word.probability, 4),
        "punctuated_word": word.text.strip(),
    }


def _json(body: Mapping[str, Any]) -> str:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))
