"""One test per limit of the connection layer, against real daphne processes with the FAKE
backend (protocol tests only): the documented event, then the documented close code.

The idle close (4008) is ``test_protocol_server.py::test_idle_connection_is_closed_with_an_error``.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import migrated_db, redis_test_url
from tests.e2e.hostile_support import (
    CLOSE_NORMAL,
    CLOSE_TOO_BIG,
    CLOSE_TRY_AGAIN,
    END_FRAME,
    Client,
    assert_documented_close,
    counts_now,
    frame,
    tone_pcm,
    upgrade,
    wait_drained,
)
from tests.support.client import pcm_chunks
from tests.support.server import Server, start_server

pytestmark = pytest.mark.e2e


def fake_env(**overrides: str) -> dict[str, str]:
    return {"WSS_BACKEND": "fake", "WSS_VAD": "off", "DATABASE_URL": migrated_db(), **overrides}


@pytest.fixture(scope="module")
def slow_server() -> Iterator[Server]:
    """A fake model at five times real time, an 8 s audio buffer, three connections per node."""
    server = start_server(
        fake_env(WSS_FAKE_BACKEND_RTF="0.2", WSS_AUDIO_BUFFER_MS="8000", WSS_MAX_CONNECTIONS="3")
    )
    yield server
    server.stop()


async def test_backpressure_ok_follows_slow_down_each_sent_once(slow_server: Server) -> None:
    """Audio beyond 80 % of the buffer: one slow_down; the client then slows to real time
    (docs/PROTOCOL.md "Flow control"), the model (five times real time) catches up below the low
    mark: one ok; then the session ends normally."""
    before = await counts_now(slow_server)
    client = await Client.open(slow_server)
    try:
        await client.configure(window_duration_ms=4000, overlap_duration_ms=0)
        chunks = pcm_chunks(tone_pcm(20.0), 16000, chunk_ms=100)
        sent = 0
        for chunk in chunks[:70]:  # 7 s at once: 87 % of the 8 s buffer
            await client.send_binary(chunk)
            sent += 1
        await client.wait_for(lambda e: e["type"] == "speech.backpressure", timeout=10)
        ok = None
        for chunk in chunks[sent:]:  # slowed down: real time
            await client.send_binary(chunk)
            await asyncio.sleep(0.1)
            ok = next(
                (e for e in client.of("speech.backpressure") if e["payload"]["action"] == "ok"),
                None,
            )
            if ok is not None:
                break
        assert ok is not None, client.events[-3:]
        await client.send_text(END_FRAME)
        assert await client.wait_closed(timeout=30) == CLOSE_NORMAL
    finally:
        await client.close()
    assert_documented_close(client)
    actions = [e["payload"]["action"] for e in client.of("speech.backpressure")]
    assert actions == ["slow_down", "ok"], actions
    assert client.errors == [], client.errors
    await wait_drained(slow_server, baseline=before)


async def test_full_node_answers_503_with_retry_after(slow_server: Server) -> None:
    """(Last on this server: today's 500 leaks the refused connection's slot.)
    A node holding WSS_MAX_CONNECTIONS connections answers the next upgrade with HTTP 503,
    Retry-After and a JSON error (never 500); a closed connection frees the place."""
    await wait_drained(slow_server)
    held = [await Client.open(slow_server) for _ in range(3)]
    refused = await upgrade(slow_server)
    assert refused.status == 503, (refused.status, refused.body)
    assert int(refused.headers["Retry-After"]) >= 1
    assert "error" in refused.json()
    for client in held:
        await client.close()
    await wait_drained(slow_server)
    assert (await upgrade(slow_server)).status == 101


@pytest.fixture(scope="module")
def rate_server() -> Iterator[Server]:
    """At most 3 frames and 16000 audio bytes per second per session."""
    server = start_server(fake_env(WSS_MAX_MESSAGES_PER_S="3", WSS_MAX_AUDIO_BYTES_PER_S="16000"))
    yield server
    server.stop()


BAD_FRAME = frame({"type": "speech.nope", "payload": {}})


async def test_text_frames_count_against_the_message_rate(rate_server: Server) -> None:
    """Text frames count against WSS_MAX_MESSAGES_PER_S: the 4th frame in a second is refused
    with RATE_LIMITED, not handled."""
    before = await counts_now(rate_server)
    client = await Client.open(rate_server)
    for _ in range(5):
        await client.send_text(BAD_FRAME)
    await client.wait_for(
        lambda e: e["type"] == "speech.error" and e["payload"]["code"] == "RATE_LIMITED",
        timeout=3,
    )
    handled = [e for e in client.errors if e["code"] == "INVALID_MESSAGE"]
    assert len(handled) <= 3, client.errors
    await client.close()
    await wait_drained(rate_server, baseline=before)


async def test_binary_frames_count_against_the_message_rate(rate_server: Server) -> None:
    """Binary frames count against WSS_MAX_MESSAGES_PER_S too."""
    before = await counts_now(rate_server)
    client = await Client.open(rate_server)
    await client.configure()
    for _ in range(5):
        await client.send_binary(b"\x00\x00" * 160)
    error = await client.wait_for(lambda e: e["type"] == "speech.error", timeout=3)
    assert error["payload"]["code"] == "RATE_LIMITED", error
    await client.close()
    await wait_drained(rate_server, baseline=before)


async def test_audio_bytes_beyond_the_byte_rate_are_rate_limited(rate_server: Server) -> None:
    """More than WSS_MAX_AUDIO_BYTES_PER_S in one second: RATE_LIMITED; the session goes on."""
    before = await counts_now(rate_server)
    client = await Client.open(rate_server)
    await client.configure()
    await client.send_binary(tone_pcm(0.3))  # 9600 bytes
    await client.send_binary(tone_pcm(0.3))  # 19200 bytes in this second: over 16000
    error = await client.wait_for(lambda e: e["type"] == "speech.error", timeout=3)
    assert error["payload"]["code"] == "RATE_LIMITED", error
    assert not client.closed
    await client.close()
    await wait_drained(rate_server, baseline=before)


async def test_a_frame_larger_than_the_byte_rate_closes_1009(rate_server: Server) -> None:
    """A frame over min(WSS_MAX_FRAME_BYTES, WSS_MAX_AUDIO_BYTES_PER_S) can never pass: the
    WebSocket layer closes with 1009 instead of buffering it."""
    before = await counts_now(rate_server)
    client = await Client.open(rate_server)
    await client.configure()
    await client.send_binary(b"\x00" * 20000)
    assert await client.wait_closed(timeout=10) == CLOSE_TOO_BIG
    await wait_drained(rate_server, baseline=before)


TRANSCRIPT_CAP_BYTES = 1024


@pytest.fixture(scope="module")
def cap_server() -> Iterator[Server]:
    """An instant fake model, no audio-speed cap, the smallest transcript cap."""
    server = start_server(
        fake_env(
            WSS_FAKE_BACKEND_RTF="0",
            WSS_MAX_TRANSCRIPT_BYTES=str(TRANSCRIPT_CAP_BYTES),
            WSS_MAX_AUDIO_SPEED="1000",
            WSS_AUDIO_BUFFER_MS="600000",
        )
    )
    yield server
    server.stop()


async def test_transcript_never_exceeds_the_cap(cap_server: Server) -> None:
    """The cap is hard: RATE_LIMITED, then EndOfStream with the transcript so far and close
    1000; no phrase, checkpoint or final transcript ever exceeds WSS_MAX_TRANSCRIPT_BYTES."""
    before = await counts_now(cap_server)
    client = await Client.open(cap_server)
    await client.configure(window_duration_ms=10000, overlap_duration_ms=0)
    # 200 s of tone: about 400 fake words, twice the cap.
    for chunk in pcm_chunks(tone_pcm(200.0), 16000, chunk_ms=1000):
        if client.closed:
            break
        try:
            await client.send_binary(chunk)
        except Exception:
            break
    if not client.closed:
        try:
            await client.send_text(END_FRAME)
        except Exception:
            pass
    assert await client.wait_closed(timeout=60) == CLOSE_NORMAL
    assert_documented_close(client)
    assert "RATE_LIMITED" in [e["code"] for e in client.errors], client.errors
    final = client.end_of_stream
    assert final is not None
    assert len(final["text"].encode()) <= TRANSCRIPT_CAP_BYTES, len(final["text"].encode())
    assert final["text"] == client.of("speech.checkpoint")[-1]["payload"]["full_transcript"]
    for checkpoint in client.of("speech.checkpoint"):
        assert len(checkpoint["payload"]["full_transcript"].encode()) <= TRANSCRIPT_CAP_BYTES
    phrases = [e["payload"]["text"] for e in client.of("speech.phrase")][:-1]
    assert len(" ".join(phrases).encode()) <= TRANSCRIPT_CAP_BYTES
    await wait_drained(cap_server, baseline=before)


MAX_SESSION_S = 2


@pytest.fixture(scope="module")
def short_session_server() -> Iterator[Server]:
    server = start_server(
        fake_env(
            WSS_FAKE_BACKEND_RTF="0",
            WSS_MAX_SESSION_S=str(MAX_SESSION_S),
            WSS_MAX_AUDIO_SPEED="1000",
        )
    )
    yield server
    server.stop()


async def test_session_duration_cap(short_session_server: Server) -> None:
    """Audio beyond WSS_MAX_SESSION_S is refused with RATE_LIMITED and never transcribed; the
    session still ends with EndOfStream and close 1000."""
    server = short_session_server
    before = await counts_now(server)
    client = await Client.open(server)
    await client.configure(window_duration_ms=1000, overlap_duration_ms=0)
    for chunk in pcm_chunks(tone_pcm(4.0), 16000):
        if client.closed:
            break
        await client.send_binary(chunk)
    await client.wait_for(
        lambda e: e["type"] == "speech.error" and e["payload"]["code"] == "RATE_LIMITED"
    )
    if not client.closed:
        await client.send_text(END_FRAME)
    assert await client.wait_closed() == CLOSE_NORMAL
    assert_documented_close(client)
    cap_ms = MAX_SESSION_S * 1000 + 200  # one 200 ms frame may straddle the cap
    final = client.end_of_stream
    assert final is not None and final["duration"] <= cap_ms, final
    for phrase in client.of("speech.phrase"):
        for word in phrase["payload"].get("words", []):
            assert word["offset"] + word["duration"] <= cap_ms, word
    await wait_drained(server, baseline=before)


@pytest.fixture(scope="module")
def workerless_server() -> Iterator[Server]:
    """Redis channel layer and no worker process: no job is ever answered."""
    server = start_server(
        fake_env(
            REDIS_URL=redis_test_url(11),
            WSS_INFERENCE_TIMEOUT_S="1",
            WSS_INFERENCE_RETRIES="0",
        ),
        wait="/health",
    )
    yield server
    server.stop()


async def test_no_worker_answering_is_service_unavailable_4013(
    workerless_server: Server,
) -> None:
    """A window no worker answers within WSS_INFERENCE_TIMEOUT_S (after the retries) ends the
    session with SERVICE_UNAVAILABLE and close 4013."""
    client = await Client.open(workerless_server)
    # A whole 4 s window (plus the quarter window it may wait for a pause): windows under 4 s
    # commit at pauses only, and this tone has none.
    await client.configure(window_duration_ms=4000, overlap_duration_ms=0)
    await client.send_binary(tone_pcm(5.2))
    assert await client.wait_closed(timeout=15) == CLOSE_TRY_AGAIN
    assert_documented_close(client)
    assert client.errors[-1]["code"] == "SERVICE_UNAVAILABLE"
    await wait_drained(workerless_server)


@pytest.fixture(scope="module")
def failing_server() -> Iterator[Server]:
    """The fake backend failing every inference (WSS_FAKE_BACKEND_FAIL: a hook the fake
    backend needs, see the report), one retry."""
    server = start_server(
        fake_env(WSS_FAKE_BACKEND_FAIL="true", WSS_INFERENCE_RETRIES="1"), wait="/health"
    )
    yield server
    server.stop()


async def test_a_worker_failure_reply_ends_the_session_with_an_error(
    failing_server: Server,
) -> None:
    """A window whose inference fails on every attempt (the worker replies with a failure) is
    retried, then the session ends with SERVICE_UNAVAILABLE and close 4013; the last
    checkpoint is kept."""
    client = await Client.open(failing_server)
    # A whole 4 s window (plus the quarter window it may wait for a pause): windows under 4 s
    # commit at pauses only, and this tone has none.
    await client.configure(window_duration_ms=4000, overlap_duration_ms=0)
    await client.send_binary(tone_pcm(5.2))
    assert await client.wait_closed(timeout=15) == CLOSE_TRY_AGAIN, client.events[-3:]
    assert_documented_close(client)
    message = client.errors[-1]["message"]
    assert re.search(r"attempt|worker", message, re.I), message
    await wait_drained(failing_server)
