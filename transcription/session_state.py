"""What a session holds: its states, its outputs, and the parts that exist once it is
configured (the audio path, the streaming policy, turn detection, the phrase and checkpoint
built from them). ``session.py`` drives them; ``session_jobs.py`` builds their inference jobs.

Normative: ``docs/PROTOCOL.md`` "Session state machine", "Flow control and limits".
"""

from __future__ import annotations

import collections
import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from transcription.audio.buffer import MIN_PAUSE_MS, MIN_SPEECH_MS, AudioBuffer
from transcription.audio.pipeline import AudioPipeline
from transcription.audio.turns import TurnDetector
from transcription.audio.vad import make_vad
from transcription.events import Checkpoint, Event, FlushReason, Phrase, confidence
from transcription.inference.messages import TranscribeJob
from transcription.inference.types import Word
from transcription.interim import InterimPasses, step_ms
from transcription.languages import CODES, Detected, LanguageLock
from transcription.limits import AudioAllowance, SessionLimits
from transcription.policy import make_policy
from transcription.policy.base import Span, StreamingPolicy, usable_ms
from transcription.protocol import SpeechConfig
from transcription.transcript import Transcript

BACKPRESSURE_SLOW_DOWN_RATIO = 0.8
BACKPRESSURE_OK_RATIO = 0.5
CHECKPOINT_TAIL_WORDS = 64  # words kept in a checkpoint for the merge after a resume


class State(enum.Enum):
    """Connection states (docs/PROTOCOL.md "Session state machine"), ENDING while flushing."""

    CONNECTED = "connected"
    CONFIGURED = "configured"
    ENDING = "ending"
    ENDED = "ended"


TRANSITIONS: dict[State, frozenset[State]] = {
    State.CONNECTED: frozenset({State.CONFIGURED, State.ENDED}),
    State.CONFIGURED: frozenset({State.ENDING, State.ENDED}),
    State.ENDING: frozenset({State.ENDED}),
    State.ENDED: frozenset(),
}


@dataclass(frozen=True, slots=True)
class ResumeState:
    """What a verified checkpoint restores: transcript, word tail, timeline position and the
    language an ``auto`` session locked."""

    transcript: Transcript
    last_audio_ms: int
    language: Detected | None = None


def resumed_language(checkpoint: Mapping[str, Any]) -> Detected | None:
    """The locked language of a checkpoint (``language`` and ``language_probability``, extra
    fields: a checkpoint without them, or with anything else in them, has none)."""
    code, probability = checkpoint.get("language"), checkpoint.get("language_probability", 1.0)
    if not isinstance(code, str) or code not in CODES:
        return None
    if isinstance(probability, bool) or not isinstance(probability, int | float):
        return None
    return Detected(code, min(1.0, max(0.0, float(probability))))


@dataclass(slots=True)
class Outputs:
    """What one call produced: events to send in order (a ``Close`` last), jobs to submit."""

    events: list[Event] = field(default_factory=list)
    jobs: list[TranscribeJob] = field(default_factory=list)
    windows_skipped: int = 0
    refused_ms: int = 0
    resends: int = 0
    latency_s: float | None = None  # a window's result came in: first send to result


@dataclass(frozen=True, slots=True)
class TurnOptions:
    """Speech events and endpointing, for the wire APIs that have them (the Realtime API's
    ``server_vad``, Deepgram's ``vad_events``, ``endpointing`` and ``utterance_end_ms``).
    A session without them (``/transcribe``) emits no speech events."""

    stop_after_ms: tuple[int, ...]  # a SpeechStopped each time the silence reaches one
    flush_after_ms: int | None = None  # an endpoint: flush when the silence reaches this
    vad_threshold: float | None = None  # the speech gate's threshold (None: the server's)

    def __post_init__(self) -> None:
        if self.flush_after_ms is not None and self.flush_after_ms not in self.stop_after_ms:
            raise ValueError("flush_after_ms must be one of stop_after_ms")


@dataclass(frozen=True, slots=True)
class PendingFlush:
    """A flush waiting to complete: commit every word of the audio before ``end_ms``."""

    end_ms: int
    reason: FlushReason


class BufferUpTo:
    """The session's audio buffer as if it ended at ``end_ms``: what a policy sees while a
    flush is in progress, so audio received after the flush is not part of it."""

    def __init__(self, buffer: AudioBuffer, end_ms: int) -> None:
        self._buffer = buffer
        self._end_ms = min(end_ms, buffer.end_ms)

    @property
    def start_ms(self) -> int:
        return self._buffer.start_ms

    @property
    def end_ms(self) -> int:
        return self._end_ms

    def window(self, start_ms: int, end_ms: int) -> np.ndarray:
        return self._buffer.window(start_ms, min(end_ms, self._end_ms))

    def has_speech(self, start_ms: int, end_ms: int, min_speech_ms: int = MIN_SPEECH_MS) -> bool:
        return self._buffer.has_speech(start_ms, min(end_ms, self._end_ms), min_speech_ms)

    def pause_near(
        self, end_ms: int, search_ms: int, min_pause_ms: int = MIN_PAUSE_MS
    ) -> int | None:
        end = min(end_ms, self._end_ms)
        return self._buffer.pause_near(end, search_ms - (end_ms - end), min_pause_ms)


