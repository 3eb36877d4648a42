"""One transcription session, sans-IO: audio bytes and inference results in, events and jobs out.

Normative: ``shared/spec/PROTOCOL.md`` "Windows and events", "Flow control and limits",
"Checkpoints and resume". The consumer owns the socket and the channel layer; this object owns
everything else about a session: the audio pipeline, which span is transcribed next (the
streaming policy), the committed transcript, backpressure and the session's limits. It never
awaits, so it is tested in milliseconds and serves the in-process and Redis deployments alike.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from transcription import protocol
from transcription.audio.decode import AudioDecodeError
from transcription.audio.pipeline import AudioPipeline
from transcription.audio.vad import make_vad
from transcription.inference.types import Segment, Word
from transcription.policy import Span, make_policy
from transcription.protocol import ClientError, ErrorCode, SpeechConfig
from transcription.transcript import Transcript

SAMPLE_RATE_HZ = 16000
BACKPRESSURE_SLOW_DOWN_RATIO = 0.8
BACKPRESSURE_OK_RATIO = 0.5
CHECKPOINT_TAIL_WORDS = 64  # words kept in a checkpoint for the merge after a resume
SKIPPED_SPEECH_MS = 1200  # speech this long before the first returned word was skipped


class State(enum.Enum):
    """Connection states of PROTOCOL.md "Session state machine" (plus ENDING while flushing)."""

    CONNECTED = "connected"
    CONFIGURED = "configured"
    ENDING = "ending"
    ENDED = "ended"


@dataclass(frozen=True, slots=True)
class SessionLimits:
    """Per-session limits and inference settings taken from the server config."""

    audio_buffer_ms: int = 30000
    max_transcript_bytes: int = 1024 * 1024
    max_session_ms: int = 2 * 3600 * 1000
    vad: str = "silero"
    vad_threshold: float = 0.5
    streaming_policy: str = "windowed"
    beam_size: int = 1
    n_threads: int = 2
    audio_ctx_auto: bool = True
    prompt: bool = False  # condition each window on the committed tail (WSS_PROMPT=transcript)


@dataclass(frozen=True, slots=True)
class ResumeState:
    """What a verified checkpoint restores: transcript, word tail and timeline position."""

    transcript: Transcript
    last_audio_ms: int


@dataclass(frozen=True, slots=True)
class Job:
    """One span to transcribe; ``window_index`` makes results idempotent."""

    window_index: int
    start_ms: int
    end_ms: int
    samples: np.ndarray
    language: str
    prompt: str
    beam_size: int
    n_threads: int
    audio_ctx: int

    @property
    def audio_seconds(self) -> float:
        return len(self.samples) / SAMPLE_RATE_HZ


@dataclass(slots=True)
class Outputs:
    """What one call produced: text frames to send, jobs to submit, and an optional close."""

    events: list[str] = field(default_factory=list)
    jobs: list[Job] = field(default_factory=list)
    close_code: int | None = None
    checkpoint: dict[str, Any] | None = None  # the latest signed checkpoint, to store
    windows_skipped: int = 0
    backpressure_events: int = 0


AUDIO_CTX_MIN_S = 5.0  # shorter encoder contexts make Whisper drop the words of short windows


def audio_ctx_for(seconds: float) -> int:
    """whisper.cpp encoder frames for ``seconds`` of audio (50/s) plus margin; 1500 = 30 s."""
    return min(1500, int(math.ceil(max(seconds, AUDIO_CTX_MIN_S) * 50)) + 64)


class Session:
    """A configured session. Create it after ``speech.config`` (and any resume) is accepted."""

    def __init__(
        self,
        session_id: str,
        config: SpeechConfig,
        limits: SessionLimits,
        *,
        model_id: str,
        resume: ResumeState | None = None,
        signer: Callable[[dict[str, Any]], dict[str, Any]] = lambda checkpoint: checkpoint,
    ) -> None:
        self.session_id = session_id
        self.config = config
        self.limits = limits
        self.model_id = model_id
        self.signer = signer
        self.state = State.CONFIGURED
        self.timeline_start_ms = resume.last_audio_ms if resume else 0
        self.transcript = resume.transcript if resume else Transcript()
        self.pipeline = AudioPipeline(
            config.encoding,
            config.sample_rate,
            capacity_ms=limits.audio_buffer_ms,
            vad=make_vad(limits.vad, limits.vad_threshold),
            timeline_start_ms=self.timeline_start_ms,
        )
        self.policy = make_policy(
            limits.streaming_policy, config.window_duration_ms, config.overlap_duration_ms
        )
        self.in_flight: tuple[Job, Span] | None = None
        self.next_window_index = 0
        self.slowed_down = False
        self.refused_ms_total = 0

    # --- inputs ---

    def feed_audio(self, data: bytes) -> Outputs:
        """Called for every binary frame; refuses (never drops) audio beyond the buffer bound."""
        if self.state is not State.CONFIGURED:
            raise ClientError(ErrorCode.INVALID_STATE, "Audio after speech.end is not accepted")
        out = Outputs()
        try:
            fed = self.pipeline.feed(data)
        except AudioDecodeError as exc:
            raise ClientError(ErrorCode.AUDIO_ERROR, str(exc)) from None
        if fed.refused_ms > 0:
            self.refused_ms_total += fed.refused_ms
            out.events.append(
                protocol.error_event(
                    self.session_id,
                    ErrorCode.RATE_LIMITED,
                    f"Audio buffer full ({self.limits.audio_buffer_ms} ms): refused "
                    f"{fed.refused_ms} ms of audio; slow down and resend it",
                )
            )
        if self.buffer.end_ms - self.timeline_start_ms > self.limits.max_session_ms:
            raise ClientError(
                ErrorCode.RATE_LIMITED,
                f"Session duration limit reached ({self.limits.max_session_ms // 1000} s of "
                "audio); send speech.end and resume in a new session",
            )
        self._backpressure(out)
        self._schedule(out)
        return out

    def end(self) -> Outputs:
        """Called on ``speech.end``: flush the rest of the audio, then the final events."""
        if self.state is not State.CONFIGURED:
            raise ClientError(ErrorCode.INVALID_STATE, "speech.end was already received")
        self.state = State.ENDING
        self.pipeline.finish()
        out = Outputs()
        self._schedule(out)
        return out

    def on_result(self, window_index: int, segments: Sequence[Segment]) -> Outputs:
        """Called with a window's segments (times relative to the window); stale ones ignored."""
        out = Outputs()
        if self.in_flight is None or self.in_flight[0].window_index != window_index:
            return out
        job, span = self.in_flight
        self.in_flight = None
        shifted = [seg.shifted(job.start_ms) for seg in segments]
        words = [w for seg in shifted for w in seg.words]
        if job.prompt and self._skipped_speech(job, words):
            # Conditioned on the prompt, Whisper sometimes skips the first sentence of a
            # window and transcribes only its end: hear the window again without context.
            retry = replace(job, prompt="", window_index=self.next_window_index)
            self.next_window_index += 1
            self.in_flight = (retry, span)
            out.jobs.append(retry)
            return out
        decision = self.policy.on_result(span, words, self.transcript)
        for seg in shifted:
            if seg.text.strip():
                out.events.append(
                    protocol.hypothesis_event(
                        self.session_id,
                        seg.start_ms,
                        seg.end_ms - seg.start_ms,
                        seg.text.strip(),
                        seg.words,
                    )
                )
        if decision.interim:
            out.events.append(self._hypothesis(decision.interim))
        if decision.committed:
            out.events.append(self._phrase(decision.committed))
        self._release(decision.release_ms)
        self._send_checkpoint(out)
        if len(self.transcript.text.encode()) > self.limits.max_transcript_bytes:
            raise ClientError(
                ErrorCode.RATE_LIMITED,
                f"Transcript limit reached ({self.limits.max_transcript_bytes} bytes); "
                "send speech.end and start a new session",
            )
        self._backpressure(out)
        self._schedule(out)
        return out

    # --- derived state ---

    @property
    def buffer(self) -> Any:
        return self.pipeline.buffer

    @property
    def last_audio_ms(self) -> int:
        """Audio before this point is fully reflected in the transcript (resume point)."""
        return self.buffer.start_ms

    def checkpoint(self) -> dict[str, Any]:
        """The checkpoint payload (seed fields plus the word tail); unsigned."""
        tail = self.transcript.words[-CHECKPOINT_TAIL_WORDS:]
        return {
            "session_id": self.session_id,
            "last_audio_ms": self.last_audio_ms,
            "last_text_offset": len(self.transcript.text),
            "full_transcript": self.transcript.text,
            "buffer_config": {
                "window_duration_ms": self.config.window_duration_ms,
                "overlap_duration_ms": self.config.overlap_duration_ms,
            },
            "backend_model_id": self.model_id,
            "words": Transcript(list(tail)).to_json()["words"] if tail else [],
        }

    # --- internals ---

    def _skipped_speech(self, job: Job, words: Sequence[Word]) -> bool:
        """True when the speech gate heard speech that Whisper, conditioned on the prompt,
        skipped: no word at all (a prompt-induced loop the filters dropped), or speech well
        before the first returned word."""
        spans = self.buffer.speech_spans(job.start_ms, job.end_ms)
        if not spans:
            return False
        if not words:
            return True
        return words[0].start_ms - spans[0][0] > SKIPPED_SPEECH_MS

    def _prompt(self, span: Span) -> str:
        """Whisper's prompt for ``span``: the committed tail heard before it, if enabled."""
        if not self.limits.prompt:
            return ""
        return self.transcript.tail_prompt(before_ms=span.start_ms)

    def _schedule(self, out: Outputs) -> None:
        """Start the next span if none is in flight; finish the session when all is done."""
        while self.in_flight is None and self.state in (State.CONFIGURED, State.ENDING):
            final = self.state is State.ENDING
            span = self.policy.next_span(self.buffer, final=final)
            if span is None:
                if final:
                    self._finish(out)
                return
            if not self.buffer.has_speech(span.start_ms, span.end_ms):
                decision = self.policy.on_skipped(span)
                out.windows_skipped += 1
                self._release(decision.release_ms)
                self._send_checkpoint(out)
                continue
            samples = self.buffer.window(span.start_ms, span.end_ms)
            seconds = len(samples) / SAMPLE_RATE_HZ
            job = Job(
                window_index=self.next_window_index,
                start_ms=span.start_ms,
                end_ms=span.end_ms,
                samples=samples,
                language=self.config.language,
                prompt=self._prompt(span),
                beam_size=self.limits.beam_size,
                n_threads=self.limits.n_threads,
                audio_ctx=audio_ctx_for(seconds) if self.limits.audio_ctx_auto else 0,
            )
            self.next_window_index += 1
            self.in_flight = (job, span)
            out.jobs.append(job)

    def _finish(self, out: Outputs) -> None:
        text = self.transcript.text
        out.events.append(
            protocol.phrase_event(
                self.session_id,
                0,
                self.buffer.end_ms,
                text,
                (),
                "EndOfStream",
                phrase_confidence=protocol.confidence(self.transcript.words),
            )
        )
        self._send_checkpoint(out)
        out.close_code = protocol.CLOSE_NORMAL
        self.state = State.ENDED

    def _release(self, release_ms: int) -> None:
        self.buffer.release(min(release_ms, self.buffer.end_ms))

    def _backpressure(self, out: Outputs) -> None:
        fill = self.buffer.fill_ratio
        if not self.slowed_down and fill > BACKPRESSURE_SLOW_DOWN_RATIO:
            self.slowed_down = True
            out.events.append(protocol.backpressure_event(self.session_id, "slow_down"))
            out.backpressure_events += 1
        elif self.slowed_down and fill < BACKPRESSURE_OK_RATIO:
            self.slowed_down = False
            out.events.append(protocol.backpressure_event(self.session_id, "ok"))
            out.backpressure_events += 1

    def _phrase(self, words: Sequence[Word]) -> str:
        start, end = words[0].start_ms, words[-1].end_ms
        text = " ".join(w.text for w in words)
        return protocol.phrase_event(self.session_id, start, end - start, text, words, "Success")

    def _hypothesis(self, words: Sequence[Word]) -> str:
        start, end = words[0].start_ms, words[-1].end_ms
        text = " ".join(w.text for w in words)
        return protocol.hypothesis_event(self.session_id, start, end - start, text, words)

    def _send_checkpoint(self, out: Outputs) -> None:
        checkpoint = self.signer(self.checkpoint())
        out.checkpoint = checkpoint
        out.events.append(protocol.checkpoint_event(self.session_id, checkpoint))
