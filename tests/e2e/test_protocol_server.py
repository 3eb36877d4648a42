"""PROTOCOL.md against a real daphne process with the FAKE backend (protocol tests only):
the state machine, every error code, limits and close codes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
import pytest
import websockets

from tests.e2e.conftest import migrated_db
from tests.support.client import config, pcm_chunks, stream
from tests.support.server import Server, start_server

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def limited_server() -> Iterator[Server]:
    """A FAKE-backend server with small limits, and a fake model slower than real time."""
    server = start_server(
        {
            "WSS_BACKEND": "fake",
            "WSS_VAD": "off",
            "WSS_FAKE_BACKEND_RTF": "2.0",
            "WSS_MAX_SESSIONS": "2",
            "WSS_AUDIO_BUFFER_MS": "4000",
            "WSS_MAX_FRAME_BYTES": "65536",
            "WSS_IDLE_TIMEOUT_S": "2",
            "DATABASE_URL": migrated_db(),
        }
    )
    yield server
    server.stop()


def tone(seconds: float, rate: int = 16000) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    audio = 0.3 * np.sin(2 * np.pi * 220 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
    return (audio * 32767).astype("<i2").tobytes()


@asynccontextmanager
async def connected(server: Server) -> AsyncIterator[Any]:
    async with websockets.connect(server.url, max_size=None) as ws:
        yield ws


async def recv(ws: Any, timeout: float = 10) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def send_json(ws: Any, obj: Any) -> None:
    await ws.send(json.dumps(obj))


async def configure(ws: Any, **overrides: Any) -> dict[str, Any]:
    await send_json(ws, {"type": "speech.config", "payload": config(**overrides)})
    ack = await recv(ws)
    assert ack["type"] == "speech.config.ack", ack
    return ack


async def expect_error(ws: Any, code: str) -> dict[str, Any]:
    event = await recv(ws)
    assert event["type"] == "speech.error", event
    assert event["payload"]["code"] == code, event
    return event["payload"]


async def test_ack_carries_session_id_and_effective_config(fake_server: Server) -> None:
    """speech.config → ack with a 128-bit hex session id and the effective config."""
    async with connected(fake_server) as ws:
        ack = await configure(ws, model_id="whisper-large-v3")
        sid = ack["payload"]["session_id"]
        assert ack["session_id"] == sid and len(sid) == 32 and int(sid, 16) >= 0
        eff = ack["payload"]["effective_config"]
        assert eff["window_duration_ms"] == 5000 and eff["sample_rate"] == 16000
        assert eff["model_id"] != "whisper-large-v3"  # one model per server: the serving one


async def test_audio_before_config_is_invalid_state(fake_server: Server) -> None:
    """A binary frame before speech.config is INVALID_STATE; the connection stays open."""
    async with connected(fake_server) as ws:
        await ws.send(b"\x00\x01" * 100)
        await expect_error(ws, "INVALID_STATE")
        await configure(ws)


async def test_end_before_config_is_invalid_state(fake_server: Server) -> None:
    """speech.end before speech.config is INVALID_STATE."""
    async with connected(fake_server) as ws:
        await send_json(ws, {"type": "speech.end", "payload": {}})
        await expect_error(ws, "INVALID_STATE")


async def test_second_config_is_invalid_state(fake_server: Server) -> None:
    """A second speech.config is INVALID_STATE."""
    async with connected(fake_server) as ws:
        await configure(ws)
        await send_json(ws, {"type": "speech.config", "payload": config()})
        await expect_error(ws, "INVALID_STATE")


@pytest.mark.parametrize(
    ("frame", "needle"),
    [
        ("{not json", "JSON"),
        ('{"payload": {}}', "type"),
        ('{"type": "speech.nope", "payload": {}}', "speech.nope"),
        ('{"type": "speech.config", "payload": {"sample_rate": true}}', "sample_rate"),
        ('{"type": "speech.config", "payload": {"window_duration_ms": 500}}', "window_duration_ms"),
        ('{"type": "speech.config", "payload": {"language": "de"}}', "language"),
    ],
)
async def test_invalid_messages_name_the_problem(
    fake_server: Server, frame: str, needle: str
) -> None:
    """Malformed or out-of-range messages are INVALID_MESSAGE naming the field; socket stays."""
    async with connected(fake_server) as ws:
        await ws.send(frame)
        err = await expect_error(ws, "INVALID_MESSAGE")
        assert needle in err["message"]
        await configure(ws)


async def test_resume_of_unknown_session_is_session_not_found(fake_server: Server) -> None:
    """resume_checkpoint with an unknown session id is SESSION_NOT_FOUND."""
    async with connected(fake_server) as ws:
        await send_json(
            ws,
            {
                "type": "speech.config",
                "payload": config(resume_checkpoint={"session_id": "0" * 32}),
            },
        )
        await expect_error(ws, "SESSION_NOT_FOUND")


async def test_corrupt_opus_packet_is_audio_error_and_session_continues(
    fake_server: Server,
) -> None:
    """A corrupt Opus packet is AUDIO_ERROR for that packet; the session then ends normally."""
    async with connected(fake_server) as ws:
        await configure(ws, encoding="opus", sample_rate=48000)
        await ws.send(b"\xff\xfe\xfd" * 50)
        await expect_error(ws, "AUDIO_ERROR")
        await send_json(ws, {"type": "speech.end", "payload": {}})
        events = [await recv(ws) for _ in range(2)]
        assert events[0]["payload"]["status"] == "EndOfStream"
        assert events[1]["type"] == "speech.checkpoint"
        with pytest.raises(websockets.ConnectionClosedOK):
            await ws.recv()
        assert ws.close_code == 1000


async def test_event_order_per_window_and_end_of_stream(fake_server: Server) -> None:
    """Per window: hypothesis…, phrase, checkpoint; then EndOfStream phrase, final checkpoint,
    close 1000 — and the final transcript equals the last checkpoint's."""
    result = await stream(fake_server.url, pcm_chunks(tone(12), 16000), config())
    kinds = [e["type"] for e in result.events]
    assert kinds[0] == "speech.config.ack"
    assert "speech.hypothesis" in kinds
    for i, kind in enumerate(kinds):
        if kind == "speech.hypothesis":
            assert kinds[i + 1] in {"speech.hypothesis", "speech.phrase"}
        if kind == "speech.phrase":
            assert kinds[i + 1] == "speech.checkpoint"
    assert result.final is not None and result.final["status"] == "EndOfStream"
    assert result.final["text"] == result.last_checkpoint["full_transcript"]
    assert result.close_code == 1000
    offsets = [p["offset"] for p in result.phrases]
    assert offsets == sorted(offsets)


