"""Tests for transcription/realtime/consumer.py in process (``WebsocketCommunicator``, FAKE
backend: protocol only, no model): the Realtime event flow and its errors."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator
from django_prometheus.testutils import assert_metric_diff, save_registry

from tests.transcription.test_consumer import fake_node, tone_pcm  # noqa: F401 (fixture)
from transcription.realtime.consumer import RealtimeConsumer

pytestmark = pytest.mark.django_db(transaction=True)


@asynccontextmanager
async def connected() -> AsyncIterator[WebsocketCommunicator]:
    c = WebsocketCommunicator(RealtimeConsumer.as_asgi(), "/v1/realtime?intent=transcription")
    ok, _ = await c.connect()
    assert ok
    try:
        yield c
    finally:
        await c.disconnect()


async def send(c: WebsocketCommunicator, event: dict[str, Any]) -> None:
    await c.send_to(text_data=json.dumps(event))


async def recv(c: WebsocketCommunicator, timeout: float = 5) -> dict[str, Any]:
    event: dict[str, Any] = json.loads(await c.receive_from(timeout))
    return event


async def until(c: WebsocketCommunicator, kind: str) -> list[dict[str, Any]]:
    """Every event up to and including the first of ``kind``."""
    events = [await recv(c)]
    while events[-1]["type"] != kind:
        events.append(await recv(c))
    return events


def append(pcm16_24k: bytes) -> dict[str, Any]:
    return {"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm16_24k).decode()}


async def test_session_created_then_update_then_manual_commit_completes_an_item() -> None:
    """turn_detection null: append, commit -> committed, deltas, completed; the session is
    counted under api="openai_realtime"."""
    before = save_registry()
    async with connected() as c:
        assert (await recv(c))["type"] == "session.created"
        await send(
            c,
            {
                "type": "session.update",
                "session": {"type": "transcription", "audio": {"input": {"turn_detection": None}}},
            },
        )
        updated = await recv(c)
        assert updated["type"] == "session.updated"
        assert updated["session"]["audio"]["input"]["turn_detection"] is None
        pcm = tone_pcm(1.5)  # 16 kHz samples sent as 24 kHz: 1 s of audio
        await send(c, append(pcm))
        await send(c, {"type": "input_audio_buffer.commit"})
        events = await until(c, "conversation.item.input_audio_transcription.completed")
        committed = next(e for e in events if e["type"] == "input_audio_buffer.committed")
        deltas = [e for e in events if e["type"].endswith(".delta")]
        completed = events[-1]
        assert completed["item_id"] == committed["item_id"]
        assert "".join(d["delta"] for d in deltas) == completed["transcript"]
    assert_metric_diff(before, 1, "openasr_api_sessions_total", api="openai_realtime")


async def test_commit_of_an_empty_buffer_is_an_error_and_the_session_goes_on() -> None:
    """input_audio_buffer_commit_empty, then clear answers cleared."""
    async with connected() as c:
        await recv(c)
        await send(c, {"type": "input_audio_buffer.commit"})
        error = await recv(c)
        assert error["type"] == "error"
        assert error["error"]["code"] == "input_audio_buffer_commit_empty"
        await send(c, {"type": "input_audio_buffer.clear"})
        assert (await recv(c))["type"] == "input_audio_buffer.cleared"


async def test_the_format_cannot_change_once_audio_flows() -> None:
    """session.update to G.711 after PCM16 was appended: an error naming the field."""
    async with connected() as c:
        await recv(c)
        await send(c, append(tone_pcm(0.2)))
        await send(
            c,
            {
                "type": "session.update",
                "session": {"audio": {"input": {"format": {"type": "audio/pcmu"}}}},
            },
        )
        error = await until(c, "error")
        assert "format" in error[-1]["error"]["message"]


async def test_binary_frames_and_unknown_events_are_errors() -> None:
    """Audio comes base64 in text events; response.create is not a transcription event."""
    async with connected() as c:
        await recv(c)
        await c.send_to(bytes_data=b"\x00\x01")
        assert (await recv(c))["error"]["code"] == "invalid_event"
        await send(c, {"type": "response.create"})
        error = await recv(c)
        assert (error["error"]["code"], error["error"]["param"]) == ("invalid_event", "type")


async def test_a_refused_first_update_keeps_the_session_unstarted() -> None:
    """A language the English-only model cannot take: an error, and the next update with a
    valid configuration starts the session."""
    async with connected() as c:
        await recv(c)
        german = {"transcription": {"language": "de"}, "turn_detection": None}
        await send(c, {"type": "session.update", "session": {"audio": {"input": german}}})
        error = await recv(c)
        assert error["type"] == "error" and "English-only" in error["error"]["message"]
        english = {"transcription": {"language": "en"}}
        await send(c, {"type": "session.update", "session": {"audio": {"input": english}}})
        updated = await recv(c)
        assert updated["type"] == "session.updated"
        assert updated["session"]["audio"]["input"]["transcription"]["language"] == "en"
        assert updated["session"]["audio"]["input"]["turn_detection"]["type"] == "server_vad"
