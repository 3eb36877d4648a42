"""Interim passes through a real server and the real model (docs/PROTOCOL.md "Windows and
events", "Between windows"): at 5 s windows, a speaker's words are shown as
``speech.hypothesis`` before the window that commits them could even be cut."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
import websockets

from tests.support import speech
from tests.support.client import config, pcm_chunks
from tests.support.server import Server
from tests.support.wer import wer

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

FRAME_MS = 200


async def paced_events(url: str, pcm: bytes) -> list[tuple[float, dict[str, Any]]]:
    """Stream ``pcm`` in real time (200 ms frames) then ``speech.end``; every event with the
    audio sent before it arrived (s)."""
    events: list[tuple[float, dict[str, Any]]] = []
    async with websockets.connect(url, max_size=None) as ws:
        payload = config(window_duration_ms=5000, overlap_duration_ms=500)
        await ws.send(json.dumps({"type": "speech.config", "payload": payload}))
        assert json.loads(await ws.recv())["type"] == "speech.config.ack"
        started = time.monotonic()
        sent_s = 0.0

        async def receive() -> None:
            async for raw in ws:
                events.append((sent_s, json.loads(raw)))

        receiver = asyncio.ensure_future(receive())
        for frame in pcm_chunks(pcm, 16000, FRAME_MS):
            await asyncio.sleep(max(0.0, started + sent_s - time.monotonic()))
            await ws.send(frame)
            sent_s += FRAME_MS / 1000
        await ws.send(json.dumps({"type": "speech.end", "payload": {}}))
        await asyncio.wait_for(receiver, 60)
    return events


async def test_words_are_shown_before_the_first_window_is_cut(inprocess_server: Server) -> None:
    """Two sentences (about 8 s) spoken at 5 s windows: the first words come back as
    ``speech.hypothesis`` before any phrase and before 5 s of audio was sent (without interim
    passes, hypotheses come with the window's phrase), and the phrases carry the sentences."""
    spoken = speech.compose(speech.SENTENCES[:2], speech.VOICES[:1], pauses_ms=[300])
    sentence = spoken.text
    events = await paced_events(inprocess_server.url, speech.to_pcm16(spoken.audio))
    timeline = [(round(sent, 1), e["type"], e["payload"].get("text")) for sent, e in events]
    early = [
        (sent, e) for sent, e in events if e["type"] == "speech.hypothesis" and e["payload"]["text"]
    ]
    first_phrase = min(sent for sent, e in events if e["type"] == "speech.phrase")
    # Measured: the first hypothesis after 1.6 s of audio, then one a second; the phrase at
    # the end of the stream (7.8 s).
    assert early and early[0][0] < min(5.0, first_phrase), timeline
    phrases = " ".join(
        e["payload"]["text"]
        for _, e in events
        if e["type"] == "speech.phrase" and e["payload"]["status"] == "Success"
    )
    assert wer(sentence, phrases) <= 0.2, phrases
