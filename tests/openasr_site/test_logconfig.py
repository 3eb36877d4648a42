"""``openasr_site/logconfig.py``: text or JSON lines with level, message, timestamp and, inside a
session, session_id; never audio or keys; ``WSS_LOG_LEVEL`` respected."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from typing import Any

import pytest
import websockets

from openasr_site.logconfig import (
    ContextFilter,
    JsonFormatter,
    build_logging_config,
    session_id_var,
)
from tests.e2e.conftest import migrated_db
from tests.e2e.test_protocol_server import tone
from tests.support.client import config, pcm_chunks, stream
from tests.support.server import Server, start_server, wait_until

API_KEY = "logtest-key-5f0c1d2e3a4b5c6d7e8f"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
WINDOW = {"window_duration_ms": 2000, "overlap_duration_ms": 500}


def record(message: str = "hello %s", *args: Any, level: int = logging.INFO) -> logging.LogRecord:
    return logging.LogRecord("openasr.test", level, __file__, 1, message, args or ("x",), None)


def test_json_line_has_the_seed_fields() -> None:
    """level (lower case), message (formatted), an ISO-8601 UTC timestamp with ms and Z."""
    line = json.loads(JsonFormatter().format(record(level=logging.WARNING)))
    assert line["level"] == "warning" and line["message"] == "hello x"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["timestamp"])
    assert "session_id" not in line


def test_session_id_comes_from_the_context() -> None:
    """Inside a session (context variable set) every line carries its id."""
    token = session_id_var.set("abc123")
    try:
        rec = record()
        ContextFilter().filter(rec)
    finally:
        session_id_var.reset(token)
    assert json.loads(JsonFormatter().format(rec))["session_id"] == "abc123"


async def test_a_loop_callback_does_not_inherit_a_session_context() -> None:
    """A plain loop callback scheduled from a session's task (daphne's reactor does this) is
    not that session's work: no session_id on its lines."""
    seen: list[Any] = []

    def callback() -> None:
        rec = record()
        ContextFilter().filter(rec)
        seen.append(rec.session_id)

    async def session_task() -> None:
        session_id_var.set("s1")
        asyncio.get_running_loop().call_soon(callback)

    await asyncio.ensure_future(session_task())
    await asyncio.sleep(0)
    assert seen == [None]


@pytest.mark.parametrize(
    ("level", "expected"),
    [("trace", "DEBUG"), ("debug", "DEBUG"), ("info", "INFO"), ("warn", "WARNING")],
)
def test_seed_level_names_map_to_logging_levels(level: str, expected: str) -> None:
    """The seed's trace/debug/info/warn/error names set the root level."""
    assert build_logging_config(level, "json")["root"]["level"] == expected


def json_lines(server: Server) -> list[dict[str, Any]]:
    """Every line of the server's output, parsed (fails on a line that is not JSON)."""
    lines = []
    for raw in server.log().splitlines():
        if raw.strip():
            try:
                lines.append(json.loads(raw))
            except json.JSONDecodeError:
                pytest.fail(f"not a JSON line: {raw!r}")
    return lines


@pytest.mark.e2e
async def test_json_logs_of_a_real_session() -> None:
    """WSS_LOG_FORMAT=json: every line is JSON with level/message/timestamp; the session's
    lines carry its id; a later connection's lines do not inherit it; the API key and the
    audio never appear."""
    server = start_server(
        {
            "WSS_BACKEND": "fake",
            "WSS_VAD": "off",
            "WSS_LOG_FORMAT": "json",
            "WSS_LOG_LEVEL": "debug",
            "WSS_API_KEY": API_KEY,
            "DATABASE_URL": migrated_db(),
        }
    )
    try:
        result = await stream(
            server.url, pcm_chunks(tone(3), 16000), config(**WINDOW), headers=AUTH
        )
        sid = result.session_id
        wait_until(lambda: "session closed" in server.log(), timeout=10)
        async with websockets.connect(server.url, additional_headers=AUTH) as ws:
            await ws.send(json.dumps({"type": "speech.end", "payload": {}}))
            await asyncio.wait_for(ws.recv(), 10)  # INVALID_STATE, logged as a client error
        wait_until(lambda: "client error" in server.log(), timeout=10)
    finally:
        server.stop()
    lines = json_lines(server)
    for line in lines:
        assert {"level", "message", "timestamp"} <= line.keys(), line
    session_lines = [line for line in lines if line.get("session_id") == sid]
    messages = " | ".join(line["message"] for line in session_lines)
    assert "session created" in messages and "session closed" in messages
    assert "window-timing" in messages  # debug lines are on at WSS_LOG_LEVEL=debug
    stray = [line for line in lines if "client error" in line["message"]]
    assert stray and all(line.get("session_id") != sid for line in stray)
    text = server.log()
    assert API_KEY not in text and API_KEY[:12] not in text
    assert max(len(raw) for raw in text.splitlines()) < 2000  # no audio payloads


@pytest.mark.e2e
async def test_log_level_is_respected() -> None:
    """WSS_LOG_LEVEL=error: a whole session logs nothing at info or debug."""
    server = start_server(
        {
            "WSS_BACKEND": "fake",
            "WSS_VAD": "off",
            "WSS_LOG_FORMAT": "json",
            "WSS_LOG_LEVEL": "error",
            "DATABASE_URL": migrated_db(),
        }
    )
    try:
        result = await stream(server.url, pcm_chunks(tone(3), 16000), config(**WINDOW))
        assert result.final is not None
    finally:
        server.stop()
    levels = {line["level"] for line in json_lines(server)}
    assert levels <= {"error", "critical"}, levels
