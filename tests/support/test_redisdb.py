"""Tests for tests/support/redisdb.py and scripts/ensure-redis.sh: the suite flushes only the
private Redis it started, never one it merely found."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.support import redisdb
from tests.support.server import free_port, wait_until

pytestmark = pytest.mark.skipif(
    shutil.which("redis-server") is None, reason="redis-server is not installed"
)


@pytest.fixture
def foreign_redis(tmp_path: Path) -> Iterator[str]:
    """A redis-server the suite's script did not start (a developer's own, say)."""
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", ""]
        + ["--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/15"

    def answers() -> bool:
        try:
            return bool(redis.Redis.from_url(url, socket_timeout=1).ping())
        except redis.RedisError:
            return False

    try:
        wait_until(answers, timeout=10, interval=0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_the_private_redis_is_recognised_and_flushed() -> None:
    """The Redis ensure-redis.sh started is the suite's own: a test database of it is emptied."""
    url = redisdb.redis_test_url(15, flush=False)
    if not redisdb.started_by_suite(url):
        pytest.skip("REDIS_TEST_URL names a Redis of the user's choice")
    redis.Redis.from_url(url).set("openasr:test:left-over", 1)
    assert redisdb.flush_if_ours(url)
    assert redis.Redis.from_url(url).dbsize() == 0


def test_a_redis_the_suite_did_not_start_is_never_flushed(
    foreign_redis: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another server (even on a loopback port, even named in REDIS_TEST_URL) keeps its data."""
    redisdb.base_url()  # make sure the suite's own server and its state file exist
    monkeypatch.setenv("REDIS_TEST_URL", foreign_redis)
    monkeypatch.delenv(redisdb.FLUSH_ENV, raising=False)
    client = redis.Redis.from_url(foreign_redis)
    client.set("someone:else", "precious")
    url = redisdb.redis_test_url(15)
    assert url == foreign_redis
    assert not redisdb.started_by_suite(url)
    assert not redisdb.flush_if_ours(url)
    assert client.get("someone:else") == b"precious"


def test_flushing_a_user_named_redis_needs_the_explicit_opt_in(
    foreign_redis: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """REDIS_TEST_FLUSH=1 lets the tests empty databases of a Redis the user named."""
    monkeypatch.setenv(redisdb.FLUSH_ENV, "1")
    client = redis.Redis.from_url(foreign_redis)
    client.set("scratch", 1)
    assert redisdb.flush_if_ours(foreign_redis)
    assert client.dbsize() == 0


def _ensure_redis(extra: dict[str, str]) -> str:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_TEST_URL"}
    out = subprocess.run(
        [str(redisdb.ENSURE_REDIS)],
        env={**env, "PY": sys.executable, **extra},
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return out.stdout.strip()


def test_ensure_redis_prints_a_user_url_unchanged() -> None:
    """With REDIS_TEST_URL set the script only echoes it: it starts nothing."""
    url = "redis://redis.example:6380/0"
    assert _ensure_redis({"REDIS_TEST_URL": url}) == url


@pytest.fixture
def own_redis_url() -> str:
    """The suite's private Redis (skips when the user named another one: starting ours here
    would leave a server running that nobody asked for)."""
    url = redisdb.base_url()
    if not redisdb.started_by_suite(url):
        pytest.skip("REDIS_TEST_URL names a Redis of the user's choice")
    return url


def test_ensure_redis_reuses_its_own_server(own_redis_url: str) -> None:
    """Every run gives the same private server, never the shared one on :6379."""
    assert _ensure_redis({}) == own_redis_url
    assert not own_redis_url.startswith("redis://127.0.0.1:6379/")


def test_ensure_redis_adopts_its_server_after_the_state_file_is_lost(own_redis_url: str) -> None:
    """`make clean` deletes .make: the next run finds the tree's live server again instead of
    starting a second one."""
    saved = redisdb.STATE_FILE.read_text()
    redisdb.STATE_FILE.unlink()
    try:
        assert _ensure_redis({}) == own_redis_url
        assert redisdb.started_by_suite(own_redis_url)
    finally:
        redisdb.STATE_FILE.write_text(saved)
