"""Turn detection on the speech gate's flags: where speech starts, and how long silence has
followed it.

The compatible APIs announce speech as it happens (the Realtime API's ``server_vad``
``speech_started`` / ``speech_stopped``, Deepgram's ``SpeechStarted``, ``UtteranceEnd`` and
endpointing); the audio buffer already scores every 32 ms frame (``buffer.AudioBuffer``), so
this object only reads the new flags after each frame and reports the edges. Pure and
synchronous; times are session-timeline ms.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from transcription.audio.buffer import MIN_SPEECH_MS
from transcription.audio.vad import FRAME_MS


class FlaggedAudio(Protocol):
    """What the detector reads from ``buffer.AudioBuffer``."""

    @property
    def scored_frames(self) -> int: ...

    def speech_flags(self, first_frame: int) -> tuple[int, bytes]: ...

    def frame_start_ms(self, frame: int) -> int: ...


@dataclass(frozen=True, slots=True)
class Started:
    """Speech started at ``at_ms``."""

    at_ms: int


@dataclass(frozen=True, slots=True)
class Stopped:
    """Speech ended at ``at_ms``, and ``silence_ms`` of silence has followed."""

    at_ms: int
    silence_ms: int


class TurnDetector:
    """Reports ``Started`` once speech lasts ``min_speech_ms`` after a stop, and ``Stopped``
    each time the silence after speech reaches one of ``stop_after_ms`` (ascending). Speech
    is over (a new start can be reported) once the shortest threshold is reached."""

    def __init__(self, stop_after_ms: Sequence[int], min_speech_ms: int = MIN_SPEECH_MS) -> None:
        if not stop_after_ms or min(stop_after_ms) <= 0:
            raise ValueError("stop_after_ms needs at least one positive threshold")
        self.stop_after_ms = tuple(sorted(set(stop_after_ms)))
        self.min_speech_frames = max(1, -(-min_speech_ms // FRAME_MS))
        self._next = 0  # next frame to read
        self._speaking = False
        self._heard = False  # speech was heard since the timeline start
        self._run = 0  # consecutive speech frames
        self._run_start = 0  # first frame of that run
        self._silent = 0  # consecutive silent frames after speech
        self._silence_start = 0
        self._reported = 0  # thresholds already reported for the current silence

    def skip_to(self, frame: int) -> None:
        """Start reading at ``frame`` (turn detection switched on mid-stream)."""
        self._next = max(self._next, frame)

    def continue_from(self, other: TurnDetector) -> None:
        """Take over ``other``'s position and speech state (new thresholds mid-stream)."""
        self._next, self._speaking, self._heard = other._next, other._speaking, other._heard
        self._run, self._run_start = other._run, other._run_start
        self._silent, self._silence_start = other._silent, other._silence_start
        if not self._speaking:
            silence_ms = self._silent * FRAME_MS
            self._reported = sum(1 for t in self.stop_after_ms if t <= silence_ms)

    @property
    def speaking(self) -> bool:
        """True between a ``Started`` and the first ``Stopped`` after it."""
        return self._speaking

    def update(self, audio: FlaggedAudio) -> list[Started | Stopped]:
        """Called after each frame of audio is buffered: the edges in the new flags."""
        first, flags = audio.speech_flags(self._next)
        self._next = first + len(flags)
        events: list[Started | Stopped] = []
        for i, flag in enumerate(flags):
            frame = first + i
            if flag:
                self._on_speech(frame, audio, events)
            else:
                self._on_silence(frame, audio, events)
        return events

    def _on_speech(self, frame: int, audio: FlaggedAudio, events: list[Started | Stopped]) -> None:
        if self._run == 0:
            self._run_start = frame
        self._run += 1
        if self._speaking:
            self._silent = 0
            return
        if self._run >= self.min_speech_frames:
            self._speaking = self._heard = True
            self._silent = self._reported = 0
            events.append(Started(audio.frame_start_ms(self._run_start)))

    def _on_silence(self, frame: int, audio: FlaggedAudio, events: list[Started | Stopped]) -> None:
        self._run = 0
        if not self._heard:
            return
        if self._silent == 0:
            self._silence_start = frame
        self._silent += 1
        silence_ms = self._silent * FRAME_MS
        while (
            self._reported < len(self.stop_after_ms)
            and silence_ms >= self.stop_after_ms[self._reported]
        ):
            events.append(
                Stopped(
                    audio.frame_start_ms(self._silence_start), self.stop_after_ms[self._reported]
                )
            )
            self._reported += 1
            self._speaking = False
