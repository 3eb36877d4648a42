"""Checkpoints and resume across real nodes (docs/PROTOCOL.md "Checkpoints and resume"): a session
survives a SIGKILLed node (resumed on another with the full checkpoint or its session_id), a
SIGKILLed worker (the window is re-sent) and a SIGTERM (drained); forged, foreign, unknown and
live sessions are refused and the server stays healthy."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis
import websockets

from tests.e2e.conftest import migrated_db
from tests.support import speech
from tests.support.client import CLOSE_NORMAL, StreamResult, config, pcm_chunks, stream
from tests.support.redisdb import redis_test_url
from tests.support.server import (
    REPO,
    Process,
    Server,
    async_wait_until,
    start_server,
    start_worker,
    wait_until,
)
from tests.support.wer import normalize, repeated_bigrams, wer

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

BYTES_PER_MS = 32  # 16 kHz pcm_s16le mono
INFERENCE_TIMEOUT_S = 5
CLOSE_ABNORMAL = 1006  # no close frame: the node died (RFC 6455 section 7.1.5)
# About twice what these tests measure with tiny.en (the assertion messages give the figures).
BASELINE_WER_MAX = 0.1  # 7 of 72 words
DRAIN_WER_MAX = 0.12  # 3 of 25 words
SECRET_KEY = "openasr-resume-test-secret-0123456789-abcdefghijklmnop"


@dataclass
class Cluster:
    """Two daphne nodes' shared environment, one worker, node B always up."""

    env: dict[str, str]
    keys: tuple[str, str]
    node_b: Server
    workers: list[Process] = field(default_factory=list)

    def auth(self, i: int = 0) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[i]}"}


def create_key(env: dict[str, str], name: str) -> str:
    out = subprocess.run(
        [sys.executable, "manage.py", "apikey", "create", name],
        cwd=REPO,
        env={**env, "DJANGO_SETTINGS_MODULE": "openasr_site.settings"},
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def cluster(model_env: dict[str, str]) -> Iterator[Cluster]:
    env = {
        **model_env,
        "REDIS_URL": redis_test_url(8),
        "DATABASE_URL": migrated_db(),
        "DJANGO_SECRET_KEY": SECRET_KEY,
        "WSS_INFERENCE_TIMEOUT_S": str(INFERENCE_TIMEOUT_S),
        "WSS_SHUTDOWN_GRACE_S": "20",
        # Admission is tested on its own (test_admission.py): on a loaded machine the measured
        # speed refused these sessions with SESSION_LIMIT instead of the refusals tested here.
        "WSS_ADMISSION_HEADROOM": "0",
    }
    keys = (create_key(env, "resume-a"), create_key(env, "resume-b"))
    workers = [start_worker(env)]
    node_b = start_server(env)
    c = Cluster(env=env, keys=keys, node_b=node_b, workers=workers)
    yield c
    node_b.stop()
    for w in c.workers:
        w.stop()


@pytest.fixture(scope="module")
def recording() -> speech.Composition:
    """About 35 s of speech: six sentences, three voices."""
    return speech.compose(speech.SENTENCES[:6], speech.VOICES)


@pytest.fixture(scope="module")
def uninterrupted(cluster: Cluster, recording: speech.Composition) -> StreamResult:
    """The same recording streamed without interruption on node B (the WER baseline)."""
    frames = pcm_chunks(speech.to_pcm16(recording.audio), 16000)
    result = asyncio.run(stream(cluster.node_b.url, frames, config(), headers=cluster.auth()))
    result.assert_ended_normally()
    error_rate = wer(recording.text, result.final["text"])  # type: ignore[index]
    assert error_rate <= BASELINE_WER_MAX, (
        f"WER {error_rate:.1%} without interruption (measured 4.2 %): {result.final}"
    )
    return result


@dataclass
class LiveSession:
    """A session streaming in the background, with arrival times of its events, the frames
    sent so far and, once the connection is gone, the close code the client saw."""

    ws: Any
    events: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    task: asyncio.Task[Any] | None = None
    frames_sent: int = 0
    close_code: int | None = None

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for _, e in self.events if e["type"] == kind]

    @property
    def checkpoints(self) -> list[dict[str, Any]]:
        return [e["payload"] for e in self.of("speech.checkpoint")]


