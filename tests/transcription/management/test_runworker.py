"""Tests for ``manage.py runworker``: SIGTERM stops a worker cleanly (exit 0)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


@pytest.mark.e2e
def test_sigterm_stops_the_worker_with_exit_status_0(tmp_path: Path) -> None:
    """A worker that was listening exits 0 on SIGTERM (Kubernetes' stop signal)."""
    redis_url = os.environ.get("REDIS_TEST_URL")
    if not redis_url:
        pytest.skip("REDIS_TEST_URL is not set (make test sets it)")
    log = tmp_path / "worker.log"
    env = {**os.environ, "REDIS_URL": redis_url, "WSS_BACKEND": "fake"}
    with log.open("w") as out:
        worker = subprocess.Popen(
            [sys.executable, "manage.py", "runworker", "asr.inference"],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while "listening on asr.inference" not in log.read_text():
            assert worker.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=10) == 0, log.read_text()
    finally:
        if worker.poll() is None:
            worker.kill()
