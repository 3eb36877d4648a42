"""A finished transcript and its renderings: plain text, JSON, SubRip (SRT) and WebVTT.

Cue times come from the phrases' ``offset``/``duration`` (and their words, to split long
phrases); they are made monotone (each cue starts at or after the previous one ends), since
players reject or reorder overlapping and backwards cues.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from openasr_client.events import EndOfStream, Event, Phrase, Word, join_words

FORMATS = ("text", "json", "srt", "vtt")
MAX_CUE_CHARS = 84  # two lines of 42, the usual subtitle limit
MAX_CUE_MS = 7000
MIN_CUE_MS = 500


@dataclass(frozen=True)
class Transcript:
    """The result of a session: full ``text``, the finalized ``phrases`` and their ``words``."""

    text: str
    phrases: tuple[Phrase, ...]
    session_id: str = ""
    duration_ms: int = 0

    @property
    def words(self) -> tuple[Word, ...]:
        """Every word of every phrase, in time order."""
        return tuple(w for p in self.phrases for w in p.words)

    @classmethod
    def from_events(cls, events: Iterable[Event]) -> Transcript:
        """Build from a session's events: its ``Phrase``s and the final ``EndOfStream``."""
        phrases: list[Phrase] = []
        final: EndOfStream | None = None
        session_id = ""
        for event in events:
            if isinstance(event, Phrase) and event.text.strip():
                phrases.append(event)
            elif isinstance(event, EndOfStream):
                final = event
            session_id = getattr(event, "session_id", "") or session_id
        joined = " ".join(p.text.strip() for p in phrases)
        text = final.text.strip() if final is not None and final.text.strip() else joined
        end = max((p.end for p in phrases), default=0)
        duration = max(end, final.offset + final.duration if final else 0)
        return cls(text=text, phrases=tuple(phrases), session_id=session_id, duration_ms=duration)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: text, session id, duration and phrases with their words."""
        return {
            "session_id": self.session_id,
            "text": self.text,
            "duration_ms": self.duration_ms,
            "phrases": [
                {
                    "text": p.text,
                    "offset": p.offset,
                    "duration": p.duration,
                    "confidence": p.confidence,
                    "words": [
                        {
                            "text": w.text,
                            "offset": w.offset,
                            "duration": w.duration,
                            "confidence": w.confidence,
                        }
                        for w in p.words
                    ],
                }
                for p in self.phrases
            ],
        }


@dataclass(frozen=True)
class Cue:
    """One subtitle: ``start``/``end`` in ms and its text."""

    start: int
    end: int
    text: str


def cues(phrases: Sequence[Phrase]) -> list[Cue]:
    """Subtitle cues from phrases: long phrases split at word boundaries, times monotone."""
    raw: list[Cue] = []
    for phrase in phrases:
        if not phrase.text.strip():
            continue
        if phrase.words and (len(phrase.text) > MAX_CUE_CHARS or phrase.duration > MAX_CUE_MS):
            raw.extend(_split(phrase.words))
        else:
            raw.append(Cue(phrase.offset, phrase.end, phrase.text.strip()))
    out: list[Cue] = []
    previous_end = 0
    for i, cue in enumerate(raw):
        start = max(cue.start, previous_end)
        # Short cues are stretched to be readable, but not into the next cue's time.
        min_end = start + MIN_CUE_MS
        if i + 1 < len(raw):
            min_end = min(min_end, max(raw[i + 1].start, start + 1))
        end = max(cue.end, min_end, start + 1)
        out.append(Cue(start, end, cue.text))
        previous_end = end
    return out


def _split(words: Sequence[Word]) -> list[Cue]:
    groups: list[list[Word]] = [[]]
    for word in words:
        group = groups[-1]
        candidate = join_words([*group, word])
        if group and (len(candidate) > MAX_CUE_CHARS or word.end - group[0].offset > MAX_CUE_MS):
            groups.append([word])
        else:
            group.append(word)
    return [Cue(g[0].offset, g[-1].end, join_words(g)) for g in groups if g]


def _timestamp(ms: int, separator: str) -> str:
    ms = max(0, int(ms))
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}{separator}{millis:03d}"


def _wrap(text: str, width: int = MAX_CUE_CHARS // 2) -> str:
    """At most two lines, broken at the space nearest the middle when longer than a line."""
    text = " ".join(text.split())
    if len(text) <= width:
        return text
    middle = len(text) // 2
    spaces = [i for i, ch in enumerate(text) if ch == " "]
    if not spaces:
        return text
    cut = min(spaces, key=lambda i: abs(i - middle))
    return text[:cut] + "\n" + text[cut + 1 :]


def to_text(transcript: Transcript) -> str:
    """The full text and a newline."""
    return transcript.text + "\n"


def to_json(transcript: Transcript) -> str:
    """Indented JSON of ``Transcript.to_dict``."""
    return json.dumps(transcript.to_dict(), indent=2, ensure_ascii=False) + "\n"


def to_srt(transcript: Transcript) -> str:
    """SubRip: numbered cues, ``HH:MM:SS,mmm --> HH:MM:SS,mmm``, blank line between cues."""
    blocks = []
    for n, cue in enumerate(cues(transcript.phrases), start=1):
        times = f"{_timestamp(cue.start, ',')} --> {_timestamp(cue.end, ',')}"
        blocks.append(f"{n}\n{times}\n{_wrap(cue.text)}\n")
    return "\n".join(blocks)


def to_vtt(transcript: Transcript) -> str:
    """WebVTT: ``WEBVTT`` header, cues with ``HH:MM:SS.mmm`` times, text escaped."""
    blocks = ["WEBVTT\n"]
    for cue in cues(transcript.phrases):
        # WebVTT cue text is HTML-like: & and < must be escaped, and "-->" may not appear.
        text = _wrap(cue.text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        times = f"{_timestamp(cue.start, '.')} --> {_timestamp(cue.end, '.')}"
        blocks.append(f"{times}\n{text}\n")
    return "\n".join(blocks)


def render(transcript: Transcript, fmt: str) -> str:
    """The transcript in one of ``FORMATS``."""
    renderers = {"text": to_text, "json": to_json, "srt": to_srt, "vtt": to_vtt}
    try:
        return renderers[fmt](transcript)
    except KeyError:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}") from None
