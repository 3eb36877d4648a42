"""The Redis the tests use, and the rule that keeps a developer's data safe: the suite flushes a
database only on the private redis-server that ``scripts/ensure-redis.sh`` started.

``REDIS_TEST_URL`` names the Redis (``make test`` sets it from ``ensure-redis.sh``; when it is
unset the script is run here, so a lone ``pytest tests/e2e/...`` gets the private server too).
Whether that Redis is the suite's own is not guessed from the URL: the server's ``INFO`` run_id
(random per server start) must equal the one ``ensure-redis.sh`` recorded when it started it. A
Redis the user named in ``REDIS_TEST_URL`` is flushed only with ``REDIS_TEST_FLUSH=1``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import redis

REPO = Path(__file__).resolve().parents[2]
ENSURE_REDIS = REPO / "scripts" / "ensure-redis.sh"
STATE_FILE = REPO / ".make" / "test-redis.env"
FLUSH_ENV = "REDIS_TEST_FLUSH"


def base_url() -> str:
    """``REDIS_TEST_URL``, or the suite's private Redis (started now if needed)."""
    url = os.environ.get("REDIS_TEST_URL", "").strip()
    if not url:
        out = subprocess.run(
            [str(ENSURE_REDIS)],
            env={**os.environ, "PY": sys.executable},
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        )
        url = out.stdout.strip()
        # Child processes (servers, workers, nested tools) see the same Redis.
        os.environ["REDIS_TEST_URL"] = url
    return url


def redis_test_url(db: int, *, flush: bool = True) -> str:
    """Database ``db`` of the test Redis; emptied first (``flush``) when the suite may do so."""
    parts = urlsplit(base_url())
    url = urlunsplit(parts._replace(path=f"/{db}"))
    if flush:
        flush_if_ours(url)
    return url


def started_by_suite(url: str) -> bool:
    """True when the Redis at ``url`` is the very server ``ensure-redis.sh`` started."""
    recorded = _recorded_run_id()
    if not recorded:
        return False
    try:
        info = redis.Redis.from_url(url, socket_timeout=2).info("server")
    except redis.RedisError:
        return False
    return str(info.get("run_id", "")) == recorded


def may_flush(url: str) -> bool:
    """Whether the tests may empty databases of the Redis at ``url``."""
    return started_by_suite(url) or os.environ.get(FLUSH_ENV, "").strip() == "1"


def flush_if_ours(url: str) -> bool:
    """``FLUSHDB`` on ``url`` if the suite may (see ``may_flush``); returns whether it did.
    Otherwise the database is left as it is: tests there may meet stale keys, never the other
    way round."""
    if not may_flush(url):
        return False
    redis.Redis.from_url(url, socket_timeout=5).flushdb()
    return True


def _recorded_run_id() -> str:
    try:
        lines = STATE_FILE.read_text().splitlines()
    except FileNotFoundError:
        return ""
    for line in lines:
        name, _, value = line.partition("=")
        if name == "RUN_ID":
            return value.strip()
    return ""
