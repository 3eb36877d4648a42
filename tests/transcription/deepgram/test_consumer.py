"""Tests for transcription/deepgram/consumer.py in process (``WebsocketCommunicator``, FAKE
backend: protocol only, no model): options, control messages and the close."""

from __future__ import annotations

import json
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator
from django_prometheus.testutils import assert_metric_diff, save_registry

from tests.transcription.test_consumer import fake_node, tone_pcm  # noqa: F401 (fixture)
from transcription.deepgram.consumer import DeepgramConsumer

pytestmark = pytest.mark.django_db(transaction=True)


def communicator(query: str) -> WebsocketCommunicator:
    c = WebsocketCommunicator(DeepgramConsumer.as_asgi(), f"/v1/listen?{query}")
    c.scope["extensions"] = {"websocket.http.response": {}}
    return c


async def messages_until_close(c: WebsocketCommunicator) -> tuple[list[dict[str, Any]], int]:
    out: list[dict[str, Any]] = []
    while True:
        message = await c.receive_output(10)
        if message["type"] == "websocket.close":
            return out, int(message.get("code", 1000))
        out.append(json.loads(message["text"]))


async def test_finalize_then_close_stream_gives_results_then_metadata_and_1000() -> None:
    """KeepAlive does nothing; Finalize answers a from_finalize final; CloseStream ends with
    Metadata and a normal close; the session is counted under api="deepgram"."""
    before = save_registry()
    c = communicator("model=nova-3&encoding=linear16&sample_rate=16000&endpointing=false")
    ok, _ = await c.connect()
    assert ok
    await c.send_to(text_data=json.dumps({"type": "KeepAlive"}))
    await c.send_to(bytes_data=tone_pcm(1.0))
    await c.send_to(text_data=json.dumps({"type": "Finalize"}))
    await c.send_to(bytes_data=tone_pcm(1.0))
    await c.send_to(text_data=json.dumps({"type": "CloseStream"}))
    messages, code = await messages_until_close(c)
    assert code == 1000
    results = [m for m in messages if m["type"] == "Results"]
    assert [m["from_finalize"] for m in results][0] is True
    assert all(m["is_final"] for m in results)
    assert messages[-1]["type"] == "Metadata"
    assert messages[-1]["duration"] == pytest.approx(2.0, abs=0.05)
    assert_metric_diff(before, 1, "openasr_api_sessions_total", api="deepgram")


async def test_an_empty_binary_message_closes_the_stream() -> None:
    """The older CloseStream: an empty binary frame."""
    c = communicator("encoding=linear16&sample_rate=16000")
    await c.connect()
    await c.send_to(bytes_data=tone_pcm(0.5))
    await c.send_input({"type": "websocket.receive", "bytes": b""})
    messages, code = await messages_until_close(c)
    assert code == 1000 and messages[-1]["type"] == "Metadata"


async def test_a_bad_option_is_refused_with_400_in_deepgram_shape() -> None:
    """channels=2: HTTP 400 before anything is held."""
    c = communicator("channels=2")
    await c.send_input({"type": "websocket.connect"})
    start = await c.receive_output(2)
    body = await c.receive_output(2)
    assert start["status"] == 400
    assert json.loads(body["body"])["err_code"] == "BAD_REQUEST"
    await c.wait(2)


async def test_an_unknown_text_message_is_an_error_and_the_stream_goes_on() -> None:
    """Configure is not supported: an Error message, then the stream still closes normally."""
    c = communicator("encoding=linear16")
    await c.connect()
    await c.send_to(text_data=json.dumps({"type": "Configure"}))
    error = json.loads(await c.receive_from(5))
    assert (error["type"], error["variant"]) == ("Error", "SchemaError")
    await c.send_to(text_data=json.dumps({"type": "CloseStream"}))
    messages, code = await messages_until_close(c)
    assert code == 1000 and messages[-1]["type"] == "Metadata"
