"""``openasr_client.transcriber`` against a FAKE in-process server (``fake_server.py``)."""

from __future__ import annotations

import asyncio
import time

import pytest
from openasr_client import (
    AuthenticationError,
    Checkpoint,
    ConfigAck,
    EndOfStream,
    Error,
    Hypothesis,
    Phrase,
    Transcriber,
    TranscriberError,
    Transcript,
    stream_audio,
)

from tests.clients.fake_server import fake_server

RATE = 16000


def pcm(ms: int, rate: int = RATE) -> bytes:
    """Distinct, position-dependent PCM, so misplaced bytes are detectable."""
    n = rate * ms // 1000
    return b"".join(
        ((i * 7919) % 65536 - 32768).to_bytes(2, "little", signed=True) for i in range(n)
    )


def chunks(data: bytes, ms: int = 100, rate: int = RATE) -> list[bytes]:
    size = rate * 2 * ms // 1000
    return [data[i : i + size] for i in range(0, len(data), size)]


def words(transcript: Transcript) -> list[str]:
    return [w.text for w in transcript.words]


async def run(url: str, audio: bytes, **options: object) -> tuple[Transcriber, list[object]]:
    async with Transcriber(url, **options) as t:  # type: ignore[arg-type]
        events = await stream_audio(t, chunks(audio))
    return t, events


async def test_events_are_typed_and_in_protocol_order() -> None:
    """A session yields the ack, per-window hypothesis/phrase/checkpoint, then EndOfStream."""
    async with fake_server(window_ms=2000, word_ms=500) as fake:
        _, events = await run(fake.url, pcm(5000), window_ms=2000)
    assert isinstance(events[0], ConfigAck)
    assert events[0].session_id == "fake0001"
    kinds = [type(e) for e in events[1:4]]
    assert kinds == [Hypothesis, Phrase, Checkpoint]
    assert isinstance(events[-2], EndOfStream) and isinstance(events[-1], Checkpoint)
    transcript = Transcript.from_events(events)
    assert words(transcript) == [f"w{i}" for i in range(10)]
    assert transcript.text == " ".join(f"w{i}" for i in range(10))
    assert fake.configs[0]["window_duration_ms"] == 2000


async def test_config_carries_options_and_key_in_the_header() -> None:
    """speech.config carries the options; the API key goes in the Authorization header."""
    async with fake_server(api_key="k.secret") as fake:
        await run(fake.url, pcm(1000), api_key="k.secret", language="en", overlap_ms=300)
    assert fake.auth_headers == ["Bearer k.secret"]
    assert fake.configs[0]["overlap_duration_ms"] == 300
    assert "k.secret" not in fake.url


async def test_wrong_key_raises_authentication_error() -> None:
    """HTTP 401 on the upgrade becomes AuthenticationError naming the status."""
    async with fake_server(api_key="right") as fake:
        with pytest.raises(AuthenticationError, match="401"):
            async with Transcriber(fake.url, api_key="wrong"):
                pass


async def test_unreachable_server_raises_a_clear_error() -> None:
    """Nothing listening: TranscriberError saying it cannot connect to the URL."""
    with pytest.raises(TranscriberError, match="cannot connect to ws://127.0.0.1:9/"):
        async with Transcriber("ws://127.0.0.1:9/transcribe", open_timeout=2):
            pass


async def test_resumes_after_a_dropped_connection_without_gaps() -> None:
    """A drop mid-stream is resumed from the last checkpoint; the server gets all audio once."""
    audio = pcm(9000)
    async with fake_server(window_ms=2000, drop_at_ms=[5100]) as fake:
        t, events = await run(fake.url, audio, window_ms=2000)
    session = fake.sessions["fake0001"]
    assert session.connections == 2
    assert bytes(session.audio) == audio
    assert fake.configs[1]["resume_checkpoint"]["last_audio_ms"] == 4000
    acks = [e for e in events if isinstance(e, ConfigAck)]
    assert [a.resumed for a in acks] == [False, True]
    assert words(Transcript.from_events(events)) == [f"w{i}" for i in range(18)]
    assert t.reconnects == 1


async def test_phrase_sent_before_a_lost_checkpoint_is_not_yielded_twice() -> None:
    """A drop between a phrase and its checkpoint: the re-sent phrase is filtered out."""
    async with fake_server(
        window_ms=2000, drop_at_ms=[6000], drop_between_phrase_and_checkpoint=True
    ) as fake:
        _, events = await run(fake.url, pcm(9000), window_ms=2000)
    assert fake.sessions["fake0001"].connections == 2
    assert words(Transcript.from_events(events)) == [f"w{i}" for i in range(18)]


async def test_partly_repeated_phrase_is_trimmed_after_resume() -> None:
    """After a resume, a phrase overlapping yielded words keeps only the new ones (jittered)."""
    async with fake_server(
        window_ms=2000,
        drop_at_ms=[6000],
        drop_between_phrase_and_checkpoint=True,
        resume_window_ms=3000,
        resume_jitter_ms=120,
    ) as fake:
        _, events = await run(fake.url, pcm(9000), window_ms=2000)
    phrases = [e for e in events if isinstance(e, Phrase)]
    assert [w.text for p in phrases for w in p.words] == [f"w{i}" for i in range(18)]
    trimmed = next(p for p in phrases if p.words[0].text == "w12")
    assert trimmed.text.startswith("w12") and trimmed.offset == 12 * 500 + 120


