"""Our own protocol with telephony audio: ``/transcribe`` with ``pcm_mulaw`` (and a wrong
key refused there too)."""

from __future__ import annotations

import pytest
import websockets

from tests.e2e.compat.conftest import KEY, WER_BY_PATH, g711, pcm16
from tests.support.client import config, stream
from tests.support.server import Server
from tests.support.speech import Composition
from tests.support.wer import wer

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


async def test_pcm_mulaw_8khz_is_transcribed(compat_server: Server, clip: Composition) -> None:
    """speech.config with encoding pcm_mulaw (8 kHz by default): the words come back."""
    audio = g711(clip.audio)
    frames = [audio[i : i + 1600] for i in range(0, len(audio), 1600)]  # 200 ms
    payload = config(encoding="pcm_mulaw")
    del payload["sample_rate"]
    result = await stream(
        compat_server.url,
        frames,
        payload,
        speed=4.0,
        headers={"Authorization": f"Bearer {KEY}"},
    )
    result.assert_ended_normally()
    assert result.ack["payload"]["effective_config"]["encoding"] == "pcm_mulaw"
    assert result.ack["payload"]["effective_config"]["sample_rate"] == 8000
    WER_BY_PATH["/transcribe pcm_mulaw 8k"] = score = wer(clip.text, result.final["text"])  # type: ignore[index]
    assert score < 0.15, result.final


async def test_a_wrong_key_is_refused_with_401(compat_server: Server) -> None:
    """/transcribe keeps its own error shape."""
    with pytest.raises(websockets.InvalidStatus) as info:
        async with websockets.connect(
            compat_server.url, additional_headers={"Authorization": "Bearer nope"}
        ):
            pass
    assert info.value.response.status_code == 401


async def test_pcm_s16le_16khz_baseline(compat_server: Server, clip: Composition) -> None:
    """The same clip as 16 kHz PCM on /transcribe: the baseline the other paths compare to."""
    audio = pcm16(clip.audio)
    frames = [audio[i : i + 6400] for i in range(0, len(audio), 6400)]  # 200 ms
    result = await stream(
        compat_server.url, frames, config(), speed=4.0, headers={"Authorization": f"Bearer {KEY}"}
    )
    result.assert_ended_normally()
    WER_BY_PATH["/transcribe pcm_s16le 16k"] = score = wer(clip.text, result.final["text"])  # type: ignore[index]
    assert score < 0.1, result.final
