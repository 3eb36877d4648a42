"""Per-connection limits, sans-IO: frame rates, the error budget, audio speed and deadlines.

Normative: ``docs/PROTOCOL.md`` "Flow control and limits". Each object takes the clock as an
argument (``now``, seconds on one monotonic clock) and answers with a decision; the consumer
owns the clock and the socket.
"""

from __future__ import annotations

from dataclasses import dataclass

from openasr_site.config import ServerConfig
from transcription.audio.vad import VadKind
from transcription.events import ClientError, Close, CloseCode, Error, ErrorCode, Event
from transcription.policy import PolicyName

WINDOW_S = 1.0
MAX_ERRORS_PER_WINDOW = 5  # speech.error events sent per connection per second
ABUSE_WINDOWS = 5  # consecutive windows over the error budget that close the connection


@dataclass(frozen=True, slots=True)
class SessionLimits:
    """Per-session limits and inference settings taken from the server config."""

    audio_buffer_ms: int = 30000
    max_transcript_bytes: int = 1024 * 1024
    max_session_ms: int = 2 * 3600 * 1000
    max_audio_speed: float = 100.0  # times real time a client may send audio, after a burst
    audio_burst_ms: int = 60_000  # of this much audio at once (a minute of file or catch-up)
    vad: VadKind = "silero"
    vad_threshold: float = 0.5
    streaming_policy: PolicyName = "windowed"
    beam_size: int = 1
    n_threads: int = 2
    audio_ctx_auto: bool = True
    prompt: bool = False  # condition each window on the committed tail (WSS_PROMPT=transcript)
    interim_ms: int = 0  # an interim pass per this much new speech (WSS_INTERIM_MS; 0: off)
    inference_timeout_s: float = 30.0
    inference_retries: int = 2

    @classmethod
    def from_config(cls, cfg: ServerConfig) -> SessionLimits:
        """The limits of every session this server runs."""
        return cls(
            audio_buffer_ms=cfg.audio_buffer_ms,
            max_transcript_bytes=cfg.max_transcript_bytes,
            max_session_ms=cfg.max_session_s * 1000,
            max_audio_speed=cfg.max_audio_speed,
            vad=cfg.vad,
            vad_threshold=cfg.vad_threshold,
            streaming_policy=cfg.streaming_policy,
            beam_size=cfg.beam_size,
            n_threads=cfg.effective_threads,
            audio_ctx_auto=cfg.audio_ctx == "auto",
            prompt=cfg.prompt == "transcript",
            interim_ms=cfg.interim_ms,
            inference_timeout_s=cfg.inference_timeout_s,
            inference_retries=cfg.inference_retries,
        )


class RateWindow:
    """Every frame against the message rate, binary bytes against the byte rate, per second."""

    def __init__(self, max_messages: int, max_bytes: int, now: float) -> None:
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self._start = now
        self._messages = 0
        self._bytes = 0

    def check(self, size: int, *, binary: bool, now: float, exempt: bool = False) -> None:
        """Called for every frame; raises ``RATE_LIMITED`` for one over either rate. An
        ``exempt`` frame (``speech.end``: once per session, and refusing it would strand the
        transcript) counts but is never refused."""
        if now - self._start >= WINDOW_S:
            self._start, self._messages, self._bytes = now, 0, 0
        self._messages += 1
        if binary:
            self._bytes += size
        if not exempt and (self._messages > self.max_messages or self._bytes > self.max_bytes):
            raise ClientError(
                ErrorCode.RATE_LIMITED,
                f"Too many messages: at most {self.max_messages} frames and {self.max_bytes} "
                "audio bytes per second per session; the frame was refused",
            )


@dataclass(frozen=True, slots=True)
class ErrorVerdict:
    """Whether to send one error, how many were held back before it, and whether the
    connection has earned a 1008 close."""

    send: bool
    suppressed: int = 0
    abusive: bool = False


