"""The official ``deepgram-sdk`` live client against a real daphne and the real model
(``DeepgramClient(environment=DeepgramClientEnvironment(production="ws://…"))``)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import websockets
from deepgram import DeepgramClient
from deepgram.core.api_error import ApiError
from deepgram.environment import DeepgramClientEnvironment
from deepgram.listen.v1.types import (
    ListenV1Metadata,
    ListenV1Results,
    ListenV1SpeechStarted,
    ListenV1UtteranceEnd,
)

from tests.e2e.compat.conftest import KEY, WER_BY_PATH, g711, pcm16
from tests.support.server import Server
from tests.support.speech import Composition
from tests.support.wer import wer

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

SPEED = 2.0  # times real time


def deepgram(server: Server, key: str = KEY) -> DeepgramClient:
    env = DeepgramClientEnvironment(
        base=server.http,
        production=f"ws://127.0.0.1:{server.port}",
        agent=f"ws://127.0.0.1:{server.port}",
        agent_rest=server.http,
    )
    return DeepgramClient(api_key=key, environment=env)


def stream(conn: Any, audio: bytes, bytes_per_s: int, finalize_at: float | None = None) -> None:
    """Send audio at SPEED times real time (Finalize at that fraction), then CloseStream."""
    step = bytes_per_s // 10
    finalize_byte = None if finalize_at is None else int(len(audio) * finalize_at)
    for i in range(0, len(audio), step):
        conn.send_media(audio[i : i + step])
        if finalize_byte is not None and i <= finalize_byte < i + step:
            conn.send_finalize()
        time.sleep(0.1 / SPEED)
    conn.send_close_stream()


def listen(
    server: Server, audio: bytes, bytes_per_s: int, finalize_at: float | None = None, **options: Any
) -> list[Any]:
    """Every message of one live connection, until the server closes it."""
    messages: list[Any] = []
    with deepgram(server).listen.v1.connect(model="nova-3", **options) as conn:
        sender = threading.Thread(target=stream, args=(conn, audio, bytes_per_s, finalize_at))
        sender.start()
        for message in conn:
            messages.append(message)
        sender.join()
    return messages


def finals(messages: list[Any]) -> list[ListenV1Results]:
    return [m for m in messages if isinstance(m, ListenV1Results) and m.is_final]


def test_live_interim_final_finalize_utterance_end_and_close_stream(
    compat_server: Server, clip: Composition
) -> None:
    """linear16 16 kHz with every live option: interim then final results with words and a
    real confidence, speech_final at endpoints, Finalize mid-stream answered with
    from_finalize, SpeechStarted and UtteranceEnd after pauses, Metadata after CloseStream."""
    messages = listen(
        compat_server,
        pcm16(clip.audio),
        32000,
        finalize_at=0.6,
        encoding="linear16",
        sample_rate=16000,
        channels=1,
        interim_results="true",
        endpointing=300,
        utterance_end_ms=1000,
        vad_events="true",
        punctuate="true",
        smart_format="true",
    )
    interim = [m for m in messages if isinstance(m, ListenV1Results) and not m.is_final]
    assert interim and all(m.channel.alternatives[0].transcript for m in interim)
    final = finals(messages)
    assert sum(bool(m.speech_final) for m in final) >= len(clip.spans_ms) - 1
    assert sum(bool(m.from_finalize) for m in final) == 1
    for earlier, later in zip(final, final[1:], strict=False):
        assert later.start == pytest.approx(earlier.start + earlier.duration, abs=0.002)
    spoken = [m.channel.alternatives[0] for m in final if m.channel.alternatives[0].words]
    assert all(0.3 < alt.confidence <= 1 for alt in spoken)
    words = [w for alt in spoken for w in alt.words]
    assert all(w.start <= w.end and 0 < w.confidence <= 1 and w.punctuated_word for w in words)
    assert [w.start for w in words] == sorted(w.start for w in words)
    assert sum(isinstance(m, ListenV1SpeechStarted) for m in messages) >= len(clip.spans_ms)
    assert sum(isinstance(m, ListenV1UtteranceEnd) for m in messages) >= len(clip.spans_ms) - 1
    assert isinstance(messages[-1], ListenV1Metadata)
    assert messages[-1].duration == pytest.approx(clip.duration_ms / 1000, abs=0.1)
    text = " ".join(m.channel.alternatives[0].transcript for m in final)
    WER_BY_PATH["deepgram linear16 16k (Finalize mid-stream)"] = score = wer(clip.text, text)
    assert score < 0.1, text


def test_mulaw_8khz_telephony_audio_is_transcribed(
    compat_server: Server, clip: Composition
) -> None:
    """encoding=mulaw at 8 kHz with Deepgram's defaults (no punctuation, 10 ms endpointing
    raised to 300 ms): final results, Metadata at the close."""
    messages = listen(compat_server, g711(clip.audio), 8000, encoding="mulaw", sample_rate=8000)
    text = " ".join(m.channel.alternatives[0].transcript for m in finals(messages))
    assert text == text.lower() and "." not in text
    assert isinstance(messages[-1], ListenV1Metadata)
    WER_BY_PATH["deepgram mulaw 8k"] = score = wer(clip.text, text)
    assert score < 0.15, text


def test_a_wrong_key_is_refused_with_401(compat_server: Server) -> None:
    """The handshake is refused with 401 (the body is Deepgram's INVALID_AUTH object: see
    the middleware tests). deepgram-sdk 7.16.0 means to raise ApiError(401), but with
    websockets >= 14 it catches the legacy InvalidStatusCode while the client raises
    InvalidStatus, so the websockets exception reaches the caller."""
    with pytest.raises((ApiError, websockets.InvalidStatus)) as info:
        with deepgram(compat_server, "wrong-key").listen.v1.connect(model="nova-3"):
            pass
    error = info.value
    status = error.status_code if isinstance(error, ApiError) else error.response.status_code
    assert status == 401
