"""Tests for transcription/consumer.py, in process: Channels' ``WebsocketCommunicator`` drives
the consumer, and the in-process worker runs the FAKE backend (named as such: protocol tests
only, no model). Whatever a client sends, every connection ends with a documented event or
close code and leaves nothing behind."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
import pytest
from channels.testing import WebsocketCommunicator
from django.conf import settings

from transcription import admission, checkpoints, live
from transcription.consumer import TranscriptionConsumer
from transcription.deepgram.consumer import DeepgramConsumer
from transcription.denial import Denial
from transcription.inference import loader
from transcription.inference.fake import FakeBackend
from transcription.realtime.consumer import RealtimeConsumer
from transcription.registry import NODE

RATE = 16_000
# Channels closes stale database connections around every dispatch.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def fake_node(monkeypatch: pytest.MonkeyPatch) -> None:
    """A node with the FAKE backend serving its default model only (WSS_MODELS names it, so
    no other installed model is served), in-memory stores and a clean registry."""
    cfg = dataclasses.replace(
        settings.OPENASR,
        redis_url="",
        backend="fake",
        vad="energy",
        max_connections=4,
        models=(settings.OPENASR.model_name,),
    )
    monkeypatch.setattr(settings, "OPENASR", cfg)
    loader.set_backend_for_tests(FakeBackend())
    monkeypatch.setattr(admission, "POOLS", {})
    monkeypatch.setattr(NODE, "connections", 0)
    monkeypatch.setattr(NODE, "sessions", {})
    monkeypatch.setattr(NODE, "inference_pending", 0)
    monkeypatch.setattr(checkpoints, "_store", None)
    monkeypatch.setattr(checkpoints, "_live", None)


def configure(monkeypatch: pytest.MonkeyPatch, **changes: Any) -> None:
    monkeypatch.setattr(settings, "OPENASR", dataclasses.replace(settings.OPENASR, **changes))


@asynccontextmanager
async def connected(**scope: Any) -> AsyncIterator[WebsocketCommunicator]:
    """A connected client; always disconnected at the end."""
    communicator = WebsocketCommunicator(TranscriptionConsumer.as_asgi(), "/transcribe")
    communicator.scope.update(scope)
    ok, _ = await communicator.connect()
    assert ok
    try:
        yield communicator
    finally:
        await communicator.disconnect()


async def send(c: WebsocketCommunicator, kind: str, **payload: Any) -> None:
    await c.send_to(text_data=json.dumps({"type": kind, "payload": payload}))


async def recv(c: WebsocketCommunicator, timeout: float = 5) -> dict[str, Any]:
    output = await c.receive_output(timeout)
    assert output["type"] == "websocket.send", output
    event: dict[str, Any] = json.loads(output["text"])
    return event


async def closed_with(c: WebsocketCommunicator, timeout: float = 5) -> int:
    """Skip events until the close; return its code."""
    while True:
        output = await c.receive_output(timeout)
        if output["type"] == "websocket.close":
            return int(output.get("code", 1000))


def tone_pcm(seconds: float) -> bytes:
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.3 * np.sin(2 * np.pi * 220 * t) * 32767).astype("<i2").tobytes()


async def wait_until_clean() -> None:
    """The node holds nothing: no connection, session or job (polled, no fixed sleep)."""
    for _ in range(200):
        if NODE.connections == 0 and not NODE.sessions and NODE.inference_pending == 0:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"leaked: {NODE}")


# --- the state machine ---


async def test_a_session_streams_and_ends_with_end_of_stream_and_close_1000() -> None:
    """config → ack; audio → phrase and checkpoint; end → EndOfStream, checkpoint, 1000."""
    async with connected() as c:
        await send(c, "speech.config", window_duration_ms=2000, overlap_duration_ms=0)
        ack = await recv(c)
        assert ack["type"] == "speech.config.ack"
        pcm = tone_pcm(4)
        for i in range(0, len(pcm), 6400):
            await c.send_to(bytes_data=pcm[i : i + 6400])
        await send(c, "speech.end")
        kinds = []
        while True:
            out = await c.receive_output(5)
            if out["type"] == "websocket.close":
                assert out.get("code", 1000) == 1000
                break
            kinds.append(json.loads(out["text"])["type"])
        assert "speech.phrase" in kinds and kinds[-1] == "speech.checkpoint"
    await wait_until_clean()


async def test_audio_before_config_is_invalid_state_and_the_session_goes_on() -> None:
    """A binary frame first: INVALID_STATE; the connection stays usable."""
    async with connected() as c:
        await c.send_to(bytes_data=b"\0\0")
        assert (await recv(c))["payload"]["code"] == "INVALID_STATE"
        await send(c, "speech.config")
        assert (await recv(c))["type"] == "speech.config.ack"
    await wait_until_clean()


async def test_a_background_task_that_survives_its_cancel_never_leaks_the_session(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The live-marker refresh shrugs off the first cancel, as a Redis call can on Python 3.11
    (``layer.cancel_and_wait``): the disconnect still releases the session and the connection."""
    survived: list[str] = []

    async def stubborn_refresh(channel_name: str, session_id: str) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            survived.append(session_id)
        await asyncio.Event().wait()

    monkeypatch.setattr(live, "refresh_forever", stubborn_refresh)
    async with connected() as c:
        await send(c, "speech.config")
        assert (await recv(c))["type"] == "speech.config.ack"
    await wait_until_clean()
    assert len(survived) == 1