class ErrorBudget:
    """At most ``MAX_ERRORS_PER_WINDOW`` ``speech.error`` events per second reach a client; the
    rest are counted and reported with the next one sent. A client over the budget in
    ``ABUSE_WINDOWS`` consecutive seconds is abusive (close 1008): refused frames cost the
    server work, and queued errors cost memory when the client does not read."""

    def __init__(self, now: float) -> None:
        self._start = now
        self._sent = 0
        self._suppressed = 0
        self._over = False  # this window went over the budget
        self._streak = 0  # consecutive windows over the budget, this one not yet counted

    def on_error(self, now: float) -> ErrorVerdict:
        """Called for every non-fatal error about to be sent."""
        elapsed = now - self._start
        if elapsed >= WINDOW_S:
            # A window with no error at all breaks the streak.
            contiguous = elapsed < 2 * WINDOW_S
            self._streak = self._streak + 1 if self._over and contiguous else 0
            self._start, self._sent, self._over = now, 0, False
        if self._sent < MAX_ERRORS_PER_WINDOW:
            self._sent += 1
            held, self._suppressed = self._suppressed, 0
            return ErrorVerdict(send=True, suppressed=held)
        self._suppressed += 1
        self._over = True
        return ErrorVerdict(send=False, abusive=self._streak + 1 >= ABUSE_WINDOWS)

    def admit(self, events: list[Event], now: float) -> tuple[list[Event], bool, int]:
        """Pass ``events`` through the budget: a fatal error (one followed by ``Close``)
        always goes out. Returns what to send, whether the client is now abusive, and how
        many errors were held back."""
        kept: list[Event] = []
        held = 0
        for i, event in enumerate(events):
            fatal = i + 1 < len(events) and isinstance(events[i + 1], Close)
            if not isinstance(event, Error) or fatal:
                kept.append(event)
                continue
            verdict = self.on_error(now)
            if verdict.abusive:
                return kept, True, held
            if not verdict.send:
                held += 1
                continue
            if verdict.suppressed:
                event = Error(
                    event.code,
                    f"{event.message} ({verdict.suppressed} similar errors suppressed: at most "
                    f"{MAX_ERRORS_PER_WINDOW} per second are sent)",
                    event.detail,
                )
            kept.append(event)
        return kept, False, held


def abuse_error() -> ClientError:
    """The last error a client over its error budget for too long gets."""
    return ClientError(
        ErrorCode.RATE_LIMITED,
        f"Too many refused frames: over {MAX_ERRORS_PER_WINDOW} errors per second for "
        f"{ABUSE_WINDOWS} s; closing",
        close_code=CloseCode.POLICY_VIOLATION,
    )


class AudioAllowance:
    """A token bucket of audio milliseconds: ``burst_ms`` at once, then ``speed`` times real
    time. A client may send faster than real time (a file, a catch-up after a reconnect),
    but not without bound: every accepted millisecond costs decoding, resampling and VAD."""

    def __init__(self, speed: float, burst_ms: int, now: float) -> None:
        self.speed = speed
        self.burst_ms = burst_ms
        self._tokens = float(burst_ms)
        self._at = now

    def available_ms(self, now: float) -> int:
        """Audio that may be accepted now."""
        self._tokens = min(self.burst_ms, self._tokens + (now - self._at) * 1000 * self.speed)
        self._at = now
        return int(self._tokens)

    def consume(self, ms: int) -> None:
        """Called with the audio actually accepted."""
        self._tokens = max(0.0, self._tokens - ms)


class Deadlines:
    """The connection's clocks: ``speech.config`` within ``config_timeout_s`` of connecting,
    then some message at least every ``idle_timeout_s`` while nothing is in flight."""

    def __init__(self, *, config_timeout_s: float, idle_timeout_s: float, now: float) -> None:
        self.config_timeout_s = config_timeout_s
        self.idle_timeout_s = idle_timeout_s
        self._connected_at = now
        self._last_activity = now

    def on_frame(self, now: float) -> None:
        """Called for every frame received."""
        self._last_activity = now

    def expired(self, now: float, *, configured: bool, busy: bool) -> ClientError | None:
        """The fatal error when a deadline has passed, else None."""
        if not configured and now - self._connected_at > self.config_timeout_s:
            return ClientError(
                ErrorCode.INVALID_STATE,
                f"No speech.config within {self.config_timeout_s:g} s of connecting; closing",
                close_code=CloseCode.IDLE_TIMEOUT,
            )
        if not busy and now - self._last_activity > self.idle_timeout_s:
            return ClientError(
                ErrorCode.INVALID_STATE,
                f"Idle timeout: no message for {self.idle_timeout_s:g} s; closing",
                close_code=CloseCode.IDLE_TIMEOUT,
            )
        return None