async def test_drop_after_end_is_resumed_and_still_ends() -> None:
    """A drop while the final windows are pending: speech.end is re-sent after the replay."""
    async with fake_server(window_ms=2000, drop_at_ms=[4100], window_delay_s=0.05) as fake:
        _, events = await run(fake.url, pcm(4200), window_ms=2000)
    assert isinstance(events[-2], EndOfStream)
    assert bytes(fake.sessions["fake0001"].audio) == pcm(4200)


async def test_resume_retries_while_the_old_connection_is_still_live() -> None:
    """A resume refused as 'live on another connection' is retried with backoff."""
    async with fake_server(window_ms=2000, drop_at_ms=[5100], refuse_resumes_as_live=2) as fake:
        t, events = await run(fake.url, pcm(7000), window_ms=2000)
    assert t.reconnects == 3
    assert words(Transcript.from_events(events)) == [f"w{i}" for i in range(14)]


async def test_tampered_checkpoint_fails_without_retrying() -> None:
    """A resume refused with SESSION_NOT_FOUND for another reason fails at once."""
    async with fake_server(window_ms=2000, drop_at_ms=[5100], forget_checkpoints=True) as fake:
        t = Transcriber(fake.url, window_ms=2000)
        with pytest.raises(TranscriberError, match="SESSION_NOT_FOUND") as info:
            async with t:
                await stream_audio(t, chunks(pcm(7000)))
    assert info.value.code == "SESSION_NOT_FOUND" and t.reconnects == 1


async def test_resume_disabled_raises_on_drop() -> None:
    """With resume=False a dropped connection ends the iteration with TranscriberError."""
    async with fake_server(window_ms=2000, drop_at_ms=[3000]) as fake:
        with pytest.raises(TranscriberError, match="connection closed"):
            await run(fake.url, pcm(6000), window_ms=2000, resume=False)


async def test_slow_down_pauses_sending_until_ok() -> None:
    """After slow_down no audio is sent until ok (0.5 s later), apart from frames in flight."""
    async with fake_server(window_ms=2000, slow_down_at_ms=1000, ok_after_s=0.5) as fake:
        await run(fake.url, pcm(4000), window_ms=2000)
    times = fake.sessions["fake0001"].frame_times
    slowed_at = next(t for t, pos in times if pos >= 1000)
    paused = [pos for t, pos in times if slowed_at + 0.15 < t < slowed_at + 0.45]
    assert paused == []
    assert times[-1][1] == 4000


async def test_unconfirmed_audio_is_capped_by_checkpoints() -> None:
    """As fast as possible, the client stays at most max_unconfirmed_ms ahead of checkpoints."""
    async with fake_server(window_ms=1000, window_delay_s=0.05) as fake:
        _, events = await run(fake.url, pcm(8000), window_ms=1000, max_unconfirmed_ms=2000)
    checkpoints = [0]
    ahead = []
    session = fake.sessions["fake0001"]
    for _, pos in session.frame_times:
        ahead.append(pos)
    cps = [e.last_audio_ms for e in events if isinstance(e, Checkpoint)]
    checkpoints.extend(cps)
    assert max(ahead) == 8000
    # Each frame went out when less than 2 s was unconfirmed: 2 s + one 100 ms frame at most.
    assert all(pos - max(c for c in checkpoints if c <= pos) <= 2100 for pos in ahead)


async def test_realtime_paces_audio_at_wall_clock_speed() -> None:
    """realtime=True takes about the audio's duration to send it."""
    async with fake_server(window_ms=1000) as fake:
        start = time.monotonic()
        await run(fake.url, pcm(1000), window_ms=1000, realtime=True)
        elapsed = time.monotonic() - start
    assert 0.85 < elapsed < 3


async def test_fatal_server_error_is_yielded_then_raised() -> None:
    """A fatal speech.error (INVALID_STATE) is yielded, then iteration raises with its code."""
    async with fake_server(error_on_audio="INVALID_STATE") as fake:
        seen: list[object] = []
        with pytest.raises(TranscriberError) as info:
            async with Transcriber(fake.url) as t:
                await stream_audio(t, chunks(pcm(1000)), seen.append)
    assert info.value.code == "INVALID_STATE"
    assert any(isinstance(e, Error) and e.code == "INVALID_STATE" for e in seen)


async def test_rate_limited_error_does_not_end_the_session() -> None:
    """A non-fatal speech.error (RATE_LIMITED) is yielded and the session goes on."""
    async with fake_server(error_on_audio="RATE_LIMITED") as fake:
        _, events = await run(fake.url, pcm(2500))
    assert any(isinstance(e, Error) for e in events)
    assert isinstance(events[-2], EndOfStream)


async def test_send_after_end_is_refused() -> None:
    """send() after end() raises instead of silently dropping audio."""
    async with fake_server() as fake, Transcriber(fake.url) as t:
        await t.end()
        with pytest.raises(TranscriberError, match="after end"):
            await t.send(b"\0\0")
        async for _ in t:
            pass


async def test_odd_sample_rate_keeps_byte_positions_exact() -> None:
    """At 44.1 kHz resume positions are whole samples; the server still gets the audio once."""
    audio = pcm(7000, rate=44100)
    async with fake_server(window_ms=2000, drop_at_ms=[4500]) as fake:
        async with Transcriber(fake.url, sample_rate=44100, window_ms=2000) as t:
            await stream_audio(t, chunks(audio, rate=44100))
    assert bytes(fake.sessions["fake0001"].audio) == audio
    assert asyncio.get_running_loop() is not None
