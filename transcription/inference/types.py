"""Typed results of one inference call, shared by every backend and by the transcript merge.

Times are milliseconds. A backend reports them relative to the start of the audio it was
given; the session shifts them onto the session timeline (``shifted``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True, slots=True)
class Word:
    """One word as Whisper heard it: text without surrounding spaces, times, probability 0..1."""

    text: str
    start_ms: int
    end_ms: int
    probability: float

    def shifted(self, offset_ms: int) -> Word:
        return replace(self, start_ms=self.start_ms + offset_ms, end_ms=self.end_ms + offset_ms)


@dataclass(frozen=True, slots=True)
class Segment:
    """One Whisper segment: its text, times, per-word timeline and hallucination signals."""

    text: str
    start_ms: int
    end_ms: int
    words: tuple[Word, ...] = ()
    no_speech_prob: float = 0.0

    def shifted(self, offset_ms: int) -> Segment:
        return replace(
            self,
            start_ms=self.start_ms + offset_ms,
            end_ms=self.end_ms + offset_ms,
            words=tuple(w.shifted(offset_ms) for w in self.words),
        )


@dataclass(frozen=True, slots=True)
class InferenceRequest:
    """What the worker needs to transcribe one window (audio is 16 kHz mono float32)."""

    language: str = "en"
    prompt: str = ""
    beam_size: int = 1
    n_threads: int = 2
    audio_ctx: int = 0  # 0 = whisper.cpp default (padded 30 s window)
    max_tokens: int = 0  # per segment; 0 = no limit. Bounds the cost of a decoding loop.
    translate: bool = False  # English text of any language (whisper.cpp's translate task)
