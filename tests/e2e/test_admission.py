"""Admission from measured speed through a real daphne (docs/PROTOCOL.md "Admission"):
sessions beyond what the workers can transcribe in real time are refused with SESSION_LIMIT;
the admitted ones keep up.

Uses the FAKE backend (protocol tests only) because its speed is known exactly: 0.4 s of
inference per audio second on one slot, so with 5 s / 0.5 s windows one session needs
0.4 × 5 / 4.5 = 0.44 of the slot and two fit under the 0.9 headroom, a third does not.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
import websockets

from tests.e2e.conftest import migrated_db
from tests.support.client import CLOSE_NORMAL, config
from tests.support.server import Server, async_wait_until, start_server, wait_until

pytestmark = [pytest.mark.e2e]

FRAME_MS = 200
RATE_HZ = 16000


@pytest.fixture(scope="module")
def slow_fake_server() -> Iterator[Server]:
    server = start_server(
        {
            "WSS_BACKEND": "fake",
            "WSS_FAKE_BACKEND_RTF": "0.4",
            "WSS_WORKER_CONCURRENCY": "1",
            "WSS_VAD": "off",
            "WSS_WINDOW_DURATION_MS": "5000",
            "WSS_OVERLAP_DURATION_MS": "500",
            "DATABASE_URL": migrated_db(),
        }
    )
    yield server
    server.stop()


def _noise_frames(seconds: float, seed: int) -> list[bytes]:
    """Loud-enough noise: the fake backend writes one word per non-silent 500 ms."""
    rng = np.random.default_rng(seed)
    audio = (rng.normal(0, 0.1, int(seconds * RATE_HZ)) * 32767).astype("<i2").tobytes()
    size = RATE_HZ * 2 * FRAME_MS // 1000
    return [audio[i : i + size] for i in range(0, len(audio), size)]


@dataclass
class Timed:
    """Events with their arrival time, seconds after the first audio frame was sent, and the
    close code the server sent (None if the client closed first)."""

    events: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    close_code: int | None = None

    def of(self, kind: str) -> list[tuple[float, dict[str, Any]]]:
        return [(t, e) for t, e in self.events if e["type"] == kind]


async def _paced_session(url: str, seconds: float, seed: int, timed: Timed | None = None) -> Timed:
    """Stream ``seconds`` of noise in real time, then speech.end; collect timed events (into
    ``timed`` when given, so a test can watch them arrive)."""
    timed = Timed() if timed is None else timed
    async with websockets.connect(url, max_size=None) as ws:
        await ws.send(json.dumps({"type": "speech.config", "payload": config()}))
        ack = json.loads(await asyncio.wait_for(ws.recv(), 30))
        timed.events.append((0.0, ack))
        if ack["type"] != "speech.config.ack":
            return timed
        t0 = time.monotonic()

        async def receive() -> None:
            async for raw in ws:
                timed.events.append((time.monotonic() - t0, json.loads(raw)))

        receiver = asyncio.ensure_future(receive())
        for i, frame in enumerate(_noise_frames(seconds, seed)):
            # Paced against the clock, not by sleeping per frame, so lag never accumulates.
            await asyncio.sleep(max(0.0, t0 + i * FRAME_MS / 1000 - time.monotonic()))
            await ws.send(frame)
        await ws.send(json.dumps({"type": "speech.end", "payload": {}}))
        try:
            await asyncio.wait_for(receiver, 60)
        except websockets.ConnectionClosed:
            pass
        if ws.protocol.close_rcvd_then_sent:
            timed.close_code = ws.close_code
    return timed


def _ready(server: Server) -> bool:
    return server.get("/ready")[0] == 200


def _becomes(server: Server, ready: bool, timeout: float = 5) -> None:
    """Wait until /ready says ``ready``; fails after ``timeout`` seconds."""
    try:
        wait_until(lambda: _ready(server) is ready, timeout, 0.1)
    except TimeoutError:
        pytest.fail(f"/ready did not turn {'200' if ready else '503'} within {timeout} s")


async def test_sessions_beyond_measured_capacity_are_refused(slow_fake_server: Server) -> None:
    """Two paced sessions are admitted and stay real-time; the third and fourth get
    SESSION_LIMIT at once, and /ready is false while the node is full."""
    url = slow_fake_server.url
    seconds = 20.0
    first_events, second_events = Timed(), Timed()
    first = asyncio.ensure_future(_paced_session(url, seconds, seed=1, timed=first_events))
    # The first window (5 s of audio, 2 s of inference) is back: the node now knows its speed.
    await async_wait_until(lambda: bool(first_events.of("speech.checkpoint")), 20, 0.05)
    assert await asyncio.to_thread(_ready, slow_fake_server)
    second = asyncio.ensure_future(_paced_session(url, seconds, seed=2, timed=second_events))
    await async_wait_until(lambda: bool(second_events.of("speech.config.ack")), 10, 0.05)
    await asyncio.to_thread(_becomes, slow_fake_server, False)
    refused = await asyncio.gather(*(_paced_session(url, 3, seed=s) for s in (3, 4)))
    for timed in refused:
        (_, reply), *_ = timed.events
        assert reply["type"] == "speech.error"
        assert reply["payload"]["code"] == "SESSION_LIMIT"
        assert "real-time factor" in reply["payload"]["message"]

    for timed in await asyncio.gather(first, second):
        phrases = [(t, e["payload"]) for t, e in timed.of("speech.phrase") if e["payload"]["text"]]
        assert len(phrases) >= 3, timed.events
        assert not timed.of("speech.error")
        # Real time: each phrase arrives soon after its audio was sent; a window's audio ends at
        # most one window after the phrase's end, plus 2 s of inference, plus slack for a busy
        # machine. A growing queue would push the later phrases ever further behind.
        lags = [t - (p["offset"] + p["duration"]) / 1000 for t, p in phrases]
        assert max(lags) < 5 + 2 + 3, lags
        assert timed.close_code == CLOSE_NORMAL, timed.close_code
    # /ready's cached lookup and the disconnects settle within a few seconds.
    await asyncio.to_thread(_becomes, slow_fake_server, True)
