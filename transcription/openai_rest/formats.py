"""The response bodies of ``POST /v1/audio/transcriptions``: json, text, srt, vtt, verbose_json,
and the server-sent events of ``stream=true`` — in the shapes of OpenAI's API (the ``openai``
SDK's ``Transcription``, ``TranscriptionVerbose``, ``TranscriptionTextDeltaEvent`` and
``TranscriptionTextDoneEvent``). Pure functions of the committed words.

Segments (verbose_json, srt, vtt cues) are cut from the word timeline at sentence ends, at
pauses of ``SEGMENT_PAUSE_MS`` and after ``SEGMENT_MAX_MS``: subtitle-sized, where Whisper's own
segments would follow its 30 s windows.
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from transcription.inference.types import Word
from transcription.openai_rest.params import TranscriptionParams
from transcription.transcript import Transcript, ends_sentence

SEGMENT_PAUSE_MS = 800
SEGMENT_MAX_MS = 10_000
MIN_PROBABILITY = 1e-6  # log(0) is not JSON


@dataclass(frozen=True, slots=True)
class TextSegment:
    """Consecutive words shown together (one subtitle cue, one verbose_json segment)."""

    words: tuple[Word, ...]

    @property
    def start_ms(self) -> int:
        return self.words[0].start_ms

    @property
    def end_ms(self) -> int:
        return self.words[-1].end_ms

    @property
    def text(self) -> str:
        return Transcript(self.words).text


def monotone(words: Sequence[Word]) -> list[Word]:
    """Word times as clients expect them: each word starts where the one before ended or
    later, and ends no earlier than it starts (Whisper's times can overlap at window joins)."""
    out: list[Word] = []
    last_end = 0
    for word in words:
        start = max(word.start_ms, last_end)
        end = max(word.end_ms, start)
        out.append(Word(word.text, start, end, word.probability))
        last_end = end
    return out


def segments_of(words: Sequence[Word]) -> list[TextSegment]:
    """Cut the (monotone) word timeline into segments."""
    segments: list[TextSegment] = []
    current: list[Word] = []
    for word in words:
        if current:
            prev = current[-1]
            pause = word.start_ms - prev.end_ms >= SEGMENT_PAUSE_MS
            long = word.end_ms - current[0].start_ms > SEGMENT_MAX_MS
            if ends_sentence(prev) or pause or long:
                segments.append(TextSegment(tuple(current)))
                current = []
        current.append(word)
    if current:
        segments.append(TextSegment(tuple(current)))
    return segments


def _seconds(ms: int) -> float:
    return round(ms / 1000, 3)


def _clock(ms: int, separator: str) -> str:
    hours, rest = divmod(max(0, ms), 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}{separator}{millis:03d}"


def to_srt(segments: Sequence[TextSegment]) -> str:
    """SubRip: numbered cues, ``HH:MM:SS,mmm --> HH:MM:SS,mmm``."""
    cues = [
        f"{i}\n{_clock(s.start_ms, ',')} --> {_clock(s.end_ms, ',')}\n{s.text}\n"
        for i, s in enumerate(segments, 1)
    ]
    return "\n".join(cues)


def to_vtt(segments: Sequence[TextSegment]) -> str:
    """WebVTT: the header, then ``HH:MM:SS.mmm --> HH:MM:SS.mmm`` cues."""
    cues = [f"{_clock(s.start_ms, '.')} --> {_clock(s.end_ms, '.')}\n{s.text}\n" for s in segments]
    return "WEBVTT\n\n" + "\n".join(cues)


def _compression_ratio(text: str) -> float:
    data = text.encode()
    return round(len(data) / len(zlib.compress(data)), 4) if data else 0.0


def _avg_logprob(words: Sequence[Word]) -> float:
    logs = [math.log(max(w.probability, MIN_PROBABILITY)) for w in words]
    return round(sum(logs) / len(logs), 4) if logs else 0.0


def verbose_json(
    text: str,
    words: Sequence[Word],
    *,
    language: str,
    duration_s: float,
    params: TranscriptionParams,
) -> dict[str, Any]:
    """OpenAI's ``TranscriptionVerbose``: ``segments`` unless only words were asked, ``words``
    when asked. Fields Whisper.cpp does not give us have neutral values: ``tokens`` is empty,
    ``temperature`` 0, ``no_speech_prob`` 0 (silence was never sent to the model)."""
    body: dict[str, Any] = {
        "task": "transcribe",
        "language": language,
        "duration": round(duration_s, 3),
        "text": text,
        "usage": usage(duration_s),
    }
    timeline = monotone(words)
    if params.segments:
        body["segments"] = [
            {
                "id": i,
                "seek": s.start_ms // 10,
                "start": _seconds(s.start_ms),
                "end": _seconds(s.end_ms),
                "text": " " + s.text,
                "tokens": [],
                "temperature": 0.0,
                "avg_logprob": _avg_logprob(s.words),
                "compression_ratio": _compression_ratio(s.text),
                "no_speech_prob": 0.0,
            }
            for i, s in enumerate(segments_of(timeline))
        ]
    if params.words:
        body["words"] = [
            {"word": w.text, "start": _seconds(w.start_ms), "end": _seconds(w.end_ms)}
            for w in timeline
        ]
    return body


def usage(duration_s: float) -> dict[str, Any]:
    """OpenAI's duration-billed usage object."""
    return {"type": "duration", "seconds": math.ceil(duration_s)}


def render(
    text: str,
    words: Sequence[Word],
    *,
    language: str,
    duration_s: float,
    params: TranscriptionParams,
) -> tuple[str, str]:
    """The body and content type of a (non-streamed) response in ``params.response_format``."""
    fmt = params.response_format
    if fmt == "text":
        return text + "\n", "text/plain; charset=utf-8"
    if fmt == "srt":
        return to_srt(segments_of(monotone(words))), "application/x-subrip; charset=utf-8"
    if fmt == "vtt":
        return to_vtt(segments_of(monotone(words))), "text/vtt; charset=utf-8"
    if fmt == "verbose_json":
        body = verbose_json(text, words, language=language, duration_s=duration_s, params=params)
        return json.dumps(body), "application/json"
    return json.dumps({"text": text, "usage": usage(duration_s)}), "application/json"


# --- stream=true: server-sent events ---


def sse(event: dict[str, Any]) -> bytes:
    """One server-sent event: a ``data:`` line of JSON and a blank line (OpenAI sends no
    ``event:`` line; the ``type`` field names the event)."""
    return b"data: " + json.dumps(event).encode() + b"\n\n"


def delta_event(delta: str) -> dict[str, Any]:
    return {"type": "transcript.text.delta", "delta": delta}


def done_event(text: str) -> dict[str, Any]:
    # No ``usage``: the done event's usage is token-billed in OpenAI's schema, and a file
    # transcribed here has no token bill.
    return {"type": "transcript.text.done", "text": text}
