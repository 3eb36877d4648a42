"""A configured session's inference jobs, sans-IO: which span to hear next, the job that hears
it (a window) or the audio so far (an interim pass), and what the result commits.

Normative: ``docs/PROTOCOL.md`` "Windows and events", "Flow control and limits". ``session.py``
owns the state machine and calls in here while the session is live. This module never changes
the session's state: it reports that every span is heard (``schedule``) or that the transcript
reached its cap (``deliver``, ``interim_result``), and the session ends itself.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Literal

import numpy as np

from transcription.audio import SAMPLE_RATE_HZ
from transcription.audio.buffer import AudioBuffer
from transcription.casing import continue_sentence
from transcription.events import Error, ErrorCode, Flushed, Hypothesis, confidence
from transcription.inference.client import InferenceClient
from transcription.inference.messages import JobResult, Priority, TranscribeJob
from transcription.inference.types import Word
from transcription.languages import TRANSLATE
from transcription.limits import SessionLimits
from transcription.policy.base import ANCHOR_MARGIN_MS, Span
from transcription.session_state import BufferUpTo, Configured, Outputs
from transcription.transcript import Transcript, join_words

SKIPPED_SPEECH_MS = 1200  # speech this long before the first returned word was skipped
# A flush whose last 200 ms hold speech was asked for mid-word (see Jobs._flush_resume_ms).
FLUSH_CUT_PROBE_MS = 200
# A reduced encoder context (``WSS_AUDIO_CTX=auto``) holds the audio, at least AUDIO_CTX_MIN_S
# (shorter contexts make Whisper drop the words of short windows), plus some of the silence
# whisper.cpp pads with. English-only models need 5 s of it: with 1.3 s tiny.en often did not see
# the audio end and decoded a window's text twice, squeezed into its last moments. Multilingual
# ones keep 1.3 s: given 5 s base invented sentences in the silence (docs/CAPACITY.md).
AUDIO_CTX_MIN_S = 5.0
AUDIO_CTX_PAD_S = {False: 5.0, True: 1.28}  # by multilingual

# What a window's result did: heard (committed, released, checkpointed), sent again without its
# prompt, or took the transcript past its cap (nothing committed; the session must end).
Delivery = Literal["heard", "resent", "full"]


def audio_ctx_for(seconds: float, multilingual: bool) -> int:
    """whisper.cpp encoder frames (50 per second, 1500 = 30 s) for ``seconds`` of audio heard
    by an English-only or a ``multilingual`` model."""
    padded = max(seconds, AUDIO_CTX_MIN_S) + AUDIO_CTX_PAD_S[multilingual]
    return min(1500, int(math.ceil(padded * 50)))


def window_settings(limits: SessionLimits, seconds: float, multilingual: bool) -> tuple[int, int]:
    """A window's beam size and encoder context (0: whisper.cpp's full 30 s) for ``seconds``."""
    # Multilingual models keep the padded 30 s context for windows: with a reduced one base
    # lost words in German (tests/e2e/test_languages.py) and English (7.92 % against tiny.en's
    # 5.70 %, docs/CAPACITY.md).
    auto = limits.audio_ctx_auto and not multilingual
    return limits.beam_size, audio_ctx_for(seconds, multilingual) if auto else 0


def interim_settings(
    limits: SessionLimits, seconds: float, multilingual: bool, *, short_window: bool
) -> tuple[int, int]:
    """An interim pass's beam size and encoder context for ``seconds`` of audio: the context
    of the audio present; greedy where the pass is only a caption, the session's beam at short
    windows (``StreamingPolicy.short_window``), where passes also commit."""
    beam_size = limits.beam_size if short_window else 1
    return beam_size, audio_ctx_for(seconds, multilingual)


class Jobs:
    """The spans and inference jobs of one configured session, and what their results commit
    (through the session's policy). Created by ``Session.start``."""

    def __init__(
        self,
        c: Configured,
        limits: SessionLimits,
        reply_channel: str,
        inference: InferenceClient,
    ) -> None:
        self.c = c
        self.limits = limits
        self.reply_channel = reply_channel
        self.inference = inference

    @property
    def buffer(self) -> AudioBuffer:
        return self.c.pipeline.buffer

    # --- windows ---

    def schedule(self, out: Outputs, now: float, *, ending: bool) -> bool:
        """Start the next span if none is in flight, pending flushes first (each completes
        with its ``Flushed``). True once ``ending`` and every span is heard: the session ends."""
        c = self.c
        while c.span is None:
            if c.flushes:
                # A flush sees the buffer as it was when it was asked for, to its end.
                view = BufferUpTo(self.buffer, c.flushes[0].end_ms)
                span = c.policy.next_span(view, final=True)
                if span is None:
                    self._flushed(out)
                    continue
            else:
                span = c.policy.next_span(self.buffer, final=ending, eager=c.slowed_down)
                if span is None:
                    return ending
            if not self.buffer.has_speech(span.start_ms, span.end_ms):
                decision = c.policy.on_skipped(span)
                out.windows_skipped += 1
                c.release(decision.release_ms)
                out.events.append(c.checkpoint_event())
                continue
            samples = self.buffer.window(span.start_ms, span.end_ms)
            beam_size, audio_ctx = window_settings(
                self.limits, len(samples) / SAMPLE_RATE_HZ, c.multilingual
            )
            job = self._job(
                samples, prompt=self._prompt(span), beam_size=beam_size, audio_ctx=audio_ctx
            )
            self._submit(job, span, out, now)
        return False

    def deliver(self, result: JobResult, job: TranscribeJob, out: Outputs, now: float) -> Delivery:
        """A window's result: its words through the policy, the events they make, the buffer
        released up to where the next span starts."""
        c = self.c
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
            return "resent"
        if span.at_pause and not span.final:
            heard = c.interim.heard_from(span.start_ms)
            words = continue_sentence(words, self._pause_after(span), heard)
        words_before = len(c.transcript.words)
        decision = c.policy.on_result(span, words, c.transcript)
        if self._over_cap(words_before, out):
            return "full"
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
                out.events.append(c.phrase(decision.committed))
        release_ms = decision.release_ms
        if span.final and c.flushes:
            release_ms = self._flush_resume_ms(span, release_ms)
        c.release(release_ms)
        out.events.append(c.checkpoint_event())
        return "heard"

    def _pause_after(self, span: Span) -> int | None:
        """The length of the pause ``span`` was cut in, once speech followed it; None while it
        goes on (or the cut is not in one)."""
        pause = self.buffer.pause_at(span.end_ms)
        if pause is None or pause[1] >= self.buffer.end_ms:
            return None
        return pause[1] - pause[0]

    def _flush_resume_ms(self, span: Span, release_ms: int) -> int:
        """Where the audio after a flush's last span is heard from. A flush asked for in the
        middle of speech cuts a word: Whisper drops it (or stretches the word before it to
        the cut), and the next span, starting at the cut, hears only its end. So when the
        cut lies in speech, the next span starts before the last committed word, which the
        merge aligns on and drops (``policy/base.py``'s anchor word)."""
        c = self.c
        cut_in_speech = self.buffer.has_speech(span.end_ms - FLUSH_CUT_PROBE_MS, span.end_ms)
        if not cut_in_speech:
            return release_ms
        words = c.transcript.recent_words(span.start_ms)
        start = words[-1].start_ms - ANCHOR_MARGIN_MS if words else span.start_ms
        c.rewound = True
        return max(span.start_ms, min(start, span.end_ms))

    def _flushed(self, out: Outputs) -> None:
        """The oldest pending flush is complete: its event, then a clear that waited for it."""
        c = self.c
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
            c.apply_clear()

    # --- interim passes ---

    def schedule_interim(self, out: Outputs, now: float) -> None:
        """An interim pass (``interim.py``) while the session takes audio and waits for its
        next window: lowest priority."""
        c = self.c
        if c.span is not None or c.flushes:
            return
        due = c.interim.due(self.buffer, now)
        if due is None:
            return
        samples = self.buffer.window(*due)
        beam_size, audio_ctx = interim_settings(
            self.limits,
            len(samples) / SAMPLE_RATE_HZ,
            c.multilingual,
            short_window=c.policy.short_window,
        )
        job = self._job(samples, beam_size=beam_size, audio_ctx=audio_ctx, priority="interim")
        c.interim.sent(c.next_window_index, *due, now)
        c.next_window_index += 1
        out.jobs.append(job)

    def interim_result(self, result: JobResult, out: Outputs, *, live: bool) -> bool:
        """The words of an interim pass after the committed transcript, as a pending
        ``speech.hypothesis`` (committed where the policy agrees). A stale or failed pass, or
        one that comes back once the session stopped taking audio (not ``live``), shows
        nothing. True when the transcript reached its cap: the session must end."""
        c = self.c
        interim = c.interim.take(result.window_index)
        if interim is None or not result.ok or not live:
            return False
        span = Span(interim.start_ms, interim.end_ms, final=False, interim_only=True)
        words = [w for seg in result.segments for w in seg.shifted(span.start_ms).words]
        c.interim.heard(span.start_ms, tuple(words))
        # A window in flight or a pending flush commits the same audio: the pass only shows.
        commit = c.span is None and not c.flushes
        words_before = len(c.transcript.words)
        decision = c.policy.on_interim(span, words, c.transcript, commit=commit)
        if self._over_cap(words_before, out):
            return True
        if decision.committed:
            out.events.append(c.phrase(decision.committed))
        if decision.interim:
            out.events.append(_hypothesis(decision.interim))
        if decision.committed:
            out.events.append(c.checkpoint_event())
        return False

    # --- jobs ---

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
        c = self.c
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

    def _submit(self, job: TranscribeJob, span: Span, out: Outputs, now: float) -> None:
        c = self.c
        job = replace(job, window_index=c.next_window_index)
        c.next_window_index += 1
        c.span = span
        c.interim.window_sent(span.end_ms)
        out.jobs.append(self.inference.send(job, now))

    def _prompt(self, span: Span) -> str:
        """Whisper's prompt for ``span``: the committed tail heard before it, if enabled."""
        if not self.limits.prompt:
            return ""
        return self.c.transcript.tail_prompt(before_ms=span.start_ms)

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

    def _over_cap(self, words_before: int, out: Outputs) -> bool:
        """True when the last result took the transcript past its cap: the words it committed
        are taken back (a hard cap) and the client is told; the session must end."""
        c = self.c
        if len(c.transcript.text.encode()) <= self.limits.max_transcript_bytes:
            return False
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
        return True


def _hypothesis(words: Sequence[Word]) -> Hypothesis:
    start, end = words[0].start_ms, words[-1].end_ms
    return Hypothesis(start, end - start, join_words(words), tuple(words), pending=True)
