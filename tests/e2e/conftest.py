"""Fixtures for end-to-end tests: real daphne processes, real Redis, the real model."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.redisdb import redis_test_url
from tests.support.server import REPO, Process, Server, start_server, start_worker


@functools.cache
def _migrated_template() -> Path:
    """One SQLite database migrated once per test run (each migrate costs ~1.5 s)."""
    path = Path(tempfile.mkdtemp()) / "template.sqlite3"
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--run-syncdb", "--noinput", "-v", "0"],
        cwd=REPO,
        env={**os.environ, "DATABASE_URL": f"sqlite:///{path}"},
        check=True,
    )
    return path


def migrated_db() -> str:
    """A fresh SQLite database with migrations applied (a copy of the template), as a
    DATABASE_URL."""
    path = Path(tempfile.mkdtemp()) / "db.sqlite3"
    shutil.copyfile(_migrated_template(), path)
    return f"sqlite:///{path}"


@pytest.fixture(scope="session")
def model_env(tiny_model_path: Path) -> dict[str, str]:
    return {"WHISPER_MODEL_PATH": str(tiny_model_path)}


@pytest.fixture(scope="session")
def inprocess_server(model_env: dict[str, str]) -> Iterator[Server]:
    """One daphne process with the in-memory layer and the worker inside (the default)."""
    # Admission control is tested on its own (tests/e2e/test_admission.py); here ten paced
    # sessions must all be served even though they exceed one worker's real-time capacity.
    server = start_server(
        {**model_env, "DATABASE_URL": migrated_db(), "WSS_ADMISSION_HEADROOM": "0"}
    )
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_deployment(model_env: dict[str, str]) -> Iterator[tuple[Server, Process]]:
    """daphne + a separate ``runworker`` process over the real Redis channel layer."""
    env = {**model_env, "REDIS_URL": redis_test_url(2), "DATABASE_URL": migrated_db()}
    worker = start_worker(env)
    server = start_server(env)
    yield server, worker
    server.stop()
    worker.stop()


@pytest.fixture(scope="session")
def fake_server() -> Iterator[Server]:
    """daphne with the FAKE backend (protocol tests only: no model, instant 'transcripts'),
    serving the English-only default model alone (WSS_MODELS), so "de" is refused there."""
    server = start_server(
        {
            "WSS_BACKEND": "fake",
            "WSS_VAD": "off",
            "WSS_MODELS": "tiny.en",
            "DATABASE_URL": migrated_db(),
        }
    )
    yield server
    server.stop()