async def open_session(
    url: str, payload: dict[str, Any], headers: dict[str, str]
) -> tuple[LiveSession, dict[str, Any]]:
    ws = await websockets.connect(url, additional_headers=headers, max_size=None)
    await ws.send(json.dumps({"type": "speech.config", "payload": payload}))
    first = json.loads(await asyncio.wait_for(ws.recv(), 30))
    live = LiveSession(ws)
    live.events.append((time.monotonic(), first))

    async def receive() -> None:
        try:
            async for raw in ws:
                live.events.append((time.monotonic(), json.loads(raw)))
        except websockets.ConnectionClosed:
            pass
        live.close_code = ws.close_code

    live.task = asyncio.ensure_future(receive())
    return live, first


async def send_frames(live: LiveSession, frames: Sequence[bytes], speed: float) -> None:
    """Send 200 ms frames at ``speed`` times real time, paced against the clock."""
    started = time.monotonic()
    for i, frame in enumerate(frames):
        await asyncio.sleep(max(0.0, started + i * 0.2 / speed - time.monotonic()))
        await live.ws.send(frame)
        live.frames_sent += 1


async def wait_for(predicate: Any, timeout: float) -> None:
    """Poll ``predicate`` every 50 ms until true; TimeoutError after ``timeout`` seconds."""
    await async_wait_until(predicate, timeout, interval=0.05)


def assert_sentences_once(text: str, recording: speech.Composition) -> None:
    """Every sentence is there (mostly right) and nothing is repeated."""
    assert repeated_bigrams(text, recording.text) == 0, text
    heard = set(normalize(text))
    for sentence in speech.SENTENCES[:6]:
        words = normalize(sentence)
        assert sum(w in heard for w in words) >= 0.7 * len(words), (sentence, text)


# --- node killed ---


@pytest.mark.parametrize("resume_with", ["checkpoint", "session_id"])
async def test_resume_on_another_node_after_sigkill(
    cluster: Cluster,
    recording: speech.Composition,
    uninterrupted: StreamResult,
    resume_with: str,
    record_property: Any,
) -> None:
    """Node A SIGKILLed mid-session: resuming on node B from the last checkpoint (full object
    or session_id) gives the uninterrupted transcript (at most one word misheard at the join, no
    sentence lost or repeated)."""
    node_a = start_server(cluster.env)
    pcm = speech.to_pcm16(recording.audio)
    half_ms = recording.duration_ms // 2
    try:
        live, ack = await open_session(node_a.url, config(), cluster.auth())
        assert ack["type"] == "speech.config.ack"
        sender = asyncio.ensure_future(
            send_frames(live, pcm_chunks(pcm[: half_ms * BYTES_PER_MS], 16000), speed=3)
        )
        # a checkpoint well into the first half (two windows or more committed)
        await wait_for(
            lambda: any(c["last_audio_ms"] >= half_ms - 7000 for c in live.checkpoints), 120
        )
        await sender
        node_a.kill(signal.SIGKILL)
        killed_at = time.monotonic()
        await asyncio.wait_for(live.task, 10)  # type: ignore[arg-type]
    finally:
        node_a.stop()
    assert live.close_code == CLOSE_ABNORMAL, live.close_code
    checkpoint = live.checkpoints[-1]
    resume = checkpoint if resume_with == "checkpoint" else {"session_id": checkpoint["session_id"]}

    resumed, ack = await open_session(
        cluster.node_b.url, config(resume_checkpoint=resume), cluster.auth()
    )
    assert ack["type"] == "speech.config.ack", ack
    assert ack["payload"]["resumed"] is True
    resume_ms = ack["payload"]["last_audio_ms"]
    assert resume_ms == checkpoint["last_audio_ms"]
    await send_frames(resumed, pcm_chunks(pcm[resume_ms * BYTES_PER_MS :], 16000), speed=3)
    await resumed.ws.send(json.dumps({"type": "speech.end", "payload": {}}))
    await asyncio.wait_for(resumed.task, 180)  # type: ignore[arg-type]

    assert resumed.of("speech.error") == []
    assert resumed.close_code == CLOSE_NORMAL, resumed.close_code
    first_phrase_at = next(t for t, e in resumed.events if e["type"] == "speech.phrase")
    record_property("kill_to_first_resumed_phrase_s", round(first_phrase_at - killed_at, 2))
    print(f"kill → first resumed phrase ({resume_with}): {first_phrase_at - killed_at:.2f} s")
    final = [e["payload"] for e in resumed.of("speech.phrase")][-1]
    assert final["status"] == "EndOfStream"
    baseline = wer(recording.text, uninterrupted.final["text"])  # type: ignore[index]
    got = wer(recording.text, final["text"])
    print(f"WER uninterrupted {baseline:.3f}, resumed {got:.3f}")
    # One misheard word of slack (two word errors): node B's windows start at the checkpoint,
    # so the word there is decoded in another context ("processes" came back "percesses"
    # uninterrupted and "per-assess is" resumed with the greedy, reduced-context default).
    two_errors = 2 / len(normalize(recording.text))
    assert got <= baseline + two_errors + 1e-9, (final["text"], uninterrupted.final)
    assert_sentences_once(final["text"], recording)
    assert final["text"].startswith(checkpoint["full_transcript"])


