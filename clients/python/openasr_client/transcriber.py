"""The async streaming client: config and ack, paced audio, typed events, reconnect-and-resume.

Wire protocol: ``PROTOCOL.md`` and the C++ seed README. The socket handling lives here; the
resume bookkeeping (which audio to re-send, which phrases not to yield twice) is the sans-IO
``ResumeState``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from types import TracebackType
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from openasr_client.events import (
    Backpressure,
    Checkpoint,
    ConfigAck,
    EndOfStream,
    Error,
    Event,
    Phrase,
    ProtocolError,
    parse_event,
)
from openasr_client.resume import ResumeError, ResumeState

log = logging.getLogger("openasr_client")

MAX_FRAME_BYTES = 16 * 1024 * 1024  # the seed's frame limit; a final transcript can be large
CLOSE_NORMAL = 1000
# Closes after which reconnecting cannot help: policy (auth, origin) and message too big.
FATAL_CLOSE_CODES = frozenset({1008, 1009})
# Errors a resume does not fix; RATE_LIMITED/AUDIO_ERROR are reported and the session goes on.
FATAL_ERROR_CODES = frozenset({"INVALID_MESSAGE", "INVALID_STATE", "SESSION_NOT_FOUND"})
IDLE_SERVER_S = 5.0  # an unconfirmed-audio cap is lifted when the server says nothing this long


class TranscriberError(RuntimeError):
    """The session failed; ``code`` is the server's error code when it sent one."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class AuthenticationError(TranscriberError):
    """The server refused the API key (HTTP 401) or the client's address (HTTP 429)."""


class _Done:
    """Queue sentinel: the event stream is over."""


