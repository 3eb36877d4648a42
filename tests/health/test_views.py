"""``/health`` and ``/ready`` (``health/views.py``): the seed's JSON fields, cheap on the event
loop, and ``/ready`` 503 whenever a new session could not be served (no model or worker, queue
saturated, sessions full)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import websockets
from django.test import RequestFactory

from health import views
from openasr_site.config import ServerConfig
from tests.e2e.conftest import migrated_db, redis_test_url
from tests.support.client import config
from tests.support.server import start_server, start_worker
from transcription import admission
from transcription.inference import heartbeat, loader
from transcription.readiness import QUEUE_LIMIT
from transcription.registry import NODE


@pytest.fixture
def configure(settings: Any) -> Callable[..., ServerConfig]:
    """Set ``settings.OPENASR`` to the test process's config plus overrides."""
    base = settings.OPENASR

    def apply(**overrides: Any) -> ServerConfig:
        settings.OPENASR = dataclasses.replace(base, **{"redis_url": "", **overrides})
        return settings.OPENASR

    apply()
    return apply


@pytest.fixture(autouse=True)
def _node_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A fresh node (no sessions, nothing pending), a loaded model, no cached Redis client."""
    for name, value in (
        ("sessions", {}),
        ("session_keys", {}),
        ("inference_pending", 0),
        ("draining", False),
    ):
        monkeypatch.setattr(NODE, name, value)
    monkeypatch.setattr(loader, "_override", object())
    monkeypatch.setattr(loader, "_loaded", {})
    monkeypatch.setattr(admission, "POOLS", {})
    monkeypatch.setattr(heartbeat, "_cached", None)
    yield


async def get(view: Callable[..., Any], path: str) -> tuple[int, dict[str, Any]]:
    response = await view(RequestFactory().get(path))
    return response.status_code, json.loads(response.content)


async def test_health_reports_the_seed_fields(configure: Any) -> None:
    """/health: status ok, active sessions, the session limit, windows in flight (the seed's
    fields), and open connections (ours)."""
    configure(max_sessions=7)
    NODE.sessions["s1"] = "chan"
    NODE.inference_pending = 1
    status, body = await get(views.health, "/health")
    assert (status, body) == (
        200,
        {
            "status": "ok",
            "active_sessions": 1,
            "max_sessions": 7,
            "inference_pending": 1,
            "active_connections": 0,
        },
    )


async def test_ready_when_model_queue_and_sessions_are_fine(configure: Any) -> None:
    """/ready: 200 with every seed field true."""
    configure()
    status, body = await get(views.ready, "/ready")
    models = body.pop("models")
    assert (status, body) == (
        200,
        {
            "status": "ready",
            "model_ready": True,
            "queue_ok": True,
            "sessions_available": True,
            "redis_ok": True,
        },
    )
    assert models and all(models.values())


@pytest.mark.parametrize(
    ("setup", "field"),
    [
        (lambda: setattr(loader, "_override", None), "model_ready"),
        (lambda: setattr(NODE, "inference_pending", QUEUE_LIMIT), "queue_ok"),
        (lambda: NODE.sessions.update({"a": "x", "b": "y"}), "sessions_available"),
        (lambda: setattr(NODE, "draining", True), "sessions_available"),
    ],
    ids=["model-not-loaded", "queue-saturated", "sessions-full", "draining"],
)
async def test_ready_is_503_naming_what_failed(
    configure: Any, setup: Callable[[], None], field: str
) -> None:
    """/ready: 503 "not_ready" with the failing field false and the others true."""
    configure(max_sessions=2)
    setup()
    status, body = await get(views.ready, "/ready")
    assert status == 503 and body["status"] == "not_ready"
    assert body[field] is False
    assert all(v is True for k, v in body.items() if k not in {"status", field, "models"})
    assert all(body["models"].values()) is (field != "model_ready")


async def test_ready_never_blocks_the_loop_even_when_redis_is_unreachable(
    configure: Any,
) -> None:
    """With a Redis that accepts but never answers, the worker lookup waits out its timeout
    asynchronously (model_ready and redis_ok false, 503) while the event loop keeps ticking;
    the answer is cached, so a second probe is instant."""

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # never replies
        writer.close()

    black_hole = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = black_hole.sockets[0].getsockname()[1]
    configure(redis_url=f"redis://127.0.0.1:{port}/0")
    gaps: list[float] = []

    async def ticker() -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.01)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    task = asyncio.ensure_future(ticker())
    try:
        status, body = await get(views.ready, "/ready")
        started = time.monotonic()
        again, _ = await get(views.ready, "/ready")
        second_s = time.monotonic() - started
    finally:
        task.cancel()
        black_hole.close()
    assert (status, body["model_ready"], body["redis_ok"]) == (503, False, False)
    assert again == 503 and second_s < 0.05
    assert len(gaps) > 20 and max(gaps) < 0.25, (len(gaps), max(gaps, default=0))


# --- against real servers ---


@pytest.mark.e2e
async def test_ready_is_503_while_the_only_session_is_open() -> None:
    """WSS_MAX_SESSIONS=1 and one open session: /ready 503 with sessions_available false,
    /health counts it; 200 again once it closes."""
    server = start_server(
        {"WSS_BACKEND": "fake", "WSS_MAX_SESSIONS": "1", "DATABASE_URL": migrated_db()}
    )
    try:
        async with websockets.connect(server.url) as ws:
            await ws.send(json.dumps({"type": "speech.config", "payload": config()}))
            assert json.loads(await ws.recv())["type"] == "speech.config.ack"
            status, body = server.get("/ready")
            assert status == 503 and body["sessions_available"] is False
            assert body["model_ready"] is True and body["queue_ok"] is True
            assert server.get("/health") == (
                200,
                {
                    "status": "ok",
                    "active_sessions": 1,
                    "max_sessions": 1,
                    "inference_pending": 0,
                    "active_connections": 1,
                },
            )
        server.wait_ready(timeout=10)
    finally:
        server.stop()


@pytest.mark.e2e
def test_ready_with_redis_follows_the_worker() -> None:
    """With REDIS_URL and no runworker: /ready 503, model_ready false (/health still 200);
    once a worker (FAKE backend) heartbeats: 200."""
    env = {
        "WSS_BACKEND": "fake",
        "REDIS_URL": redis_test_url(9),
        "DATABASE_URL": migrated_db(),
    }
    server = start_server(env, wait="/health")
    worker_process = None
    try:
        status, body = server.get("/ready")
        assert status == 503 and body["model_ready"] is False, body
        assert body["sessions_available"] is True
        assert server.get("/health")[0] == 200
        worker_process = start_worker(env)
        server.wait_ready(timeout=60)
        assert server.get("/ready")[1]["model_ready"] is True
    finally:
        server.stop()
        if worker_process is not None:
            worker_process.stop()