# --- worker killed ---


async def test_session_survives_a_killed_worker(
    cluster: Cluster, recording: speech.Composition
) -> None:
    """The only worker SIGKILLed mid-session and a new one started: the window in flight is
    re-sent every WSS_INFERENCE_TIMEOUT_S until one answers, and the session completes with
    every sentence."""
    pcm = speech.to_pcm16(recording.audio)
    live, ack = await open_session(cluster.node_b.url, config(), cluster.auth())
    assert ack["type"] == "speech.config.ack"
    # fast enough that the next window is already buffered, so one is in flight at the kill
    sender = asyncio.ensure_future(send_frames(live, pcm_chunks(pcm, 16000), speed=4))
    await wait_for(lambda: len(live.checkpoints) >= 2, 120)
    retries_before = cluster.node_b.scrape()["openasr_inference_retries_total"]
    cluster.workers[-1].kill(signal.SIGKILL)
    killed_at = time.monotonic()
    # No worker until the watchdog has re-sent the window in flight (or queued) at least once.
    await asyncio.to_thread(
        wait_until,
        lambda: cluster.node_b.scrape()["openasr_inference_retries_total"] > retries_before,
        3 * INFERENCE_TIMEOUT_S,
    )
    cluster.workers.append(start_worker(cluster.env))
    await sender
    await live.ws.send(json.dumps({"type": "speech.end", "payload": {}}))
    await asyncio.wait_for(live.task, 240)  # type: ignore[arg-type]

    assert live.of("speech.error") == []
    assert live.close_code == CLOSE_NORMAL, live.close_code
    final = [e["payload"] for e in live.of("speech.phrase")][-1]
    assert final["status"] == "EndOfStream"
    assert_sentences_once(final["text"], recording)
    retries = cluster.node_b.scrape()["openasr_inference_retries_total"] - retries_before
    after = [t for t, e in live.events if e["type"] == "speech.phrase" and t > killed_at]
    print(f"retries: {retries}")
    print(f"kill → next phrase: {after[0] - killed_at:.2f} s")


# --- refused resumes ---


