"""Tests for transcription/inference/heartbeat.py against a real Redis: who is alive, who is free,
and a Redis that does not answer."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.support.redisdb import redis_test_url
from tests.support.server import free_port
from transcription.inference import heartbeat
from transcription.inference.messages import INFERENCE_CHANNEL


@pytest.fixture(autouse=True)
def _no_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(heartbeat, "LOOKUP_CACHE_S", 0.0)
    monkeypatch.setattr(heartbeat, "_cached", None)


def info(worker_id: str, running: int = 0) -> heartbeat.Heartbeat:
    return {
        "worker_id": worker_id,
        "concurrency": 1,
        "running": running,
        "channels": [INFERENCE_CHANNEL],
    }


async def test_the_view_lists_live_workers_and_the_channels_with_a_free_slot() -> None:
    """Two heartbeats, one busy: both alive, the live channel idle thanks to the other."""
    url = redis_test_url(11)
    await heartbeat.beat(url, info("busy", running=1))
    view = await heartbeat.worker_view(url)
    assert view is not None and view.alive == {"busy"} and view.idle_channels == frozenset()
    await heartbeat.beat(url, info("free"))
    view = await heartbeat.worker_view(url)
    assert view is not None and view.alive == {"busy", "free"}
    assert view.idle_channels == {INFERENCE_CHANNEL}
    assert view.at <= time.monotonic()


async def test_a_worker_that_stops_beating_is_gone_within_the_ttl(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No beat for HEARTBEAT_TTL_MS: the worker leaves the view and the index set."""
    monkeypatch.setattr(heartbeat, "HEARTBEAT_TTL_MS", 200)
    url = redis_test_url(11)
    await heartbeat.beat(url, info("dead"))
    assert {w["worker_id"] for w in await heartbeat.live_workers(url)} == {"dead"}
    await asyncio.sleep(0.3)
    assert await heartbeat.live_workers(url) == ()
    assert await heartbeat.get_redis(url).smembers(heartbeat.WORKERS_KEY) == set()


async def test_a_redis_that_does_not_answer_is_none_not_an_empty_deployment() -> None:
    """Connection refused: lookup and view are None (unknown), live_workers is empty."""
    url = f"redis://127.0.0.1:{free_port()}/0"
    assert await heartbeat.lookup(url) is None
    assert await heartbeat.worker_view(url) is None
    assert await heartbeat.live_workers(url) == ()
