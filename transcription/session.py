"""One connection's session, sans-IO: frames, worker replies and the clock in; typed events and
jobs out.

Normative: ``docs/PROTOCOL.md`` "Session state machine", "Windows and events", "Flow control
and limits", "Checkpoints and resume". The ``Session`` owns the only connection state and the
job in flight; the consumer owns the socket, the channel layer and the stores. It never awaits
and never reads a clock (``now`` comes in as an argument), so it is tested in milliseconds and
serves every wire protocol and both deployments alike.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from transcription.audio import SAMPLE_RATE_HZ
from transcription.audio.buffer import AudioBuffer
from transcription.audio.decode import AudioDecodeError
from transcription.audio.turns import Started
from transcription.events import (
    Backpressure,
    Checkpoint,
    ClientError,
    Close,
    CloseCode,
    ConfigAck,
    Error,
    ErrorCode,
    Flushed,
    FlushReason,
    Hypothesis,
    Phrase,
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
from transcription.inference.messages import JobAccepted, JobResult, Priority, TranscribeJob
from transcription.inference.types import Word
from transcription.languages import ENGLISH, TRANSLATE, needs_multilingual
from transcription.limits import SessionLimits
from transcription.policy.base import ANCHOR_MARGIN_MS, Span
from transcription.policy.windowed import SHORT_WINDOW_MS
from transcription.protocol import SpeechConfig, language_field
from transcription.session_state import (
    BACKPRESSURE_OK_RATIO,
    BACKPRESSURE_SLOW_DOWN_RATIO,
    CHECKPOINT_TAIL_WORDS,
    FLUSH_CUT_PROBE_MS,
    SKIPPED_SPEECH_MS,
    TRANSITIONS,
    BufferUpTo,
    Configured,
    Outputs,
    PendingFlush,
    ResumeState,
    State,
    TurnOptions,
    audio_ctx_for,
    fit_to_buffer,
)
from transcription.transcript import Transcript, join_words


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
            self._apply_clear()
        self._schedule(out, now)
        return out

    def _apply_clear(self) -> None:
        c = self.configured
        if c.clear_at_ms is None:
            return
        self._release(c.clear_at_ms)
        c.flushed_until_ms = max(c.flushed_until_ms, c.clear_at_ms)
        c.clear_at_ms = None
        c.new_policy()

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
        self._schedule_interim(out, now)
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
            return self._interim_result(message)
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
            self._checkpoint(out)  # what to resume from, should the store have missed it
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
            self._delivered(outcome.result, outcome.job, out, now)
        return out

    def _delivered(self, result: JobResult, job: TranscribeJob, out: Outputs, now: float) -> None:
        c = self.configured
        span, c.span = c.span, None
        assert span is not None
        c.interim.window_done(span.end_ms)
        c.language.observe(result.language, result.language_probability)
        shifted = [seg.shifted(span.start_ms) for seg in result.segments]
        words = [w for seg in shifted for w in seg.words]
        if job.prompt and self._skipped_speech(span, words):
            # Conditioned on the prompt, Whisper sometimes skips the first sentence of a
            # window and transcribes only its end: hear the window again without context.
            self._submit(replace(job, prompt=""), span, out, now)
            return
        words_before = len(c.transcript.words)
        decision = c.policy.on_result(span, words, c.transcript)
        if len(c.transcript.text.encode()) > self.limits.max_transcript_bytes:
            self._transcript_full(words_before, out)
            return
        for seg in shifted:
            if seg.text.strip():
                out.events.append(
                    Hypothesis(seg.start_ms, seg.end_ms - seg.start_ms, seg.text.strip(), seg.words)
                )
        if decision.interim:
            out.events.append(_hypothesis(decision.interim))
        if decision.committed:
            if c.flushes:
                c.flush_words += decision.committed  # sent with the Flushed event
            else:
                out.events.append(self._phrase(decision.committed))
        release_ms = decision.release_ms
        if span.final and c.flushes:
            release_ms = self._flush_resume_ms(span, release_ms)
        self._release(release_ms)
        self._checkpoint(out)
        self._backpressure(out)
        self._schedule(out, now)

    def _flush_resume_ms(self, span: Span, release_ms: int) -> int:
        """Where the audio after a flush's last span is heard from. A flush asked for in the
        middle of speech cuts a word: Whisper drops it (or stretches the word before it to
        the cut), and the next span, starting at the cut, hears only its end. So when the
        cut lies in speech, the next span starts before the last committed word, which the
        merge aligns on and drops (``policy/base.py``'s anchor word)."""
        c = self.configured
        cut_in_speech = self.buffer.has_speech(span.end_ms - FLUSH_CUT_PROBE_MS, span.end_ms)
        if not cut_in_speech:
            return release_ms
        words = c.transcript.recent_words(span.start_ms)
        start = words[-1].start_ms - ANCHOR_MARGIN_MS if words else span.start_ms
        c.rewound = True
        return max(span.start_ms, min(start, span.end_ms))

    def _transcript_full(self, words_before: int, out: Outputs) -> None:
        """The window would take the transcript past its cap: it is not committed, the client
        is told, and the session ends with the transcript so far (a hard cap)."""
        c = self.configured
        old = c.transcript
        c.transcript = Transcript(
            old.words[:words_before], prefix=old.prefix, prefix_end_ms=old.prefix_end_ms
        )
        out.events.append(
            Error(
                ErrorCode.RATE_LIMITED,
                f"Transcript limit reached ({self.limits.max_transcript_bytes} bytes): the "
                "session ends here; start a new session to go on",
            )
        )
        if self.state is State.CONFIGURED:
            self._transition(State.ENDING)
        self._finish(out)

    # --- internals ---

    def _skipped_speech(self, span: Span, words: Sequence[Word]) -> bool:
        """True when the speech gate heard speech that Whisper, conditioned on the prompt,
        skipped: no word at all (a prompt-induced loop the filters dropped), or speech well
        before the first returned word."""
        spans = self.buffer.speech_spans(span.start_ms, span.end_ms)
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

    def _submit(self, job: TranscribeJob, span: Span, out: Outputs, now: float) -> None:
        c = self.configured
        job = replace(job, window_index=c.next_window_index)
        c.next_window_index += 1
        c.span = span
        c.interim.window_sent(span.end_ms)
        out.jobs.append(self.inference.send(job, now))

    def _schedule_interim(self, out: Outputs, now: float) -> None:
        """An interim pass (``interim.py``) while the session waits for its next window:
        lowest priority, the encoder context of the audio present. Greedy where it is only a
        caption; with the session's beam at windows under 4 s, where passes also commit."""
        c = self.configured
        if self.state is not State.CONFIGURED or c.span is not None or c.flushes:
            return
        due = c.interim.due(self.buffer, now)
        if due is None:
            return
        samples = self.buffer.window(*due)
        commits = c.config.window_duration_ms < SHORT_WINDOW_MS
        job = self._job(
            samples,
            beam_size=self.limits.beam_size if commits else 1,
            audio_ctx=audio_ctx_for(len(samples) / SAMPLE_RATE_HZ, c.multilingual),
            priority="interim",
        )
        c.interim.sent(c.next_window_index, *due, now)
        c.next_window_index += 1
        out.jobs.append(job)

    def _interim_result(self, result: JobResult) -> Outputs:
        """The words of an interim pass after the committed transcript, as a pending
        ``speech.hypothesis``; nothing is committed. A stale or failed pass shows nothing."""
        c = self.configured
        interim = c.interim.take(result.window_index)
        out = Outputs()
        if interim is None or not result.ok or self.state is not State.CONFIGURED:
            return out
        span = Span(interim.start_ms, interim.end_ms, final=False, interim_only=True)
        words = [w for seg in result.segments for w in seg.shifted(span.start_ms).words]
        # A window in flight or a pending flush commits the same audio: the pass only shows.
        commit = c.span is None and not c.flushes
        words_before = len(c.transcript.words)
        decision = c.policy.on_interim(span, words, c.transcript, commit=commit)
        if len(c.transcript.text.encode()) > self.limits.max_transcript_bytes:
            self._transcript_full(words_before, out)
            return out
        if decision.committed:
            out.events.append(self._phrase(decision.committed))
        if decision.interim:
            out.events.append(_hypothesis(decision.interim))
        if decision.committed:
            self._checkpoint(out)
        return out

    def _schedule(self, out: Outputs, now: float) -> None:
        """Start the next span if none is in flight; finish the session when all is done."""
        c = self.configured
        while c.span is None and self.state in (State.CONFIGURED, State.ENDING):
            if c.flushes:
                # A flush sees the buffer as it was when it was asked for, to its end.
                view = BufferUpTo(self.buffer, c.flushes[0].end_ms)
                span = c.policy.next_span(view, final=True)
                if span is None:
                    self._flushed(out)
                    continue
            else:
                final = self.state is State.ENDING
                span = c.policy.next_span(self.buffer, final=final, eager=c.slowed_down)
                if span is None:
                    if final:
                        self._finish(out)
                    return
            if not self.buffer.has_speech(span.start_ms, span.end_ms):
                decision = c.policy.on_skipped(span)
                out.windows_skipped += 1
                self._release(decision.release_ms)
                self._checkpoint(out)
                continue
            samples = self.buffer.window(span.start_ms, span.end_ms)
            seconds = len(samples) / SAMPLE_RATE_HZ
            # Multilingual models keep the padded 30 s context for windows: with a reduced one
            # base lost words in German (tests/e2e/test_languages.py) and English (7.92 % against
            # tiny.en's 5.70 %, docs/CAPACITY.md).
            auto = self.limits.audio_ctx_auto and not c.multilingual
            job = self._job(
                samples,
                prompt=self._prompt(span),
                beam_size=self.limits.beam_size,
                audio_ctx=audio_ctx_for(seconds, c.multilingual) if auto else 0,
            )
            self._submit(job, span, out, now)

    def _job(
        self,
        samples: np.ndarray,
        *,
        beam_size: int,
        audio_ctx: int,
        prompt: str = "",
        priority: Priority = "live",
    ) -> TranscribeJob:
        """The session's next job (a window or an interim pass) over ``samples``."""
        c = self.configured
        return TranscribeJob(
            reply_channel=self.reply_channel,
            session_id=c.session_id,
            window_index=c.next_window_index,
            samples=samples,
            language=c.language.request,
            translate=c.config.task == TRANSLATE,
            prompt=prompt,
            beam_size=beam_size,
            n_threads=self.limits.n_threads,
            audio_ctx=audio_ctx,
            priority=priority,
            model_id=c.model_id,
        )

    def _flushed(self, out: Outputs) -> None:
        """The oldest pending flush is complete: its event, then a clear that waited for it."""
        c = self.configured
        flush = c.flushes.popleft()
        words, c.flush_words = tuple(c.flush_words), []
        start = c.flushed_until_ms
        c.flushed_until_ms = max(start, flush.end_ms)
        out.events.append(
            Flushed(start, flush.end_ms, words, flush.reason, confidence=confidence(words))
        )
        if c.rewound:
            # The policy thinks the flushed span was heard to its end: start it afresh at
            # the buffer's start (see _flush_resume_ms).
            c.rewound = False
            c.new_policy()
        if not c.flushes:
            self._apply_clear()

    def _finish(self, out: Outputs) -> None:
        transcript = self.transcript
        out.events.append(
            replace(
                self._phrase(()),
                offset_ms=0,
                duration_ms=self.buffer.end_ms,
                text=transcript.text,
                status="EndOfStream",
                confidence=confidence(transcript.words),
            )
        )
        self._checkpoint(out)
        out.events.append(Close(CloseCode.NORMAL))
        self._transition(State.ENDED)

    def _release(self, release_ms: int) -> None:
        self.buffer.release(min(release_ms, self.buffer.end_ms))

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
        c = self.configured
        tail = c.transcript.words[-CHECKPOINT_TAIL_WORDS:]
        return {
            "session_id": c.session_id,
            "last_audio_ms": self.last_audio_ms,
            "last_text_offset": len(c.transcript.text),
            "full_transcript": c.transcript.text,
            "buffer_config": {
                "window_duration_ms": c.config.window_duration_ms,
                "overlap_duration_ms": c.config.overlap_duration_ms,
            },
            "backend_model_id": c.model_id,
            "words": Transcript(list(tail)).to_json()["words"] if tail else [],
            **c.language.fields(c.language.locked),
        }

    def _phrase(self, words: Sequence[Word]) -> Phrase:
        """A ``Success`` phrase of ``words``, with the session's language."""
        start, end = (words[0].start_ms, words[-1].end_ms) if words else (0, 0)
        text = " ".join(w.text for w in words)
        fields = self.configured.language.fields(self.configured.language.current)
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

    def _checkpoint(self, out: Outputs) -> None:
        out.events.append(Checkpoint(self.configured.signer(self.checkpoint())))


def _hypothesis(words: Sequence[Word]) -> Hypothesis:
    start, end = words[0].start_ms, words[-1].end_ms
    return Hypothesis(start, end - start, join_words(words), tuple(words), pending=True)