class Transcriber:
    """One streaming session. Use as ``async with``; ``send`` audio, ``end``, iterate events.

    ``realtime`` paces audio at wall-clock speed; otherwise audio goes as fast as the server's
    backpressure allows (``slow_down`` pauses, ``ok`` continues) and at most ``max_unconfirmed_ms``
    ahead of the last checkpoint, so the server never has to refuse audio. With ``resume`` a
    dropped connection is re-opened with the last checkpoint and the audio after it re-sent;
    ``max_reconnects`` attempts with backoff (0.5 s doubling to 8 s: about a minute, enough for
    a server to notice the old connection died).
    """

    def __init__(
        self,
        url: str,
        api_key: str | None = None,
        *,
        sample_rate: int = 16000,
        encoding: str = "pcm_s16le",
        language: str = "en",
        window_ms: int = 5000,
        overlap_ms: int = 500,
        realtime: bool = False,
        resume: bool = True,
        model_id: str | None = None,
        chunk_ms: int = 200,
        max_reconnects: int = 10,
        resume_buffer_ms: int = 120_000,
        max_unconfirmed_ms: int | None = None,
        open_timeout: float = 30.0,
    ) -> None:
        if encoding not in ("pcm_s16le", "opus"):
            raise ValueError("encoding must be 'pcm_s16le' or 'opus'")
        self.url = url
        self.api_key = api_key
        self.sample_rate = sample_rate
        self.encoding = encoding
        self.language = language
        self.window_ms = window_ms
        self.overlap_ms = overlap_ms
        self.realtime = realtime
        # Opus packets carry no byte-to-time mapping the client could cut at, so resume is
        # offered for PCM only.
        self.resume = resume and encoding == "pcm_s16le"
        self.model_id = model_id
        self.chunk_bytes = max(2, sample_rate * 2 * chunk_ms // 1000 // 2 * 2)
        self.max_reconnects = max_reconnects
        self.open_timeout = open_timeout
        # Below the server's default 30 s buffer and its 80 % slow_down mark (24 s).
        self.max_unconfirmed_ms = max_unconfirmed_ms or max(2 * window_ms, 20_000)
        self.state = ResumeState(sample_rate, resume_buffer_ms)
        self.session_id: str | None = None
        self.ack: ConfigAck | None = None
        self.reconnects = 0
        self._ws: ClientConnection | None = None
        self._events: asyncio.Queue[Event | _Done] = asyncio.Queue()
        self._ready = asyncio.Event()  # configured, replay done: sends may go out
        self._may_send = asyncio.Event()  # server backpressure: cleared on slow_down
        self._may_send.set()
        self._progress = asyncio.Event()  # set whenever the server says something
        self._send_lock = asyncio.Lock()
        self._ended = False
        self._finished = False
        self._failure: TranscriberError | None = None
        self._receiver: asyncio.Task[None] | None = None
        self._clock_start: float | None = None
        self._last_server_event = time.monotonic()
        self._pcm_sent_total = 0  # bytes the caller handed to send(), for pacing
        self._cap_bonus_ms = 0
        self._credit_checkpoint_ms = 0

    # --- lifecycle ---

    async def __aenter__(self) -> Transcriber:
        """Connect, send ``speech.config`` and wait for the ack (raises on refusal)."""
        await self._open(resume_checkpoint=None)
        self._ready.set()
        self._receiver = asyncio.create_task(self._receive_loop(), name="openasr-receive")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop receiving and close the socket (normally already closed by the server)."""
        await self.aclose()

    async def aclose(self) -> None:
        """Cancel the receiver and close the connection; safe to call twice."""
        if self._receiver is not None:
            self._receiver.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._receiver
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()

    # --- public API ---

    async def send(self, data: bytes) -> None:
        """Send audio, paced and resumable: PCM of any length (cut into ``chunk_ms`` frames),
        or exactly one Opus packet per call."""
        if self._ended:
            raise TranscriberError("send() after end()")
        if self.encoding == "opus":
            await self._send_frame(bytes(data))  # PROTOCOL.md "Audio": one packet per frame
            return
        view = memoryview(data)
        for start in range(0, len(view), self.chunk_bytes):
            await self._send_frame(bytes(view[start : start + self.chunk_bytes]))

    async def end(self) -> None:
        """Send ``speech.end``: the server transcribes the rest and closes after the final
        ``EndOfStream`` phrase and checkpoint."""
        self._raise_failure()
        self._ended = True
        async with self._send_lock:
            if self._ready.is_set() and self._ws is not None:
                with contextlib.suppress(ConnectionClosed):
                    await self._ws.send(json.dumps({"type": "speech.end", "payload": {}}))
            # Otherwise a reconnect is under way and sends speech.end after its replay.

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Event]:
        while True:
            item = await self._events.get()
            if isinstance(item, _Done):
                self._events.put_nowait(item)  # later iterations end too
                self._raise_failure()
                return
            yield item

    @property
    def audio_sent_ms(self) -> int:
        """Stream position of the audio sent so far, in ms."""
        return self.state.sent_ms

    @property
    def confirmed_ms(self) -> int:
        """Audio the server has fully transcribed (the last checkpoint's ``last_audio_ms``)."""
        return self.state.checkpoint_ms

    @property
    def last_checkpoint(self) -> Mapping[str, Any] | None:
        """The newest checkpoint object (usable as ``resume_checkpoint`` later)."""
        return self.state.checkpoint

    # --- sending ---

    async def _send_frame(self, frame: bytes) -> None:
        await self._pace(len(frame))
        while True:
            self._raise_failure()
            await self._wait_for_credit()
            async with self._send_lock:
                if not self._ready.is_set() or self._ws is None:
                    continue  # a reconnect started meanwhile: wait for it
                # Recorded before sending: if the send fails, the resume replays it.
                self.state.record_sent(frame)
                try:
                    await self._ws.send(frame)
                except ConnectionClosed:
                    pass  # the receiver reconnects and replays this frame
                return

    async def _pace(self, nbytes: int) -> None:
        if self._clock_start is None:
            self._clock_start = time.monotonic()
        self._pcm_sent_total += nbytes
        if not self.realtime or self.encoding != "pcm_s16le":
            return
        due = self._clock_start + (self._pcm_sent_total - nbytes) / (self.sample_rate * 2)
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)

    async def _wait_for_credit(self) -> None:
        """Block while the server said ``slow_down``, a reconnect runs, or (as fast as
        possible) too much audio is still unconfirmed by a checkpoint."""
        while True:
            await self._ready.wait()
            await self._may_send.wait()
            self._raise_failure()
            if self.state.checkpoint_ms > self._credit_checkpoint_ms:
                self._credit_checkpoint_ms = self.state.checkpoint_ms
                self._cap_bonus_ms = 0
            cap = self.max_unconfirmed_ms + self._cap_bonus_ms
            if self.realtime or self.state.unconfirmed_ms < cap:
                return
            # A streaming policy may hold audio until more arrives: a server silent this long
            # is probably waiting for audio, so allow one more window.
            if time.monotonic() - self._last_server_event > IDLE_SERVER_S:
                self._cap_bonus_ms += self.window_ms
                self._last_server_event = time.monotonic()
                continue
            self._progress.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._progress.wait(), IDLE_SERVER_S)

    # --- connecting ---

    def _config(self, resume_checkpoint: Mapping[str, Any] | None) -> str:
        payload: dict[str, Any] = {
            "language": self.language,
            "sample_rate": self.sample_rate,
            "encoding": self.encoding,
            "window_duration_ms": self.window_ms,
            "overlap_duration_ms": self.overlap_ms,
        }
        if self.model_id:
            payload["model_id"] = self.model_id
        if resume_checkpoint is not None:
            payload["resume_checkpoint"] = dict(resume_checkpoint)
        return json.dumps({"type": "speech.config", "payload": payload})

    async def _open(self, resume_checkpoint: Mapping[str, Any] | None) -> None:
        """Connect and configure; the ack is queued as an event. Raises ``TranscriberError``."""
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else None
        try:
            ws = await connect(
                self.url,
                additional_headers=headers,
                max_size=MAX_FRAME_BYTES,
                open_timeout=self.open_timeout,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status in (401, 403, 429):
                hint = "check the API key" if status != 429 else "too many failed attempts"
                raise AuthenticationError(
                    f"{self.url}: server refused the connection: HTTP {status} ({hint})"
                ) from None
            raise TranscriberError(
                f"{self.url}: server refused the connection: HTTP {status}"
            ) from None
        except (OSError, InvalidHandshake, TimeoutError) as exc:
            raise TranscriberError(f"cannot connect to {self.url}: {exc}") from None
        try:
            await ws.send(self._config(resume_checkpoint))
            while True:
                raw = await asyncio.wait_for(ws.recv(), self.open_timeout)
                event = parse_event(raw)
                if isinstance(event, ConfigAck):
                    break
                if isinstance(event, Error):
                    raise TranscriberError(f"{event.code}: {event.message}", event.code)
        except BaseException as exc:
            with contextlib.suppress(Exception):
                await ws.close()
            if isinstance(exc, ConnectionClosed | TimeoutError | ProtocolError):
                raise TranscriberError(f"no speech.config.ack from {self.url}: {exc!r}") from None
            raise
        self._ws = ws
        self.ack = event
        self.session_id = event.session_id
        self._may_send.set()
        self._last_server_event = time.monotonic()
        await self._events.put(event)

    async def _reconnect(self) -> None:
        """Re-open the session from the last checkpoint and re-send the audio after it."""
        delay = 0.5
        for attempt in range(1, self.max_reconnects + 1):
            self.reconnects += 1
            log.warning("connection lost; resuming (attempt %d)", attempt)
            try:
                replay = self.state.replay()
                await self._open(resume_checkpoint=self.state.checkpoint)
            except ResumeError as exc:
                raise TranscriberError(str(exc)) from None
            except AuthenticationError:
                raise
            except TranscriberError as exc:
                # After a network failure the server may not have noticed the old connection
                # die yet and refuses the session as live elsewhere: wait and try again.
                still_live = exc.code == "SESSION_NOT_FOUND" and "live" in str(exc).lower()
                if exc.code in FATAL_ERROR_CODES and not still_live:
                    raise
                log.warning("resume attempt %d failed: %s", attempt, exc)
            except (OSError, TimeoutError, ConnectionClosed) as exc:
                log.warning("resume attempt %d failed: %s", attempt, exc)
            else:
                await self._replay(replay)
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 8.0)
        raise TranscriberError(f"connection lost; {self.max_reconnects} resume attempts failed")

    async def _replay(self, data: bytes) -> None:
        async with self._send_lock:
            assert self._ws is not None
            self.state.on_reconnected()
            # All of it is recorded first, so a drop during the replay loses nothing.
            self.state.record_sent(data)
            try:
                for start in range(0, len(data), self.chunk_bytes):
                    await self._ws.send(data[start : start + self.chunk_bytes])
                if self._ended:
                    await self._ws.send(json.dumps({"type": "speech.end", "payload": {}}))
            except ConnectionClosed:
                return  # the receive loop notices and resumes again
            self._ready.set()

    # --- receiving ---

    async def _receive_loop(self) -> None:
        try:
            while True:
                ws = self._ws
                assert ws is not None
                try:
                    async for raw in ws:
                        await self._handle(raw)
                except ConnectionClosed:
                    pass
                self._ready.clear()
                if self._finished:
                    return
                code = ws.close_code
                if self._failure is not None:
                    return
                if not self.resume or code in FATAL_CLOSE_CODES:
                    reason = ws.close_reason or "no reason given"
                    raise TranscriberError(f"connection closed (code {code}: {reason})")
                await self._reconnect()
        except TranscriberError as exc:
            self._failure = exc
        except Exception as exc:
            log.exception("receiver failed")
            self._failure = TranscriberError(f"client error: {exc!r}")
        finally:
            self._ready.set()  # wake senders so they see the failure or the end
            self._progress.set()
            self._events.put_nowait(_Done())

    async def _handle(self, raw: str | bytes) -> None:
        """Called for every server frame: update flow control and resume state, queue events."""
        try:
            event = parse_event(raw)
        except ProtocolError as exc:
            log.warning("ignoring a malformed server frame: %s", exc)
            return
        self._last_server_event = time.monotonic()
        self._progress.set()
        if isinstance(event, Backpressure):
            if event.action == "slow_down":
                self._may_send.clear()
            else:
                self._may_send.set()
        elif isinstance(event, Checkpoint):
            self.state.on_checkpoint(event)
        elif isinstance(event, Phrase):
            filtered = self.state.filter_phrase(event)
            if filtered is None:
                return
            event = filtered
        elif isinstance(event, EndOfStream):
            self._finished = True
        await self._events.put(event)
        if isinstance(event, Error) and event.code in FATAL_ERROR_CODES:
            # A resume cannot fix these: end the session and report the error.
            self._failure = TranscriberError(f"{event.code}: {event.message}", event.code)
            if self._ws is not None:
                await self._ws.close()

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure


