"""A FAKE OpenASR server for client protocol tests: no model, deterministic 'words'.

It speaks the wire protocol (``PROTOCOL.md``) with ``websockets.serve``: word ``i`` is ``w{i}``
at ``i * word_ms`` on the session timeline; every ``window_ms`` of received audio yields a
hypothesis, a phrase with the window's words and a checkpoint. Tests can make it drop the
connection abruptly at a stream position (optionally between a phrase and its checkpoint), send
backpressure, or transcribe slowly. It keeps every session's audio by stream position, so a test
can check the audio arrived whole, without gaps or overlaps, across reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response


@dataclass
class FakeSession:
    """What the fake knows about one session (shared by its connections)."""

    session_id: str
    sample_rate: int = 16000
    audio: bytearray = field(default_factory=bytearray)
    overwrites: int = 0  # bytes received again at a position already filled (must be 0)
    connections: int = 0
    frame_times: list[tuple[float, int]] = field(default_factory=list)  # (time, position ms)


@dataclass
class FakeOptions:
    """Knobs of the fake; positions are ms on the session timeline."""

    window_ms: int = 2000
    word_ms: int = 500
    api_key: str | None = None
    drop_at_ms: list[int] = field(default_factory=list)  # abort once position passes each
    drop_between_phrase_and_checkpoint: bool = False
    resume_window_ms: int | None = None  # first window after a resume (misaligned on purpose)
    resume_jitter_ms: int = 0  # shift word times after a resume (Whisper's jitter)
    slow_down_at_ms: int | None = None
    ok_after_s: float = 0.5
    window_delay_s: float = 0.0  # simulated inference time per window
    error_on_audio: str | None = None  # send this error code on the first audio frame
    refuse_resumes_as_live: int = 0  # refuse this many resumes: "live on another connection"
    forget_checkpoints: bool = False  # treat every checkpoint as not issued (tampered, expired)


class FakeASRServer:
    """The FAKE server; use ``async with FakeASRServer(...) as fake`` and ``fake.url``."""

    def __init__(self, **options: Any) -> None:
        self.options = FakeOptions(**options)
        self.sessions: dict[str, FakeSession] = {}
        self.issued: dict[str, dict[str, Any]] = {}
        self.auth_headers: list[str | None] = []
        self.configs: list[dict[str, Any]] = []
        self._server: Server | None = None
        self.url = ""
        self._counter = 0
        self._dropped: set[int] = set()

    async def __aenter__(self) -> FakeASRServer:
        self._server = await serve(
            self._handler, "127.0.0.1", 0, process_request=self._check_auth, max_size=None
        )
        port = next(iter(self._server.sockets)).getsockname()[1]
        self.url = f"ws://127.0.0.1:{port}/transcribe"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    def _check_auth(self, connection: ServerConnection, request: Request) -> Response | None:
        header = request.headers.get("Authorization")
        self.auth_headers.append(header)
        if self.options.api_key and header != f"Bearer {self.options.api_key}":
            return connection.respond(401, "Unauthorized\n")
        return None

    # --- one connection ---

    async def _handler(self, ws: ServerConnection) -> None:
        conn = _Connection(self, ws)
        with contextlib.suppress(Exception):
            await conn.run()


class _Connection:
    def __init__(self, fake: FakeASRServer, ws: ServerConnection) -> None:
        self.fake = fake
        self.opts = fake.options
        self.ws = ws
        self.session: FakeSession | None = None
        self.position_ms = 0  # where this connection's audio starts on the timeline
        self.received_bytes = 0
        self.committed_ms = 0
        self.next_word = 0
        self.transcript: list[str] = []
        self.first_window_ms: int | None = None
        self.jitter_ms = 0
        self.slowed = False
        self.errored = False

    @property
    def bytes_per_ms(self) -> float:
        assert self.session is not None
        return self.session.sample_rate * 2 / 1000

    @property
    def end_ms(self) -> int:
        return self.position_ms + int(self.received_bytes / self.bytes_per_ms)

    async def send(self, kind: str, payload: dict[str, Any]) -> None:
        sid = self.session.session_id if self.session else ""
        await self.ws.send(json.dumps({"type": kind, "session_id": sid, "payload": payload}))

    async def run(self) -> None:
        async for raw in self.ws:
            if isinstance(raw, bytes):
                await self.on_audio(raw)
                continue
            message = json.loads(raw)
            if message["type"] == "speech.config":
                await self.on_config(message["payload"])
            elif message["type"] == "speech.end":
                await self.on_end()
                return

    async def on_config(self, payload: dict[str, Any]) -> None:
        self.fake.configs.append(payload)
        checkpoint = payload.get("resume_checkpoint")
        if checkpoint is not None and self.opts.refuse_resumes_as_live > 0:
            self.opts.refuse_resumes_as_live -= 1
            message = "Cannot resume: session is live on another connection"
            await self.send("speech.error", {"code": "SESSION_NOT_FOUND", "message": message})
            return
        if checkpoint is not None:
            issued = self.fake.issued.get(checkpoint.get("nonce", ""))
            if issued != checkpoint or self.opts.forget_checkpoints:
                await self.send("speech.error", {"code": "SESSION_NOT_FOUND", "message": "no"})
                return
            self.session = self.fake.sessions[checkpoint["session_id"]]
            self.position_ms = self.committed_ms = checkpoint["last_audio_ms"]
            self.transcript = checkpoint["full_transcript"].split()
            self.next_word = len(self.transcript)
            self.first_window_ms = self.opts.resume_window_ms
            self.jitter_ms = self.opts.resume_jitter_ms
        else:
            self.fake._counter += 1
            sid = f"fake{self.fake._counter:04d}"
            self.session = FakeSession(sid, sample_rate=payload["sample_rate"])
            self.fake.sessions[sid] = self.session
        self.session.connections += 1
        effective = {k: v for k, v in payload.items() if k != "resume_checkpoint"}
        extra = {"resumed": True, "last_audio_ms": self.position_ms} if checkpoint else {}
        await self.send(
            "speech.config.ack",
            {"session_id": self.session.session_id, "effective_config": effective, **extra},
        )

    async def on_audio(self, data: bytes) -> None:
        session = self.session
        assert session is not None
        if self.opts.error_on_audio and not self.errored:
            self.errored = True
            await self.send("speech.error", {"code": self.opts.error_on_audio, "message": "x"})
        start = int(self.position_ms * self.bytes_per_ms) + self.received_bytes
        overlap = max(0, min(len(session.audio), start + len(data)) - start)
        session.overwrites += overlap
        if start > len(session.audio):
            session.audio.extend(b"\0" * (start - len(session.audio)))  # a gap: tests see it
        session.audio[start : start + len(data)] = data
        self.received_bytes += len(data)
        session.frame_times.append((time.monotonic(), self.end_ms))
        if self.opts.slow_down_at_ms is not None and not self.slowed:
            if self.end_ms >= self.opts.slow_down_at_ms:
                self.slowed = True
                await self.send("speech.backpressure", {"action": "slow_down"})
                asyncio.get_running_loop().call_later(
                    self.opts.ok_after_s,
                    lambda: asyncio.ensure_future(self._send_ok()),
                )
        for drop in self.opts.drop_at_ms:
            if drop not in self.fake._dropped and self.end_ms >= drop:
                if not self.opts.drop_between_phrase_and_checkpoint:
                    self.fake._dropped.add(drop)
                    self.abort()
                    return
        while True:
            window = self.first_window_ms or self.opts.window_ms
            if self.end_ms < self.committed_ms + window:
                break
            self.first_window_ms = None
            await self.window(self.committed_ms + window)

    async def _send_ok(self) -> None:
        with contextlib.suppress(Exception):
            await self.send("speech.backpressure", {"action": "ok"})

    def abort(self) -> None:
        """Drop the TCP connection without a close frame (a network failure)."""
        self.ws.transport.abort()

    def words_until(self, end_ms: int) -> list[dict[str, Any]]:
        words = []
        while self.next_word * self.opts.word_ms + self.opts.word_ms - 100 <= end_ms:
            i = self.next_word
            words.append(
                {
                    "text": f"w{i}",
                    "offset": i * self.opts.word_ms + self.jitter_ms,
                    "duration": self.opts.word_ms - 100,
                    "confidence": 0.9,
                }
            )
            self.next_word += 1
        return words

    async def window(self, end_ms: int) -> None:
        if self.opts.window_delay_s:
            await asyncio.sleep(self.opts.window_delay_s)
        words = self.words_until(end_ms)
        if words:
            text = " ".join(w["text"] for w in words)
            start, stop = words[0]["offset"], words[-1]["offset"] + words[-1]["duration"]
            span = {"offset": start, "duration": stop - start, "text": text, "words": words}
            await self.send("speech.hypothesis", span)
            await self.send("speech.phrase", {**span, "confidence": 0.9, "status": "Success"})
            self.transcript.extend(w["text"] for w in words)
        for drop in self.opts.drop_at_ms:
            if drop not in self.fake._dropped and end_ms >= drop:
                self.fake._dropped.add(drop)
                self.abort()
                raise ConnectionAbortedError
        self.committed_ms = end_ms
        await self.checkpoint()

    async def checkpoint(self) -> None:
        assert self.session is not None
        self.fake._counter += 1
        checkpoint = {
            "session_id": self.session.session_id,
            "last_audio_ms": self.committed_ms,
            "last_text_offset": len(" ".join(self.transcript)),
            "full_transcript": " ".join(self.transcript),
            "buffer_config": {"window_duration_ms": self.opts.window_ms},
            "nonce": f"n{self.fake._counter}",
        }
        self.fake.issued[checkpoint["nonce"]] = checkpoint
        await self.send("speech.checkpoint", checkpoint)

    async def on_end(self) -> None:
        if self.end_ms > self.committed_ms:
            await self.window(self.end_ms)
        text = " ".join(self.transcript)
        await self.send(
            "speech.phrase",
            {"offset": 0, "duration": self.end_ms, "text": text, "status": "EndOfStream"},
        )
        await self.checkpoint()
        await self.ws.close(1000)


@contextlib.asynccontextmanager
async def fake_server(**options: Any) -> AsyncIterator[FakeASRServer]:
    """``async with fake_server(window_ms=...) as fake:`` — the FAKE server on a free port."""
    async with FakeASRServer(**options) as fake:
        yield fake
