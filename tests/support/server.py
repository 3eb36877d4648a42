"""Real server processes for tests and benchmarks: daphne (``openasr_site.server``) and
``manage.py runworker``, on free loopback ports, with their logs kept for failure reports."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def base_env(**overrides: str) -> dict[str, str]:
    """Environment for a child server: the test's env plus quiet, test-friendly defaults."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WSS_", "REDIS_URL"))}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "openasr_site.settings",
            "WSS_LOG_LEVEL": "info",
            "PYTHONUNBUFFERED": "1",
            "WSS_INFERENCE_THREADS": "2",
            "WSS_BEAM_SIZE": "1",
        }
    )
    env.update(overrides)
    return env


@dataclass
class Process:
    """A child process with its log file; ``stop()`` is idempotent."""

    args: list[str]
    env: dict[str, str]
    name: str
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path = field(default_factory=lambda: Path(tempfile.mkstemp(suffix=".log")[1]))

    def start(self) -> Process:
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            self.args, cwd=REPO, env=self.env, stdout=self._log, stderr=subprocess.STDOUT
        )
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)

    def stop(self, timeout: float = 15) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if hasattr(self, "_log"):
            self._log.close()


@dataclass
class Server(Process):
    port: int = 0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/transcribe"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str) -> tuple[int, Any]:
        try:
            with urllib.request.urlopen(self.http + path, timeout=5) as resp:
                body = resp.read()
                status = resp.status
        except urllib.error.HTTPError as exc:
            body, status = exc.read(), exc.code
        text = body.decode(errors="replace")
        try:
            return status, json.loads(text)
        except json.JSONDecodeError:
            return status, text

    def scrape(self) -> dict[str, float]:
        """The unlabelled samples of ``/metrics`` by sample name (the seed's series are
        unlabelled; docs/METRICS.md)."""
        status, text = self.get("/metrics")
        if status != 200:
            raise RuntimeError(f"/metrics answered {status}")
        return {
            s.name: s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if not s.labels
        }

    def wait_ready(self, timeout: float = 60, path: str = "/ready") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"{self.name} exited:\n{self.log()[-4000:]}")
            try:
                status, _ = self.get(path)
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"{self.name} not ready after {timeout} s:\n{self.log()[-4000:]}")


def start_server(
    env: Mapping[str, str] | None = None, *, wait: str | None = "/ready", timeout: float = 90
) -> Server:
    """Start ``python -m openasr_site.server`` on a free port and wait for ``wait``."""
    port = free_port()
    server = Server(
        args=[
            sys.executable,
            "-m",
            "openasr_site.server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=base_env(**dict(env or {})),
        name=f"server:{port}",
        port=port,
    )
    server.start()
    if wait:
        try:
            server.wait_ready(timeout, wait)
        except Exception:
            server.stop()
            raise
    return server


def start_worker(env: Mapping[str, str]) -> Process:
    """Start ``manage.py runworker asr.inference`` (needs REDIS_URL in ``env``)."""
    worker = Process(
        args=[sys.executable, "manage.py", "runworker", "asr.inference"],
        env=base_env(**dict(env)),
        name="worker",
    )
    return worker.start()


def wait_until(predicate: Any, timeout: float = 30, interval: float = 0.2) -> None:
    """Poll ``predicate`` until it is true; TimeoutError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise TimeoutError("condition not met")


async def async_wait_until(predicate: Any, timeout: float = 30, interval: float = 0.2) -> None:
    """``wait_until`` for a coroutine: the event loop keeps running between polls."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(interval)
    raise TimeoutError("condition not met")
