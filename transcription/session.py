"""One connection's session, sans-IO: frames, worker replies and the clock in; typed events and
jobs out.

Normative: ``docs/PROTOCOL.md`` "Session state machine", "Windows and events", "Flow control
and limits", "Checkpoints and resume". The ``Session`` owns the only connection state: its
state machine, the limits on its input, the outcomes of the inference client and the end of
the stream; ``session_jobs.py`` decides and builds its inference jobs and turns their results
into events, ``session_state.py`` holds what exists once it is configured. The consumer owns
the socket, the channel layer and the stores. It never awaits and never reads a clock (``now``
comes in as an argument), so it is tested in milliseconds and serves every wire protocol and
both deployments alike.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from transcription.audio.buffer import AudioBuffer
from transcription.audio.decode import AudioDecodeError
from transcription.audio.turns import Started
from transcription.events import (
    Backpressure,
    ClientError,
    Close,
    CloseCode,
    ConfigAck,
    Error,
    ErrorCode,
    FlushReason,
    SpeechStarted,
    SpeechStopped,
    confidence,
    error_events,
    invalid,
)
from transcription.inference.client import (
    Delivered,
    GiveUp,
    InferenceClient,
    InferenceTimes,
    Outcome,
    Resend,
    WorkerView,
)
from transcription.inference.messages import JobAccepted, JobResult
from transcription.languages import ENGLISH, needs_multilingual
from transcription.limits import SessionLimits
from transcription.protocol import SpeechConfig, language_field
from transcription.session_jobs import Jobs
from transcription.session_state import (
    BACKPRESSURE_OK_RATIO,
    BACKPRESSURE_SLOW_DOWN_RATIO,
    TRANSITIONS,
    Configured,
    Outputs,
    PendingFlush,
    ResumeState,
    State,
    TurnOptions,
    fit_to_buffer,
)
from transcription.transcript import Transcript


class Session:
    """One connection, from connect to close. ``start`` configures it."""

    def __init__(
        self,
        limits: SessionLimits,
        *,
        reply_channel: str = "",
        inference_times: InferenceTimes | None = None,
    ) -> None:
        self.limits = limits
        self.reply_channel = reply_channel
        self.state = State.CONNECTED
        # A channel-layer outage gives up once it outlasts the audio the session may buffer.
        self.inference = InferenceClient(
            timeout_s=limits.inference_timeout_s,
            retries=limits.inference_retries,
            outage_s=limits.audio_buffer_ms / 1000,
            times=inference_times,
        )
        self._c: Configured | None = None
        self._jobs: Jobs | None = None
        self._turns: TurnOptions | None = None

    # --- state ---

    def _transition(self, to: State) -> None:
        """Move to ``to``; an illegal transition is a bug and fails loudly."""
        if to not in TRANSITIONS[self.state]:
            raise RuntimeError(f"illegal session transition {self.state.value} -> {to.value}")
        self.state = to
        if to is State.ENDED:
            self.inference.cancel()

    @property
    def configured(self) -> Configured:
        if self._c is None:
            raise RuntimeError(f"session is {self.state.value}, not configured")
        return self._c

    @property
    def jobs(self) -> Jobs:
        if self._jobs is None:
            raise RuntimeError(f"session is {self.state.value}, not configured")
        return self._jobs

    @property
    def session_id(self) -> str:
        """The session id once configured ("" before)."""
        return self._c.session_id if self._c else ""

    @property
    def transcript(self) -> Transcript:
        return self.configured.transcript

    @property
    def buffer(self) -> AudioBuffer:
        return self.configured.pipeline.buffer

    @property
    def last_audio_ms(self) -> int:
        """Audio before this point is fully reflected in the transcript (resume point)."""
        return self.buffer.start_ms

    @property
    def has_progress(self) -> bool:
        """True once the session has something worth resuming: audio consumed or text."""
        return bool(self._c and (self.last_audio_ms > 0 or self._c.transcript.text))

    # --- inputs ---

    def check_can_configure(self) -> None:
        """Called before the consumer's async checks of a ``speech.config``."""
        if self.state is not State.CONNECTED:
            raise ClientError(ErrorCode.INVALID_STATE, "speech.config was already received")

    @staticmethod
    def check_config(config: SpeechConfig, model_id: str, multilingual: bool) -> SpeechConfig:
        """What the model can do: the config with its language as a Whisper code (every wire
        API's language goes through here), or ``INVALID_MESSAGE``: an unknown language, or a
        language other than English (``"auto"`` included) or ``task`` "translate" for an
        English-only model."""
        language = language_field(config.language)
        if not multilingual and needs_multilingual(language, config.task):
            field, value = ("language", language) if language != ENGLISH else ("task", config.task)
            raise invalid(
                f"Invalid '{field}': {value!r} needs a multilingual model, and the serving "
                f"model {model_id} is English-only (no multilingual model is served here)"
            )
        return replace(config, language=language)

    def start(
        self,
        session_id: str,
        config: SpeechConfig,
        *,
        model_id: str,
        multilingual: bool = True,
        resume: ResumeState | None = None,
        signer: Callable[[dict[str, Any]], dict[str, Any]] = lambda checkpoint: checkpoint,
        now: float = 0.0,
    ) -> Outputs:
        """Called once ``speech.config`` passed every check: configure and acknowledge."""
        self.check_can_configure()
        config = self.check_config(config, model_id, multilingual)
        config = fit_to_buffer(config, self.limits.audio_buffer_ms)
        self._c = Configured(
            session_id, config, self.limits, model_id, multilingual, resume, signer, now
        )
        self._c.set_turns(self._turns)
        self._jobs = Jobs(self._c, self.limits, self.reply_channel, self.inference)
        self._transition(State.CONFIGURED)
        ack = ConfigAck(
            config.effective(model_id),
            resumed=resume is not None,
            last_audio_ms=resume.last_audio_ms if resume else 0,
        )
        return Outputs(events=[ack])

    def set_turns(self, turns: TurnOptions | None) -> None:
        """Called before or after ``start`` (a Realtime ``session.update`` may change turn
        detection mid-session): speech events and endpointing from the next frame on."""
        self._turns = turns
        if self._c is not None:
            self._c.set_turns(turns)

    def flush(self, now: float = 0.0, reason: FlushReason = "client") -> Outputs:
        """Commit every word of the audio received so far, without ending the session
        (Deepgram's ``Finalize``, the Realtime API's ``input_audio_buffer.commit``): one
        ``Flushed`` event follows once the words are in, carrying those the flush committed."""
        if self.state is State.CONNECTED:
            raise ClientError(ErrorCode.INVALID_STATE, "Flush before the session is configured")
        if self.state is not State.CONFIGURED:
            raise ClientError(ErrorCode.INVALID_STATE, "Flush after the end of the stream")
        self.configured.flushes.append(PendingFlush(self.buffer.end_ms, reason))
        out = Outputs()
        self._schedule(out, now)
        return out

    def clear(self, now: float = 0.0) -> Outputs:
        """Drop the audio received after the last flush that no result has committed yet
        (the Realtime API's ``input_audio_buffer.clear``); a window in flight over it is
        abandoned. Pending flushes complete first."""
        if self.state is not State.CONFIGURED:
            raise ClientError(ErrorCode.INVALID_STATE, "Nothing to clear: no live audio")
        c = self.configured
        c.clear_at_ms = self.buffer.end_ms
        out = Outputs()
        if not c.flushes:
            if c.span is not None:
                self.inference.cancel()
                c.span = None
            c.apply_clear()
        self._schedule(out, now)
        return out

    def feed_audio(self, data: bytes, now: float = 0.0) -> Outputs:
        """Called for every binary frame; refuses (never drops) audio beyond the bounds."""
        if self.state is State.CONNECTED:
            raise ClientError(ErrorCode.INVALID_STATE, "Audio before speech.config")
        if self.state is not State.CONFIGURED:
            raise ClientError(ErrorCode.INVALID_STATE, "Audio after speech.end is not accepted")
        c = self.configured
        out = Outputs()
        if not data:
            return out  # an empty frame is ignored (docs/PROTOCOL.md "Audio")
        session_left_ms = self.limits.max_session_ms - (self.buffer.end_ms - c.timeline_start_ms)
        if session_left_ms <= 0:
            raise ClientError(
                ErrorCode.RATE_LIMITED,
                f"Session duration limit reached ({self.limits.max_session_ms // 1000} s of "
                "audio): the frame was refused; send speech.end and resume in a new session",
            )
        allowance_ms = c.allowance.available_ms(now)
        try:
            fed = c.pipeline.feed(data, min(allowance_ms, session_left_ms))
        except AudioDecodeError as exc:
            raise ClientError(ErrorCode.AUDIO_ERROR, str(exc)) from None
        c.allowance.consume(fed.accepted_ms)
        if fed.refused_ms > 0:
            out.refused_ms = fed.refused_ms
            refused = f"refused {fed.refused_ms} ms of audio"
            if session_left_ms < min(allowance_ms, self.buffer.free_ms):
                limit_s = self.limits.max_session_ms // 1000
                why = f"Session duration limit ({limit_s} s) reached: {refused}; send speech.end"
            elif allowance_ms < self.buffer.free_ms:
                speed = self.limits.max_audio_speed
                why = f"Audio faster than {speed:g}x real time: {refused}; slow down, resend it"
            else:
                buffer_ms = self.limits.audio_buffer_ms
                why = f"Audio buffer full ({buffer_ms} ms): {refused}; slow down and resend it"
            out.events.append(Error(ErrorCode.RATE_LIMITED, why))
        self._turn_events(out)
        self._backpressure(out)
        self._schedule(out, now)
        if self.state is State.CONFIGURED:
            self.jobs.schedule_interim(out, now)
        return out

    def _turn_events(self, out: Outputs) -> None:
        """Speech edges in the audio just buffered; an endpoint starts a flush."""
        c = self.configured
        if c.turns is None:
            return
        for edge in c.turns.update(self.buffer):
            if isinstance(edge, Started):
                out.events.append(SpeechStarted(edge.at_ms))
                continue
            flushing = edge.silence_ms == c.flush_after_ms
            out.events.append(SpeechStopped(edge.at_ms, edge.silence_ms, flushing))
            if flushing:
                c.flushes.append(PendingFlush(self.buffer.end_ms, "endpoint"))

    def end(self, now: float = 0.0) -> Outputs:
        """Called on ``speech.end``: flush the rest of the audio, then the final events."""
        if self.state is State.CONNECTED:
            raise ClientError(ErrorCode.INVALID_STATE, "speech.end before speech.config")
        if self.state is not State.CONFIGURED:
            raise ClientError(ErrorCode.INVALID_STATE, "speech.end was already received")
        self._transition(State.ENDING)
        self.configured.pipeline.finish()
        out = Outputs()
        # Pending flushes complete first (each with its Flushed), then the rest of the audio.
        self._schedule(out, now)
        return out

    def on_accepted(self, message: JobAccepted, now: float) -> None:
        """A worker started a window of ours."""
        self.inference.on_accepted(message, now)

    def on_result(self, message: JobResult, now: float) -> Outputs:
        """A worker finished (or failed) a window or an interim pass; stale and duplicate
        results are ignored."""
        if self._c is not None and self._c.interim.is_interim(message.window_index):
            out = Outputs()
            if self.jobs.interim_result(message, out, live=self.state is State.CONFIGURED):
                self._end_at_cap(out)
            return out
        return self._outcome(self.inference.on_result(message, now), now)

    def tick(self, now: float, workers: WorkerView | None = None) -> Outputs:
        """Called periodically (with the worker heartbeats' view when there is one): re-sends
        a window whose result is late or lost, or gives up."""
        return self._outcome(self.inference.tick(now, workers), now)

    def fail(self, exc: ClientError) -> Outputs:
        """The events of a client error; a fatal one (``close_code``) ends the session."""
        events = error_events(exc)
        if exc.close_code is not None and self.state is not State.ENDED:
            self._transition(State.ENDED)
        return Outputs(events=events)

    def abandon(self) -> None:
        """The connection is gone: end without final events (nothing can be sent)."""
        if self.state is not State.ENDED:
            self._transition(State.ENDED)

    # --- worker replies ---

    def _outcome(self, outcome: Outcome | None, now: float) -> Outputs:
        out = Outputs()
        if outcome is None or self.state is State.ENDED:
            return out
        if isinstance(outcome, Resend):
            out.jobs.append(outcome.job)
            out.resends += 1
        elif isinstance(outcome, GiveUp):
            # What to resume from, should the store have missed it.
            out.events.append(self.configured.checkpoint_event())
            out.events += self.fail(
                ClientError(
                    ErrorCode.SERVICE_UNAVAILABLE,
                    f"No inference worker answered for window {outcome.window_index} after "
                    f"{outcome.attempts} attempts ({outcome.reason}); the last checkpoint is "
                    "stored: resume with it later",
                    close_code=CloseCode.TRY_AGAIN,
                )
            ).events
        elif isinstance(outcome, Delivered):
            out.latency_s = outcome.latency_s
            delivery = self.jobs.deliver(outcome.result, outcome.job, out, now)
            if delivery == "full":
                self._end_at_cap(out)
            elif delivery == "heard":
                self._backpressure(out)
                self._schedule(out, now)
        return out

    def _schedule(self, out: Outputs, now: float) -> None:
        """Start the next span if none is in flight; finish the session when all is done."""
        if self.state not in (State.CONFIGURED, State.ENDING):
            return
        if self.jobs.schedule(out, now, ending=self.state is State.ENDING):
            self._finish(out)

    def _finish(self, out: Outputs) -> None:
        transcript = self.transcript
        out.events.append(
            replace(
                self.configured.phrase(()),
                offset_ms=0,
                duration_ms=self.buffer.end_ms,
                text=transcript.text,
                status="EndOfStream",
                confidence=confidence(transcript.words),
            )
        )
        out.events.append(self.configured.checkpoint_event())
        out.events.append(Close(CloseCode.NORMAL))
        self._transition(State.ENDED)

    def _end_at_cap(self, out: Outputs) -> None:
        """The transcript reached its cap (``Jobs`` told the client): the session ends with
        the transcript so far."""
        if self.state is State.CONFIGURED:
            self._transition(State.ENDING)
        self._finish(out)

    def _backpressure(self, out: Outputs) -> None:
        c = self.configured
        fill = self.buffer.fill_ratio
        if not c.slowed_down and fill > BACKPRESSURE_SLOW_DOWN_RATIO:
            c.slowed_down = True
            out.events.append(Backpressure("slow_down"))
        elif c.slowed_down and fill < BACKPRESSURE_OK_RATIO:
            c.slowed_down = False
            out.events.append(Backpressure("ok"))

    def checkpoint(self) -> dict[str, Any]:
        """The checkpoint payload (seed fields plus the word tail); unsigned."""
        return self.configured.checkpoint()
