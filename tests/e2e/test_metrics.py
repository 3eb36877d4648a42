"""``/metrics`` of a real daphne process (docs/PROTOCOL.md "Operations", docs/METRICS.md):
every seed series, and the counters move for real traffic. Protocol counters use the FAKE
backend (protocol tests only: no model); the inference figures of a separate ``runworker``
reach the server's ``/metrics`` over Redis."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import websockets
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import migrated_db
from tests.support.client import config, pcm_chunks, stream
from tests.support.redisdb import redis_test_url
from tests.support.server import Server, async_wait_until, start_server, start_worker
from tests.support.speech import tone
from tests.transcription.test_metrics import SEED_COUNTERS, SEED_GAUGES, SEED_HISTOGRAMS

pytestmark = pytest.mark.e2e

API_KEY = "metrics-test-key-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
# 2 s windows at half real time: results come back within a second, and 8 s of audio sent at
# once fills the 6 s buffer past the 80 % backpressure mark.
WINDOW = {"window_duration_ms": 2000, "overlap_duration_ms": 500}
# Two windows for sure: 8 s of speech without a pause at 5 s windows (2 s windows commit at
# pauses only, and their interim passes are not windows).
TWO_WINDOWS = {"window_duration_ms": 5000, "overlap_duration_ms": 500}
TWO_WINDOWS_S = 8


@pytest.fixture(scope="module")
def metrics_server() -> Iterator[Server]:
    """A FAKE-backend server that requires an API key."""
    server = start_server(
        {
            "WSS_BACKEND": "fake",
            "WSS_VAD": "off",
            "WSS_API_KEY": API_KEY,
            "WSS_FAKE_BACKEND_RTF": "0.5",
            "WSS_AUDIO_BUFFER_MS": "6000",
            "DATABASE_URL": migrated_db(),
        }
    )
    yield server
    server.stop()


def scrape(server: Server) -> dict[str, float]:
    """The unlabelled samples of ``/metrics`` by sample name (seed series are unlabelled)."""
    return server.scrape()


def scrape_models(server: Server) -> dict[str, float]:
    """Samples labelled only by ``model`` (the per-window figures), summed over the models."""
    _, text = server.get("/metrics")
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if set(s.labels) == {"model"}:
                totals[s.name] = totals.get(s.name, 0.0) + s.value
    return totals


async def settles(server: Server, name: str, value: float) -> None:
    """Wait until ``name`` reads ``value`` (the server updates it after the client is done)."""
    try:
        await async_wait_until(lambda: scrape(server)[name] == value, timeout=10)
    except TimeoutError:
        pytest.fail(f"{name} is {scrape(server)[name]}, expected {value}")


def test_every_seed_metric_is_served_unlabelled_with_its_type(metrics_server: Server) -> None:
    """Gauges, counters (``_total``) and histograms (with the seed buckets) are all there."""
    _, text = metrics_server.get("/metrics")
    types = {f.name: f.type for f in text_string_to_metric_families(text)}
    samples = scrape(metrics_server)
    for name in SEED_GAUGES:
        assert types[name] == "gauge" and name in samples
    for name in SEED_COUNTERS:
        assert types[name.removesuffix("_total")] == "counter" and name in samples
    for name, (_, buckets) in SEED_HISTOGRAMS.items():
        assert types[name] == "histogram" and f"{name}_count" in samples
        for bound in buckets:
            assert f'{name}_bucket{{le="{float(bound)}"}}' in text
    assert "pid=" not in text


async def test_auth_rejection_and_connection_counters(metrics_server: Server) -> None:
    """No key → 401 and one auth rejection; with the key one more connection, live until
    it closes."""
    before = scrape(metrics_server)
    with pytest.raises(websockets.InvalidStatus) as info:
        async with websockets.connect(metrics_server.url):
            pass
    assert info.value.response.status_code == 401
    after = scrape(metrics_server)
    assert after["openasr_connections_rejected_auth_total"] == (
        before["openasr_connections_rejected_auth_total"] + 1
    )
    assert after["openasr_connections_total"] == before["openasr_connections_total"]

    async with websockets.connect(metrics_server.url, additional_headers=AUTH):
        during = scrape(metrics_server)
        assert during["openasr_connections_total"] == before["openasr_connections_total"] + 1
        assert during["openasr_active_connections"] == before["openasr_active_connections"] + 1
    await settles(
        metrics_server, "openasr_active_connections", before["openasr_active_connections"]
    )


async def test_a_session_moves_the_session_audio_and_inference_counters(
    metrics_server: Server,
) -> None:
    """One session of 8 s: created/destroyed, every byte and frame counted, windows submitted
    and completed with their inference time, segments produced; the live-session gauge goes
    up during the session and back afterwards."""
    before = scrape(metrics_server)
    async with websockets.connect(metrics_server.url, additional_headers=AUTH) as ws:
        await ws.send(json.dumps({"type": "speech.config", "payload": config(**WINDOW)}))
        assert json.loads(await ws.recv())["type"] == "speech.config.ack"
        during = scrape(metrics_server)
        assert during["openasr_active_sessions"] == before["openasr_active_sessions"] + 1
    await settles(metrics_server, "openasr_active_sessions", before["openasr_active_sessions"])

    latency_before = scrape_models(metrics_server).get("openasr_window_latency_seconds_count", 0)
    frames = pcm_chunks(tone(TWO_WINDOWS_S), 16000)
    result = await stream(metrics_server.url, frames, config(**TWO_WINDOWS), headers=AUTH)
    result.assert_ended_normally()
    assert result.phrases, result.events
    await settles(metrics_server, "openasr_active_sessions", before["openasr_active_sessions"])
    after = scrape(metrics_server)
    latency_after = scrape_models(metrics_server)["openasr_window_latency_seconds_count"]

    def moved(name: str) -> float:
        return after[name] - before[name]

    assert moved("openasr_sessions_created_total") == 2
    assert moved("openasr_sessions_destroyed_total") == 2
    assert moved("openasr_audio_bytes_received_total") == sum(len(f) for f in frames)
    assert moved("openasr_audio_chunks_received_total") == len(frames)
    assert moved("openasr_inference_jobs_submitted_total") >= 2
    assert moved("openasr_inference_jobs_completed_total") >= 2
    assert moved("openasr_inference_duration_seconds_count") >= 2
    assert moved("openasr_audio_window_duration_seconds_count") >= 2
    assert moved("openasr_transcription_segments_total") >= 1
    assert latency_after - latency_before >= 2
    assert after["openasr_inference_queue_depth"] == before["openasr_inference_queue_depth"]


async def test_a_client_error_is_counted(metrics_server: Server) -> None:
    """Audio before speech.config → a speech.error, and ``openasr_errors_total`` + 1."""
    before = scrape(metrics_server)["openasr_errors_total"]
    async with websockets.connect(metrics_server.url, additional_headers=AUTH) as ws:
        await ws.send(b"\x00\x00" * 160)
        event = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert event["type"] == "speech.error"
    assert scrape(metrics_server)["openasr_errors_total"] == before + 1


async def test_backpressure_is_counted(metrics_server: Server) -> None:
    """8 s of audio at once into a 6 s buffer: a slow_down event, counted."""
    before = scrape(metrics_server)["openasr_backpressure_events_total"]
    async with websockets.connect(metrics_server.url, additional_headers=AUTH) as ws:
        await ws.send(json.dumps({"type": "speech.config", "payload": config(**WINDOW)}))
        await ws.recv()
        for chunk in pcm_chunks(tone(8), 16000):
            await ws.send(chunk)
        while True:
            event = json.loads(await asyncio.wait_for(ws.recv(), 10))
            if event["type"] == "speech.backpressure":
                break
    assert scrape(metrics_server)["openasr_backpressure_events_total"] >= before + 1


async def test_multiprocess_mode_serves_the_same_unlabelled_series(tmp_path: Path) -> None:
    """With PROMETHEUS_MULTIPROC_DIR set (as in the image) /metrics still carries every seed
    series unlabelled and the counters move."""
    server = start_server(
        {
            "WSS_BACKEND": "fake",
            "WSS_VAD": "off",
            "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
            "DATABASE_URL": migrated_db(),
        }
    )
    try:
        before = scrape(server)
        for name in [*SEED_GAUGES, *SEED_COUNTERS]:
            assert name in before, name
        frames = pcm_chunks(tone(TWO_WINDOWS_S), 16000)
        result = await stream(server.url, frames, config(**TWO_WINDOWS))
        result.assert_ended_normally()
        await settles(server, "openasr_sessions_destroyed_total", 1)
        after = scrape(server)
        assert after["openasr_sessions_created_total"] == 1
        assert after["openasr_active_sessions"] == 0
        assert after["openasr_inference_duration_seconds_count"] >= 2
        assert "pid=" not in server.get("/metrics")[1]
    finally:
        server.stop()


async def test_worker_inference_reaches_the_server_metrics_over_redis() -> None:
    """A separate ``runworker`` (FAKE backend) transcribes the windows; the inference histogram
    and completed-jobs counter of the *server's* /metrics move."""
    env = {
        "WSS_BACKEND": "fake",
        "WSS_VAD": "off",
        "REDIS_URL": redis_test_url(10),
        "DATABASE_URL": migrated_db(),
    }
    worker = start_worker(env)
    server = start_server(env)
    try:
        before = {**scrape(server), **scrape_models(server)}
        frames = pcm_chunks(tone(TWO_WINDOWS_S), 16000)
        result = await stream(server.url, frames, config(**TWO_WINDOWS))
        result.assert_ended_normally()
        assert result.phrases, result.events
        after = {**scrape(server), **scrape_models(server)}
        for name in (
            "openasr_inference_duration_seconds_count",
            "openasr_inference_jobs_completed_total",
            "openasr_inference_queue_wait_seconds_count",
            "openasr_inference_real_time_factor_count",
        ):
            assert after[name] >= before.get(name, 0.0) + 2, name
    finally:
        server.stop()
        worker.stop()