async def refused(url: str, resume: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
    """The error a resume gets; the refusal is not fatal, so the server keeps the connection."""
    result = await stream(url, [], config(resume_checkpoint=resume), headers=headers, end=False)
    assert result.events[0]["type"] == "speech.error", result.events
    assert not result.closed_by_server, result.close_code
    return result.events[0]["payload"]


async def test_forged_foreign_unknown_and_live_sessions_are_refused(
    cluster: Cluster, recording: speech.Composition
) -> None:
    """Tampered, another key's, unknown and live session ids are SESSION_NOT_FOUND, on any
    node; the server stays healthy."""
    node_b = cluster.node_b
    short = pcm_chunks(
        speech.to_pcm16(speech.compose(speech.SENTENCES[:1], ["hibari"]).audio), 16000
    )
    long_frames = pcm_chunks(speech.to_pcm16(recording.audio), 16000)
    done = await stream(node_b.url, short, config(), headers=cluster.auth(0))
    done.assert_ended_normally()
    checkpoint = done.last_checkpoint
    assert checkpoint is not None

    tampered = {**checkpoint, "full_transcript": checkpoint["full_transcript"] + " Not said."}
    for resume, key in [
        (tampered, 0),
        (checkpoint, 1),  # another key's checkpoint
        ({"session_id": checkpoint["session_id"]}, 1),
        ({"session_id": "0" * 32}, 0),
    ]:
        error = await refused(node_b.url, resume, cluster.auth(key))
        assert error["code"] == "SESSION_NOT_FOUND", error

    # live on node A → refused on node B (and on A itself), by session id and by checkpoint
    node_a = start_server(cluster.env)
    try:
        live, ack = await open_session(node_a.url, config(), cluster.auth())
        sid = ack["payload"]["session_id"]
        await send_frames(live, long_frames[:40], speed=4)  # 8 s: one window committed
        await wait_for(lambda: bool(live.checkpoints), 60)
        for node in (node_b, node_a):
            for resume in ({"session_id": sid}, live.checkpoints[-1]):
                error = await refused(node.url, resume, cluster.auth())
                assert error["code"] == "SESSION_NOT_FOUND", error
                assert "live" in error["message"], error
        await live.ws.close()
        await asyncio.wait_for(live.task, 10)  # type: ignore[arg-type]
        assert live.close_code == CLOSE_NORMAL, live.close_code  # our close, echoed
        # disconnect releases the marker, so the session resumes at once
        markers = redis.Redis.from_url(cluster.env["REDIS_URL"])
        await wait_for(lambda: markers.get(f"openasr:live:{sid}") is None, 5)
    finally:
        node_a.stop()
    resumed = await stream(
        node_b.url, [], config(resume_checkpoint=live.checkpoints[-1]), headers=cluster.auth()
    )
    assert resumed.ack["payload"]["resumed"] is True, resumed.events
    resumed.assert_ended_normally()
    assert node_b.get("/health")[0] == 200


# --- graceful shutdown ---


async def test_sigterm_drains_live_sessions(
    cluster: Cluster, recording: speech.Composition
) -> None:
    """SIGTERM: /ready turns 503 at once, the live session still gets all its phrases, and
    the process exits within WSS_SHUTDOWN_GRACE_S plus a few seconds."""
    node = start_server(cluster.env)
    clip = speech.compose(speech.SENTENCES[:2], speech.VOICES)
    frames = pcm_chunks(speech.to_pcm16(clip.audio), 16000)
    try:
        live, ack = await open_session(node.url, config(), cluster.auth())
        sender = asyncio.ensure_future(send_frames(live, frames, speed=2))
        await wait_for(lambda: live.frames_sent >= 5, 10)  # mid-stream: 1 s of audio sent
        node.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        sent_at = time.monotonic()
        await asyncio.to_thread(wait_until, lambda: node.get("/ready")[0] == 503, 2, 0.05)
        await sender
        await live.ws.send(json.dumps({"type": "speech.end", "payload": {}}))
        await asyncio.wait_for(live.task, 60)  # type: ignore[arg-type]
        await asyncio.to_thread(wait_until, lambda: not node.alive(), 30)
        exited_s = time.monotonic() - sent_at
    finally:
        node.stop()
    final = [e["payload"] for e in live.of("speech.phrase")][-1]
    assert final["status"] == "EndOfStream"
    assert live.close_code == CLOSE_NORMAL, live.close_code
    error_rate = wer(clip.text, final["text"])
    print(f"WER {error_rate:.4f}")
    assert error_rate <= DRAIN_WER_MAX, f"WER {error_rate:.1%} (measured 0.0 %): {final['text']}"
    assert exited_s <= 20 + 5, exited_s
    print(f"SIGTERM → exit: {exited_s:.2f} s")
