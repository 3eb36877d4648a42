"""A minimal protocol client for tests: stream audio, honour backpressure, collect events."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import websockets

CLOSE_NORMAL = 1000  # docs/PROTOCOL.md "Close codes": after EndOfStream and the final checkpoint


@dataclass
class StreamResult:
    """Every event of one connection, and how it closed: ``close_code`` is the code the server
    sent (None while open), ``closed_by_server`` whether the server closed first."""

    events: list[dict[str, Any]] = field(default_factory=list)
    close_code: int | None = None
    closed_by_server: bool = False

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("type") == kind]

    @property
    def ack(self) -> dict[str, Any]:
        return self.of("speech.config.ack")[0]

    @property
    def session_id(self) -> str:
        return str(self.ack["payload"]["session_id"])

    @property
    def phrases(self) -> list[dict[str, Any]]:
        return [
            e["payload"] for e in self.of("speech.phrase") if e["payload"]["status"] == "Success"
        ]

    @property
    def phrase_text(self) -> str:
        return " ".join(p["text"] for p in self.phrases if p["text"])

    @property
    def final(self) -> dict[str, Any] | None:
        ends = [e for e in self.of("speech.phrase") if e["payload"]["status"] == "EndOfStream"]
        return ends[-1]["payload"] if ends else None

    @property
    def last_checkpoint(self) -> dict[str, Any] | None:
        cps = self.of("speech.checkpoint")
        return cps[-1]["payload"] if cps else None

    @property
    def errors(self) -> list[dict[str, Any]]:
        return [e["payload"] for e in self.of("speech.error")]

    def assert_ended_normally(self) -> None:
        """No error, the EndOfStream phrase, then the server closed with 1000."""
        assert self.errors == [], self.errors
        assert self.final is not None, f"no EndOfStream phrase: {self.events[-3:]}"
        assert self.closed_by_server, "the server did not close the connection"
        assert self.close_code == CLOSE_NORMAL, f"close code {self.close_code}, expected 1000"


AHEAD_OF_CHECKPOINT_MS = 20000
# "As fast as possible" stays under any WSS_MAX_AUDIO_SPEED a test server may set (as low as
# 20x; docs/PROTOCOL.md "Rates"): audio beyond it is refused, and this client does not resend.
FASTEST_SPEED = 16.0


class FlowControl:
    """What a sender must respect: ``speech.backpressure`` (pause on slow_down until ok) and
    the last checkpoint's ``last_audio_ms`` (stay at most ``AHEAD_OF_CHECKPOINT_MS`` ahead).
    Backpressure alone is not enough at full speed: frames already queued in the socket reach
    the server after its slow_down and overflow the bound (then RATE_LIMITED)."""

    def __init__(self) -> None:
        self.last_audio_ms = 0
        self._may_send = asyncio.Event()
        self._may_send.set()
        self._changed = asyncio.Event()
        self._closed = False

    def observe(self, event: Mapping[str, Any]) -> None:
        """Called with every server event."""
        if event["type"] == "speech.backpressure":
            if event["payload"]["action"] == "slow_down":
                self._may_send.clear()
            else:
                self._may_send.set()
        elif event["type"] == "speech.checkpoint":
            self.last_audio_ms = max(self.last_audio_ms, int(event["payload"]["last_audio_ms"]))
            self._changed.set()

    def closed(self) -> None:
        """Called when the connection is gone: nothing is worth waiting for any more."""
        self._closed = True
        self._may_send.set()
        self._changed.set()

    async def ready(self, sent_ms: int, timeout: float) -> None:
        """Returns when the frame starting at ``sent_ms`` may be sent (at once once the
        connection is closed: the send then fails with the close code)."""
        try:
            await asyncio.wait_for(self._may_send.wait(), timeout)
        except TimeoutError:
            raise TimeoutError(f"no backpressure 'ok' within {timeout} s of 'slow_down'") from None
        while sent_ms - self.last_audio_ms > AHEAD_OF_CHECKPOINT_MS and not self._closed:
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), timeout)
            except TimeoutError:
                raise TimeoutError(
                    f"{sent_ms} ms of audio sent, but no checkpoint past last_audio_ms "
                    f"{self.last_audio_ms} within {timeout} s"
                ) from None


def config(**overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "language": "en",
        "sample_rate": 16000,
        "encoding": "pcm_s16le",
        "window_duration_ms": 5000,
        "overlap_duration_ms": 500,
    }
    payload.update(overrides)
    return payload


def pcm_chunks(pcm: bytes, sample_rate: int, chunk_ms: int = 200) -> list[bytes]:
    size = sample_rate * 2 * chunk_ms // 1000
    return [pcm[i : i + size] for i in range(0, len(pcm), size)]


async def stream(
    url: str,
    frames: Iterable[bytes],
    payload: Mapping[str, Any],
    *,
    frame_ms: int = 200,
    realtime: bool = False,
    speed: float | None = None,
    headers: Sequence[tuple[str, str]] | Mapping[str, str] | None = None,
    timeout: float = 240,
    end: bool = True,
) -> StreamResult:
    """Open a session, send ``frames`` (paced in real time, ``speed`` times real time, or as
    fast as flow control and the audio speed limit allow), send ``speech.end`` and collect
    every event until the server closes. Without ``end`` (or when the first reply is not the
    ack) the client closes after the first reply, and ``closed_by_server`` says whether the
    server had closed first."""
    result = StreamResult()
    flow = FlowControl()
    # realtime: one frame per frame duration; speed: that many times faster
    pace = 1.0 if realtime else speed or FASTEST_SPEED
    async with websockets.connect(url, additional_headers=headers, max_size=None) as ws:
        try:
            await ws.send(json.dumps({"type": "speech.config", "payload": dict(payload)}))
            ack = json.loads(await asyncio.wait_for(ws.recv(), 30))
            result.events.append(ack)
            if ack["type"] != "speech.config.ack":
                return result

            async def receive() -> None:
                try:
                    async for raw in ws:
                        event = json.loads(raw)
                        result.events.append(event)
                        flow.observe(event)
                finally:
                    flow.closed()

            receiver = asyncio.ensure_future(receive())
            try:
                try:
                    await _send_all(ws, frames, flow, frame_ms, pace, timeout)
                    if end:
                        await ws.send(json.dumps({"type": "speech.end", "payload": {}}))
                except websockets.ConnectionClosed:
                    pass  # the server closed early: the receiver has its last events and code
                if end or receiver.done():
                    await asyncio.wait_for(receiver, timeout)
            except websockets.ConnectionClosed:
                pass
            finally:
                if not receiver.done():
                    receiver.cancel()
                # retrieved, so a failed receiver is never reported as "never retrieved"
                await asyncio.gather(receiver, return_exceptions=True)
        finally:
            _record_close(ws, result)
    return result


async def _send_all(
    ws: Any,
    frames: Iterable[bytes],
    flow: FlowControl,
    frame_ms: int,
    pace: float | None,
    timeout: float,
) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    sent_ms = 0
    for frame in frames:
        await flow.ready(sent_ms, timeout)
        if pace:
            # against the clock, so per-frame overheads never add up to a slower pace
            await asyncio.sleep(max(0.0, started + sent_ms / 1000 / pace - loop.time()))
        sent_ms += frame_ms
        await ws.send(frame)


def _record_close(ws: Any, result: StreamResult) -> None:
    # close_rcvd_then_sent: the server's close frame came first (websockets' protocol state)
    result.closed_by_server = bool(ws.protocol.close_rcvd_then_sent)
    result.close_code = ws.close_code
