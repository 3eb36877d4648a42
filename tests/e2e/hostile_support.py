"""Helpers for hostile-client tests against a real daphne process: a client that can send any
frame (lone surrogates, invalid UTF-8 in a text frame, junk), records every event and the close
code, and checks that the node's connection and session counts drain back to zero.

The documented outcomes (error codes, close codes) are those of /tmp/coord/DECISIONS.md "Wire
decisions", which docs/PROTOCOL.md states.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import websockets
from websockets.asyncio.client import ClientConnection

from tests.support.client import config
from tests.support.server import Server

ERROR_CODES = frozenset(
    {
        "INVALID_MESSAGE",
        "INVALID_STATE",
        "SESSION_LIMIT",
        "SESSION_NOT_FOUND",
        "AUDIO_ERROR",
        "RATE_LIMITED",
        "SERVICE_UNAVAILABLE",
        "INTERNAL_ERROR",
        "UNAUTHORIZED",
    }
)
EVENT_TYPES = frozenset(
    {
        "speech.config.ack",
        "speech.hypothesis",
        "speech.phrase",
        "speech.checkpoint",
        "speech.backpressure",
        "speech.error",
    }
)
CLOSE_NORMAL = 1000
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL = 1011
CLOSE_UNAUTHORIZED = 4001
CLOSE_IDLE = 4008
CLOSE_TRY_AGAIN = 4013
# RFC 6455 section 8.1: a text frame that is not UTF-8 fails the connection with 1007. The
# WebSocket layer (autobahn) does this before the application sees the frame.
CLOSE_INVALID_UTF8 = 1007
SERVER_CLOSE_CODES = frozenset(
    {
        CLOSE_NORMAL,
        CLOSE_POLICY,
        CLOSE_TOO_BIG,
        CLOSE_INTERNAL,
        CLOSE_UNAUTHORIZED,
        CLOSE_IDLE,
        CLOSE_TRY_AGAIN,
    }
)
# "Every close after an error is preceded by one speech.error naming why."
ERROR_BEFORE_CLOSE = {
    CLOSE_INTERNAL: "INTERNAL_ERROR",
    CLOSE_UNAUTHORIZED: "UNAUTHORIZED",
    CLOSE_IDLE: "INVALID_STATE",
    CLOSE_TRY_AGAIN: "SERVICE_UNAVAILABLE",
}


def frame(obj: Any) -> str:
    """JSON text of ``obj`` with every non-ASCII character escaped: a lone surrogate in a
    Python string becomes the six characters ``\\ud800``, valid UTF-8 JSON text that a
    server decodes back into a lone surrogate."""
    return json.dumps(obj, ensure_ascii=True)


def config_frame(**overrides: Any) -> str:
    return frame({"type": "speech.config", "payload": config(**overrides)})


END_FRAME = frame({"type": "speech.end", "payload": {}})


@dataclass
class Client:
    """One WebSocket connection with a background reader that records every event."""

    ws: ClientConnection
    events: list[dict[str, Any]] = field(default_factory=list)
    raw: list[str | bytes] = field(default_factory=list)
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)
    _reader: asyncio.Task[None] | None = None
    _cursor: int = 0

    @classmethod
    async def open(
        cls,
        server: Server,
        *,
        headers: Mapping[str, str] | None = None,
        sock: socket.socket | None = None,
        read: bool = True,
    ) -> Client:
        ws = await websockets.connect(
            server.url,
            additional_headers=headers,
            max_size=None,
            open_timeout=10,
            close_timeout=5,
            sock=sock,
            # A reader that stops reading must not make websockets close on its own.
            max_queue=None if read else 1,
            ping_interval=None,
        )
        client = cls(ws)
        if read:
            client.start_reading()
        return client

    def start_reading(self) -> None:
        """Start the background reader of a client opened with ``read=False``."""
        if self._reader is None:
            self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        try:
            async for message in self.ws:
                self.raw.append(message)
                self.events.append(json.loads(message))
                self._arrived.set()
        except websockets.ConnectionClosed:
            pass
        finally:
            self._arrived.set()

    # --- sending ---

    async def send_json(self, obj: Any) -> None:
        await self.ws.send(frame(obj))

    async def send_text(self, text: str) -> None:
        await self.ws.send(text)

    async def send_raw_text(self, data: bytes) -> None:
        """A text frame carrying exactly ``data`` (which need not be UTF-8)."""
        await self.ws.send(data, text=True)

    async def send_binary(self, data: bytes) -> None:
        await self.ws.send(data)

    async def configure(self, timeout: float = 10, **overrides: Any) -> dict[str, Any]:
        await self.send_text(config_frame(**overrides))
        ack = await self.next_event(timeout)
        assert ack["type"] == "speech.config.ack", ack
        return ack

    # --- reading ---

    @property
    def closed(self) -> bool:
        return self._reader is not None and self._reader.done()

    @property
    def close_code(self) -> int | None:
        return self.ws.close_code

    @property
    def errors(self) -> list[dict[str, Any]]:
        return [e["payload"] for e in self.events if e.get("type") == "speech.error"]

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("type") == kind]

    @property
    def end_of_stream(self) -> dict[str, Any] | None:
        ends = [e for e in self.of("speech.phrase") if e["payload"].get("status") == "EndOfStream"]
        return ends[-1]["payload"] if ends else None

    async def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 10, start: int = 0
    ) -> dict[str, Any]:
        """The first event from index ``start`` on that satisfies ``predicate``."""
        deadline = time.monotonic() + timeout
        seen = start
        while True:
            while seen < len(self.events):
                event = self.events[seen]
                seen += 1
                if predicate(event):
                    return event
            if self.closed:
                raise AssertionError(
                    f"closed ({self.close_code}) without the awaited event; got {self.events}"
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no awaited event within {timeout} s; got {self.events}")
            self._arrived.clear()
            if seen < len(self.events):
                continue
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                pass

    async def next_event(self, timeout: float = 10) -> dict[str, Any]:
        """The next event not yet returned by ``next_event``."""
        event = await self.wait_for(lambda e: True, timeout, start=self._cursor)
        self._cursor += 1
        return event

    async def expect_error(self, code: str, timeout: float = 10) -> dict[str, Any]:
        event = await self.next_event(timeout)
        assert event["type"] == "speech.error", event
        assert event["payload"]["code"] == code, event
        return dict(event["payload"])

    async def wait_closed(self, timeout: float = 15) -> int | None:
        """Wait until the server closes the connection; its close code."""
        assert self._reader is not None
        try:
            await asyncio.wait_for(asyncio.shield(self._reader), timeout)
        except TimeoutError:
            raise AssertionError(
                f"the server did not close within {timeout} s; events: {self.events[-10:]}"
            ) from None
        return self.ws.close_code

    async def close(self) -> None:
        await self.ws.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)

    def abort(self) -> None:
        """Vanish: drop the TCP connection without a close frame."""
        transport = self.ws.transport
        if transport is not None:
            transport.abort()


def assert_documented_events(events: list[dict[str, Any]]) -> None:
    """Every event has a documented type, and every error a documented code."""
    for event in events:
        assert event.get("type") in EVENT_TYPES, event
        if event["type"] == "speech.error":
            assert event["payload"]["code"] in ERROR_CODES, event


def assert_documented_close(client: Client, *, sent_invalid_utf8: bool = False) -> None:
    """The server's close code is documented, and a close after an error follows the one
    speech.error naming why (a normal close follows EndOfStream and the final checkpoint)."""
    code = client.close_code
    allowed = SERVER_CLOSE_CODES | ({CLOSE_INVALID_UTF8} if sent_invalid_utf8 else set())
    assert code in allowed, (code, client.ws.close_reason, client.events[-5:])
    if code == CLOSE_NORMAL:
        kinds = [e["type"] for e in client.events[-2:]]
        assert kinds == ["speech.phrase", "speech.checkpoint"], client.events[-5:]
        assert client.events[-2]["payload"]["status"] == "EndOfStream", client.events[-2]
    elif code in ERROR_BEFORE_CLOSE:
        assert client.events, f"close {code} without a speech.error"
        last = client.events[-1]
        assert last["type"] == "speech.error", (code, last)
        assert last["payload"]["code"] == ERROR_BEFORE_CLOSE[code], (code, last)


# --- the node's counts ---


_GAUGE = re.compile(r"^(openasr_active_connections|openasr_active_sessions)\s+([0-9.e+-]+)$", re.M)


def node_counts(server: Server) -> dict[str, float]:
    """Open connections, live sessions and windows in flight, as /health and /metrics say."""
    _, health = server.get("/health")
    with urllib.request.urlopen(server.http + "/metrics", timeout=5) as resp:
        text = resp.read().decode()
    gauges = {name: float(value) for name, value in _GAUGE.findall(text)}
    return {
        # /health may carry the connection count too: the larger of the two is what counts.
        "connections": max(
            gauges.get("openasr_active_connections", 0.0),
            float(health.get("active_connections", 0)),
        ),
        "sessions": max(
            gauges.get("openasr_active_sessions", 0.0), float(health["active_sessions"])
        ),
        "inference_pending": float(health["inference_pending"]),
    }


async def wait_drained(
    server: Server, timeout: float = 10, baseline: Mapping[str, float] | None = None
) -> None:
    """Poll until the node holds no connection, session or window in flight (or no more than
    ``baseline``: what it held before the test, so one test's leak does not fail the next)."""
    deadline = time.monotonic() + timeout
    while True:
        counts = await asyncio.to_thread(node_counts, server)
        if all(value <= (baseline or {}).get(name, 0) for name, value in counts.items()):
            return
        if time.monotonic() > deadline:
            raise AssertionError(
                f"the node did not drain within {timeout} s: {counts} (before: {baseline})"
            )
        await asyncio.sleep(0.05)


async def counts_now(server: Server) -> dict[str, float]:
    return await asyncio.to_thread(node_counts, server)


@dataclass
class Upgrade:
    """The HTTP answer to one WebSocket upgrade request (101 when accepted)."""

    status: int
    headers: Any
    body: bytes = b""

    def json(self) -> Any:
        return json.loads(self.body)


async def upgrade(server: Server, headers: Mapping[str, str] | None = None) -> Upgrade:
    """Open and close one connection; the HTTP status the client saw."""
    try:
        async with websockets.connect(
            server.url, additional_headers=headers, open_timeout=10
        ) as ws:
            assert ws.response is not None
            return Upgrade(101, ws.response.headers)
    except websockets.InvalidStatus as exc:
        return Upgrade(exc.response.status_code, exc.response.headers, exc.response.body or b"")


def tone_pcm(seconds: float, rate: int = 16000, freq: float = 220.0) -> bytes:
    """A loud modulated tone as PCM s16le (the fake backend hears a word per 500 ms of it)."""
    t = np.arange(int(seconds * rate)) / rate
    audio = 0.3 * np.sin(2 * np.pi * freq * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
    return (audio * 32767).astype("<i2").tobytes()
