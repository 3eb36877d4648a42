"""The official ``openai`` SDK's Realtime client in transcription mode against a real daphne
and the real model (``client.realtime.connect`` with ``base_url``, websockets 17.4)."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import openai
import pytest
import websockets
from openai import AsyncOpenAI

from tests.e2e.compat.conftest import KEY, WER_BY_PATH, g711, pcm16
from tests.support.server import Server
from tests.support.speech import Composition, resample
from tests.support.wer import wer

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

SPEED = 2.0  # times real time


def client(server: Server, key: str = KEY) -> AsyncOpenAI:
    return AsyncOpenAI(api_key=key, base_url=f"{server.http}/v1", max_retries=0)


async def append_paced(conn: Any, audio: bytes, bytes_per_s: int, chunk_ms: int = 100) -> None:
    """input_audio_buffer.append in chunk_ms pieces at SPEED times real time."""
    step = bytes_per_s * chunk_ms // 1000
    for i in range(0, len(audio), step):
        await conn.input_audio_buffer.append(audio=base64.b64encode(audio[i : i + step]).decode())
        await asyncio.sleep(chunk_ms / 1000 / SPEED)


async def test_server_vad_commits_each_sentence_and_deltas_make_the_transcript(
    compat_server: Server, clip: Composition
) -> None:
    """PCM16 at 24 kHz, server_vad: one committed item per sentence, the deltas of each item
    concatenate to its completed transcript, the words are right, logprobs come along."""
    audio = pcm16(resample(clip.audio, 16000, 24000))
    events: list[Any] = []
    async with client(compat_server).realtime.connect(
        extra_query={"intent": "transcription"}
    ) as conn:
        await conn.session.update(
            session={
                "type": "transcription",
                "audio": {
                    "input": {
                        "format": {"type": "audio/pcm", "rate": 24000},
                        "transcription": {"model": "whisper-1", "language": "en"},
                        "turn_detection": {"type": "server_vad", "silence_duration_ms": 500},
                    }
                },
                "include": ["item.input_audio_transcription.logprobs"],
            }
        )
        sender = asyncio.create_task(append_paced(conn, audio, 48000))

        async def collect() -> None:
            completed = 0
            async for event in conn:
                events.append(event)
                if event.type == "conversation.item.input_audio_transcription.completed":
                    completed += 1
                    if completed == len(clip.spans_ms):
                        return

        await asyncio.wait_for(collect(), 90)
        await sender
    kinds = [e.type for e in events]
    assert kinds[:2] == ["session.created", "session.updated"]
    assert "error" not in kinds
    assert kinds.count("input_audio_buffer.speech_started") == len(clip.spans_ms)
    assert kinds.count("input_audio_buffer.committed") == len(clip.spans_ms)
    deltas: dict[str, str] = {}
    for e in events:
        if e.type == "conversation.item.input_audio_transcription.delta":
            assert e.content_index == 0 and e.logprobs
            deltas[e.item_id] = deltas.get(e.item_id, "") + e.delta
    completed = [
        e for e in events if e.type == "conversation.item.input_audio_transcription.completed"
    ]
    for item in completed:
        assert deltas.get(item.item_id, "") == item.transcript
        assert item.usage.type == "duration" and item.usage.seconds > 0
    text = " ".join(item.transcript for item in completed)
    WER_BY_PATH["openai_realtime pcm16 24k"] = score = wer(clip.text, text)
    assert score < 0.1, text


async def test_manual_commit_with_mulaw_and_the_empty_commit_error(
    compat_server: Server, clip: Composition
) -> None:
    """transcription_session.update (the older shape), G.711 mu-law, turn detection off: a
    commit before any audio is input_audio_buffer_commit_empty; one commit after the audio
    transcribes all of it."""
    audio = g711(clip.audio)
    async with client(compat_server).realtime.connect(
        extra_query={"intent": "transcription"}
    ) as conn:
        await conn.send(
            {
                "type": "transcription_session.update",
                "session": {"input_audio_format": "g711_ulaw", "turn_detection": None},
            }
        )
        await conn.input_audio_buffer.commit()
        await append_paced(conn, audio, 8000)
        await conn.input_audio_buffer.commit()
        events: list[Any] = []

        async def collect() -> None:
            async for event in conn:
                events.append(event)
                if event.type == "conversation.item.input_audio_transcription.completed":
                    return

        await asyncio.wait_for(collect(), 90)
    kinds = [e.type for e in events]
    assert kinds[:2] == ["session.created", "transcription_session.updated"]
    errors = [e for e in events if e.type == "error"]
    assert [e.error.code for e in errors] == ["input_audio_buffer_commit_empty"]
    assert "input_audio_buffer.speech_started" not in kinds
    text = events[-1].transcript
    WER_BY_PATH["openai_realtime g711_ulaw 8k"] = score = wer(clip.text, text)
    assert score < 0.15, text


async def test_a_wrong_key_is_refused_with_401_in_openai_error_shape(compat_server: Server) -> None:
    """The SDK's connect fails; the handshake answer is 401 with an OpenAI error object."""
    with pytest.raises((openai.OpenAIError, websockets.InvalidStatus)):
        async with client(compat_server, "wrong-key").realtime.connect(
            extra_query={"intent": "transcription"}
        ):
            pass
    url = f"ws://127.0.0.1:{compat_server.port}/v1/realtime?intent=transcription"
    with pytest.raises(websockets.InvalidStatus) as info:
        async with websockets.connect(url, additional_headers={"Authorization": "Bearer nope"}):
            pass
    response = info.value.response
    assert response.status_code == 401
    assert json.loads(response.body)["error"]["code"] == "invalid_api_key"