@pytest.mark.parametrize(
    "frame",
    [
        '{"type":"\\ud800","payload":{}}',
        '{"type":"speech.config","payload":{"window_duration_ms":' + "1" * 5000 + "}}",
        '{"type":"speech.config","payload":{"resume_checkpoint":{"session_id":"\\ud800"}}}',
        '{"type":"speech.config","payload":{"language":"\\ud800"}}',
        "[" * 50_000,
        '{"type":"speech.config","payload":{"sample_rate":NaN}}',
    ],
)
async def test_hostile_frames_are_invalid_message_and_leak_nothing(frame: str) -> None:
    """The frames that leaked a connection slot each: INVALID_MESSAGE, then a clean node."""
    async with connected() as c:
        await c.send_to(text_data=frame)
        assert (await recv(c))["payload"]["code"] == "INVALID_MESSAGE"
    await wait_until_clean()


async def test_an_unexpected_exception_is_internal_error_and_close_1011(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A bug in a handler: INTERNAL_ERROR, close 1011, and nothing left behind."""

    def broken(self: Any, data: bytes, now: float = 0.0) -> Any:
        raise RuntimeError("bug")

    monkeypatch.setattr("transcription.session.Session.feed_audio", broken)
    async with connected() as c:
        await send(c, "speech.config")
        await recv(c)
        await c.send_to(bytes_data=b"\0\0")
        error = await recv(c)
        assert error["payload"]["code"] == "INTERNAL_ERROR"
        assert await closed_with(c) == 1011
    await wait_until_clean()


async def test_a_full_node_refuses_the_upgrade() -> None:
    """At WSS_MAX_CONNECTIONS the next client is refused before accept (HTTP 503 in daphne,
    a close here: the communicator has no denial extension)."""
    clients = [
        WebsocketCommunicator(TranscriptionConsumer.as_asgi(), "/transcribe") for _ in range(5)
    ]
    results = [await c.connect() for c in clients]
    assert [ok for ok, _ in results] == [True] * 4 + [False]
    for c in clients:
        await c.disconnect()
    await wait_until_clean()


async def test_no_config_in_time_closes_with_4008(monkeypatch: pytest.MonkeyPatch) -> None:
    """WSS_CONFIG_TIMEOUT_S without speech.config: INVALID_STATE and close 4008."""
    configure(monkeypatch, config_timeout_s=1)
    async with connected() as c:
        error = await recv(c, timeout=5)
        assert error["payload"]["code"] == "INVALID_STATE"
        assert await closed_with(c) == 4008
    await wait_until_clean()


async def test_errors_are_coalesced_and_sustained_abuse_closes_1008() -> None:
    """At most 5 errors a second are sent; refusals for 5 s in a row close with 1008."""
    async with connected() as c:
        sent = 0
        for _ in range(20):
            await c.send_to(text_data="not json")
        while True:
            out = await c.receive_output(1)
            if out["type"] != "websocket.send":
                break
            sent += 1
            if sent >= 5:
                break
        assert sent == 5
        assert await c.receive_nothing(0.2)


async def test_config_and_end_without_audio_stores_no_checkpoint() -> None:
    """A session that produced nothing leaves nothing in the checkpoint store."""
    async with connected() as c:
        await send(c, "speech.config")
        session_id = (await recv(c))["session_id"]
        await send(c, "speech.end")
        assert await closed_with(c) == 1000
    assert await checkpoints.get_store().aload(session_id) is None
    await wait_until_clean()


async def test_a_revoked_key_ends_the_session_with_4001(monkeypatch: pytest.MonkeyPatch) -> None:
    """The key check fails while streaming: UNAUTHORIZED and close 4001."""
    active = True

    async def key_active(identity: Any) -> bool:
        return active

    monkeypatch.setattr("transcription.connection.akey_active", key_active)
    configure(monkeypatch, api_key_cache_s=0.0)
    key = {"id": "1", "name": "k", "max_sessions": None, "prefix": "p"}  # a database key
    async with connected(**{"openasr.key": key}) as c:
        await send(c, "speech.config")
        await recv(c)
        active = False
        error = await recv(c, timeout=5)
        assert error["payload"]["code"] == "UNAUTHORIZED"
        assert await closed_with(c) == 4001
    await wait_until_clean()


async def test_a_corrupt_opus_packet_is_audio_error_and_the_session_goes_on() -> None:
    """AUDIO_ERROR for the packet; speech.end still finishes normally with 1000."""
    async with connected() as c:
        await send(c, "speech.config", encoding="opus", sample_rate=48000)
        await recv(c)
        await c.send_to(bytes_data=b"\xff\xfe\xfd" * 50)
        assert (await recv(c))["payload"]["code"] == "AUDIO_ERROR"
        await send(c, "speech.end")
        assert (await recv(c))["payload"]["status"] == "EndOfStream"
        assert await closed_with(c) == 1000
    await wait_until_clean()


def test_each_api_refuses_an_upgrade_in_its_own_error_shape() -> None:
    """A full node's 503 (or the per-key 429) reaches each API's client in that API's shape,
    Retry-After kept."""
    busy = Denial.retry_later(503, "busy", "server full", 5)
    assert json.loads(TranscriptionConsumer().shape_denial(busy).body())["error"] == "busy"
    openai = RealtimeConsumer().shape_denial(busy)
    assert json.loads(openai.body())["error"]["message"] == "server full"
    deepgram = DeepgramConsumer().shape_denial(busy)
    assert json.loads(deepgram.body())["err_msg"] == "server full"
    for shaped in (openai, deepgram):
        assert (b"retry-after", b"5") in shaped.headers


def test_only_resumable_apis_store_checkpoints() -> None:
    """Realtime and Deepgram sessions cannot be resumed: their checkpoints are not stored."""
    assert TranscriptionConsumer.resumable
    assert not RealtimeConsumer.resumable and not DeepgramConsumer.resumable
