"""Streaming real speech through a real server and the real model (PROTOCOL.md "Windows and
events"): the words come back, in both deployments, at every rate and encoding."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import opuslib
import pytest

from tests.support import speech
from tests.support.client import StreamResult, config, pcm_chunks, stream
from tests.support.server import Process, Server
from tests.support.wer import repeated_bigrams, wer

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

SENTENCES = speech.SENTENCES[:4]


@pytest.fixture(scope="module")
def long_speech() -> speech.Composition:
    """About 20-30 s of speech: four sentences, three voices, varied pauses."""
    return speech.compose(SENTENCES, speech.VOICES)


def at_rate(audio: np.ndarray, rate: int) -> bytes:
    return speech.to_pcm16(speech.resample(audio, speech.SAMPLE_RATE_HZ, rate))


def opus_packets(audio: np.ndarray, rate: int = 48000, frame_ms: int = 20) -> list[bytes]:
    pcm = speech.resample(audio, speech.SAMPLE_RATE_HZ, rate)
    ints = (np.clip(pcm, -1, 1) * 32767).astype("<i2")
    encoder = opuslib.Encoder(rate, 1, opuslib.APPLICATION_VOIP)
    n = rate * frame_ms // 1000
    ints = np.pad(ints, (0, -len(ints) % n))
    return [encoder.encode(ints[i : i + n].tobytes(), n) for i in range(0, len(ints), n)]


def assert_transcript_ok(result: StreamResult, reference: str) -> None:
    assert result.errors == [], result.errors
    assert result.close_code == 1000
    final = result.final
    assert final is not None, "no EndOfStream phrase"
    assert final["text"] == result.last_checkpoint["full_transcript"]  # type: ignore[index]
    assert wer(reference, result.phrase_text) <= 0.15, result.phrase_text
    assert wer(reference, final["text"]) <= 0.15, final["text"]
    assert repeated_bigrams(result.phrase_text, reference) == 0, result.phrase_text


def assert_event_order(result: StreamResult) -> None:
    """Per window: hypotheses, then the phrase, then the checkpoint; EndOfStream last."""
    kinds = [e["type"] for e in result.events]
    assert kinds[0] == "speech.config.ack"
    assert kinds[-2:] == ["speech.phrase", "speech.checkpoint"]
    for i, kind in enumerate(kinds):
        if kind == "speech.phrase":
            assert kinds[i + 1] == "speech.checkpoint"


@pytest.mark.parametrize("rate", [16000, 8000, 48000])
async def test_pcm_at_any_rate_is_transcribed(
    inprocess_server: Server, long_speech: speech.Composition, rate: int
) -> None:
    """PCM at 8, 16 and 48 kHz, sent as fast as backpressure allows, gives the spoken words."""
    frames = pcm_chunks(at_rate(long_speech.audio, rate), rate)
    result = await stream(inprocess_server.url, frames, config(sample_rate=rate))
    assert_transcript_ok(result, long_speech.text)
    assert_event_order(result)


async def test_opus_at_48k_is_transcribed(
    inprocess_server: Server, long_speech: speech.Composition
) -> None:
    """Opus packets at 48 kHz (one per frame) give the spoken words."""
    packets = opus_packets(long_speech.audio)
    result = await stream(
        inprocess_server.url,
        packets,
        config(sample_rate=48000, encoding="opus"),
        frame_ms=20,
        speed=5.0,  # 250 packets/s: under the per-session message limit
    )
    assert_transcript_ok(result, long_speech.text)


async def test_realtime_paced_stream_is_transcribed(
    inprocess_server: Server, long_speech: speech.Composition
) -> None:
    """Audio paced in real time gets phrases while it streams, and the same words."""
    frames = pcm_chunks(speech.to_pcm16(long_speech.audio), 16000)
    result = await stream(inprocess_server.url, frames, config(), realtime=True)
    assert_transcript_ok(result, long_speech.text)
    assert len(result.phrases) >= 3  # phrases arrived per window, not only at the end


async def test_redis_deployment_transcribes_the_same(
    redis_deployment: tuple[Server, Process], long_speech: speech.Composition
) -> None:
    """daphne + a separate runworker over the Redis channel layer gives the spoken words."""
    server, worker = redis_deployment
    frames = pcm_chunks(speech.to_pcm16(long_speech.audio), 16000)
    result = await stream(server.url, frames, config())
    assert_transcript_ok(result, long_speech.text)
    assert worker.alive()


async def test_ten_concurrent_sessions_get_their_own_text(inprocess_server: Server) -> None:
    """Ten sessions streaming different sentences at once each get their own words back."""
    texts = [
        " ".join(
            speech.SENTENCES[(2 * i) % len(speech.SENTENCES) : (2 * i) % len(speech.SENTENCES) + 2]
        )
        for i in range(10)
    ]
    clips = [
        speech.compose(
            speech.SENTENCES[(2 * i) % len(speech.SENTENCES) : (2 * i) % len(speech.SENTENCES) + 2],
            [speech.VOICES[i % 3]],
        )
        for i in range(10)
    ]

    async def one(clip: speech.Composition) -> StreamResult:
        frames = pcm_chunks(speech.to_pcm16(clip.audio), 16000)
        return await stream(inprocess_server.url, frames, config(), realtime=True)

    results: list[Any] = await asyncio.gather(*(one(c) for c in clips))
    for text, result in zip(texts, results, strict=True):
        assert result.errors == []
        assert wer(text, result.final["text"]) <= 0.2, (text, result.final["text"])
    status, health = inprocess_server.get("/health")
    assert status == 200 and health["active_sessions"] == 0