async def test_session_limit(limited_server: Server) -> None:
    """More live sessions than WSS_MAX_SESSIONS: SESSION_LIMIT, and a slot frees on close."""
    async with connected(limited_server) as a, connected(limited_server) as b:
        await configure(a)
        await configure(b)
        async with connected(limited_server) as c:
            await send_json(c, {"type": "speech.config", "payload": config()})
            await expect_error(c, "SESSION_LIMIT")
    await asyncio.sleep(0.5)
    async with connected(limited_server) as d:
        await configure(d)


async def test_backpressure_then_refusal_beyond_the_bound(limited_server: Server) -> None:
    """Audio faster than the (slow) model: slow_down at 80 %, then RATE_LIMITED naming the
    refused milliseconds — never a silent drop."""
    async with connected(limited_server) as ws:
        await configure(ws)
        for chunk in pcm_chunks(tone(8), 16000):
            await ws.send(chunk)
        seen: list[dict[str, Any]] = []
        while not any(e["type"] == "speech.error" for e in seen):
            seen.append(await recv(ws))
        kinds = [e["type"] for e in seen]
        assert "speech.backpressure" in kinds
        bp = next(e for e in seen if e["type"] == "speech.backpressure")
        assert bp["payload"]["action"] == "slow_down"
        err = next(e for e in seen if e["type"] == "speech.error")
        assert err["payload"]["code"] == "RATE_LIMITED" and " ms" in err["payload"]["message"]


async def test_frame_over_the_limit_closes_1009(limited_server: Server) -> None:
    """A frame larger than WSS_MAX_FRAME_BYTES closes the connection with 1009."""
    async with connected(limited_server) as ws:
        await configure(ws)
        await ws.send(b"\x00" * 70000)
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 10)
        assert ws.close_code == 1009


async def test_idle_connection_is_closed_with_an_error(limited_server: Server) -> None:
    """A connection silent for WSS_IDLE_TIMEOUT_S gets INVALID_STATE naming the timeout, then
    close 4008."""
    async with connected(limited_server) as ws:
        await configure(ws)
        err = await expect_error(ws, "INVALID_STATE")
        assert "Idle timeout" in err["message"]
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 10)
        assert ws.close_code == 4008


async def test_other_paths_are_404(fake_server: Server) -> None:
    """A WebSocket upgrade on any path but /transcribe is HTTP 404."""
    url = fake_server.url.replace("/transcribe", "/nope")
    with pytest.raises(websockets.InvalidStatus) as info:
        async with websockets.connect(url):
            pass
    assert info.value.response.status_code == 404


async def test_disconnect_mid_window_leaves_nothing_behind(limited_server: Server) -> None:
    """A client that vanishes mid-window leaves no session, buffer or pending job."""
    async with connected(limited_server) as ws:
        await configure(ws)
        for chunk in pcm_chunks(tone(6), 16000):
            await ws.send(chunk)
    for _ in range(50):
        status, health = limited_server.get("/health")
        if health["active_sessions"] == 0 and health["inference_pending"] == 0:
            break
        await asyncio.sleep(0.2)
    assert health["active_sessions"] == 0 and health["inference_pending"] == 0