def fit_to_buffer(config: SpeechConfig, buffer_ms: int) -> SpeechConfig:
    """A window longer than the audio buffer can hold would never fill: it is shortened to
    what the buffer holds, and the ack's ``effective_config`` says so."""
    window_ms = min(config.window_duration_ms, usable_ms(buffer_ms))
    if window_ms == config.window_duration_ms:
        return config
    overlap_ms = min(config.overlap_duration_ms, window_ms // 2)
    return replace(config, window_duration_ms=window_ms, overlap_duration_ms=overlap_ms)


class Configured:
    """What exists only once ``speech.config`` is accepted (the audio path and the merge)."""

    def __init__(
        self,
        session_id: str,
        config: SpeechConfig,
        limits: SessionLimits,
        model_id: str,
        multilingual: bool,
        resume: ResumeState | None,
        signer: Callable[[dict[str, Any]], dict[str, Any]],
        now: float,
    ) -> None:
        self.session_id = session_id
        self.config = config
        self.model_id = model_id
        self.multilingual = multilingual
        self.language = LanguageLock(config.language, resumed=resume.language if resume else None)
        self.signer = signer
        self.timeline_start_ms = resume.last_audio_ms if resume else 0
        self.transcript = resume.transcript if resume else Transcript()
        self.pipeline = AudioPipeline(
            config.encoding,
            config.sample_rate,
            capacity_ms=limits.audio_buffer_ms,
            vad=make_vad(limits.vad, limits.vad_threshold),
            timeline_start_ms=self.timeline_start_ms,
        )
        self.policy: StreamingPolicy = make_policy(
            limits.streaming_policy,
            config.window_duration_ms,
            config.overlap_duration_ms,
            limits.audio_buffer_ms,
            interim_spans=limits.interim_ms <= 0,
        )
        self.allowance = AudioAllowance(limits.max_audio_speed, limits.audio_burst_ms, now)
        self.span: Span | None = None  # the span of the job in flight
        self.interim = InterimPasses(
            step_ms(limits.interim_ms, short_window=self.policy.short_window)
        )
        self.next_window_index = 0
        self.slowed_down = False
        self.turns: TurnDetector | None = None
        self.flush_after_ms: int | None = None
        self.flushes: collections.deque[PendingFlush] = collections.deque()
        self.flush_words: list[Word] = []  # committed while a flush is pending
        self.flushed_until_ms = self.timeline_start_ms
        self.clear_at_ms: int | None = None  # a clear waiting for the pending flushes
        self.rewound = False  # the last flush span's end is heard again (session_jobs)
        self.limits = limits

    def set_turns(self, turns: TurnOptions | None) -> None:
        """Start (or stop) turn detection from the next frame on."""
        self.flush_after_ms = turns.flush_after_ms if turns else None
        if turns is None:
            self.turns = None
            return
        vad = self.pipeline.buffer.vad
        if vad is not None:
            vad.threshold = (
                self.limits.vad_threshold if turns.vad_threshold is None else turns.vad_threshold
            )
        detector = TurnDetector(turns.stop_after_ms)
        if self.turns is not None:
            detector.continue_from(self.turns)
        else:
            detector.skip_to(self.pipeline.buffer.scored_frames)
        self.turns = detector

    def new_policy(self) -> None:
        """Forget the policy's state (held-back words, its next start): after a clear."""
        self.policy = make_policy(
            self.limits.streaming_policy,
            self.config.window_duration_ms,
            self.config.overlap_duration_ms,
            self.limits.audio_buffer_ms,
            interim_spans=self.limits.interim_ms <= 0,
        )

    def release(self, release_ms: int) -> None:
        """Audio before ``release_ms`` is reflected in the transcript: free it."""
        self.pipeline.buffer.release(min(release_ms, self.pipeline.buffer.end_ms))

    def apply_clear(self) -> None:
        """Drop the audio a clear asked for, once no pending flush needs it."""
        if self.clear_at_ms is None:
            return
        self.release(self.clear_at_ms)
        self.flushed_until_ms = max(self.flushed_until_ms, self.clear_at_ms)
        self.clear_at_ms = None
        self.new_policy()

    def checkpoint(self) -> dict[str, Any]:
        """The checkpoint payload (seed fields plus the word tail); unsigned."""
        tail = self.transcript.words[-CHECKPOINT_TAIL_WORDS:]
        return {
            "session_id": self.session_id,
            "last_audio_ms": self.pipeline.buffer.start_ms,
            "last_text_offset": len(self.transcript.text),
            "full_transcript": self.transcript.text,
            "buffer_config": {
                "window_duration_ms": self.config.window_duration_ms,
                "overlap_duration_ms": self.config.overlap_duration_ms,
            },
            "backend_model_id": self.model_id,
            "words": Transcript(list(tail)).to_json()["words"] if tail else [],
            **self.language.fields(self.language.locked),
        }

    def checkpoint_event(self) -> Checkpoint:
        """The signed checkpoint of the session as it is now."""
        return Checkpoint(self.signer(self.checkpoint()))

    def phrase(self, words: Sequence[Word]) -> Phrase:
        """A ``Success`` phrase of ``words``, with the session's language."""
        start, end = (words[0].start_ms, words[-1].end_ms) if words else (0, 0)
        text = " ".join(w.text for w in words)
        fields = self.language.fields(self.language.current)
        probability = fields.get("language_probability")
        return Phrase(
            start,
            end - start,
            text,
            tuple(words),
            "Success",
            confidence(words),
            language=str(fields["language"]) if "language" in fields else None,
            language_probability=float(probability) if probability is not None else None,
        )