async def stream_audio(
    transcriber: Transcriber,
    chunks: AsyncIterator[bytes] | Any,
    on_event: Callable[[Event], None] | None = None,
    stop: asyncio.Event | None = None,
) -> list[Event]:
    """Send every chunk (sync or async iterable) until it ends or ``stop`` is set, then end the
    session; returns every event (each also handed to ``on_event`` as it arrives)."""
    stop = stop or asyncio.Event()
    events: list[Event] = []

    async def collect() -> None:
        async for event in transcriber:
            events.append(event)
            if on_event is not None:
                on_event(event)

    collector = asyncio.create_task(collect())
    try:
        if hasattr(chunks, "__aiter__"):
            async for chunk in chunks:
                await transcriber.send(chunk)
                if collector.done() or stop.is_set():
                    break
        else:
            iterator = iter(chunks)
            while not collector.done() and not stop.is_set():
                # A sync source may block (a microphone pipe): read it off the event loop.
                chunk = await asyncio.to_thread(next, iterator, None)
                if chunk is None:
                    break
                await transcriber.send(chunk)
            if hasattr(iterator, "close"):
                iterator.close()  # stops a recorder process behind a generator
        if not collector.done():
            await transcriber.end()
        await collector
    finally:
        if not collector.done():
            collector.cancel()
            with contextlib.suppress(asyncio.CancelledError, TranscriberError):
                await collector
        elif not collector.cancelled():
            collector.exception()  # retrieved: the same failure is already propagating
    return events
