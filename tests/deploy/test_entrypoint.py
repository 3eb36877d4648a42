"""docker/entrypoint.sh on this machine: the exact server and worker commands of the image
start (fake backend, no model), and the script's guards refuse bad configurations."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis

from tests.deploy.manifests import ENTRYPOINT
from tests.e2e.conftest import migrated_db
from tests.support.server import Process, Server, base_env, free_port, wait_until

VENV_BIN = str(Path(sys.executable).parent)
SERVER_START_S = 30
WORKER_ALIVE_S = 8  # longer than channels_redis's 5 s blocking pop: one idle poll cycle


def redis_url() -> str:
    """Database 13 of the test Redis (REDIS_TEST_URL's host and port, else 127.0.0.1:6379)."""
    parts = urlsplit(os.environ.get("REDIS_TEST_URL", "redis://127.0.0.1:6379/0"))
    url = f"redis://{parts.hostname}:{parts.port or 6379}/13"
    try:
        redis.Redis.from_url(url, socket_timeout=2).ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis at {url} does not answer ({exc}): start it (make test does)")
    return url


def entrypoint_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    """What the image's environment provides, pointed at ``tmp_path``: python on PATH,
    OPENASR_VAR_DIR, PROMETHEUS_MULTIPROC_DIR, the role file; the fake backend (no model)."""
    return base_env(
        PATH=f"{VENV_BIN}:{os.environ['PATH']}",
        OPENASR_VAR_DIR=str(tmp_path / "var"),
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "prometheus"),
        OPENASR_ROLE_FILE=str(tmp_path / "role"),
        WSS_BACKEND="fake",
        **overrides,
    )


def run_entrypoint(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ENTRYPOINT), *args], env=env, capture_output=True, text=True, timeout=30
    )


def test_server_role_starts_serves_health_and_metrics_and_drains_on_sigterm(
    tmp_path: Path,
) -> None:
    """`entrypoint.sh server` answers /health within 30 s, serves /metrics in multiprocess
    mode (stale files of a previous run removed), passes its healthcheck, exits 0 on SIGTERM."""
    port = free_port()
    env = entrypoint_env(
        tmp_path,
        WSS_HOST="127.0.0.1",
        WSS_PORT=str(port),
        WSS_SHUTDOWN_GRACE_S="1",
        DATABASE_URL=migrated_db(),  # the image's migrate role runs first in every deployment
    )
    stale = tmp_path / "prometheus" / "counter_999999.db"
    stale.parent.mkdir()
    stale.write_bytes(b"stale")
    server = Server(args=[str(ENTRYPOINT), "server"], env=env, name="entrypoint-server", port=port)
    server.start()
    try:
        server.wait_ready(SERVER_START_S, "/health")
        assert not stale.exists()
        status, metrics = server.get("/metrics")
        assert status == 200
        assert re.search(r"^openasr_active_sessions 0\.0$", metrics, re.MULTILINE), metrics
        assert (tmp_path / "role").read_text().strip() == "server"
        check = run_entrypoint(env, "healthcheck")
        assert check.returncode == 0, check.stderr
        server.kill(signal.SIGTERM)
        assert server.proc is not None and server.proc.returncode == 0, server.log()[-3000:]
    finally:
        server.stop()


def test_server_role_alone_migrates_its_default_sqlite_in_the_var_dir(tmp_path: Path) -> None:
    """Without DATABASE_URL the server migrates SQLite in OPENASR_VAR_DIR (the image's writable
    volume; /app is read-only) and starts: the image runs alone with its embedded defaults."""
    port = free_port()
    env = entrypoint_env(tmp_path, WSS_HOST="127.0.0.1", WSS_PORT=str(port))
    env.pop("DATABASE_URL", None)
    server = Server(args=[str(ENTRYPOINT), "server"], env=env, name="entrypoint-sqlite", port=port)
    server.start()
    try:
        server.wait_ready(SERVER_START_S, "/health")
        assert (tmp_path / "var" / "db.sqlite3").stat().st_size > 0
    finally:
        server.stop()


def test_worker_role_starts_and_listens(tmp_path: Path) -> None:
    """`entrypoint.sh worker` logs that it listens on asr.inference, stays alive, and its
    healthcheck finds its Redis heartbeat."""
    url = redis_url()
    env = entrypoint_env(tmp_path, REDIS_URL=url)
    worker = Process(args=[str(ENTRYPOINT), "worker"], env=env, name="entrypoint-worker")
    worker.start()
    try:
        pattern = re.compile(r"inference worker \S+ listening on asr\.inference")
        try:
            wait_until(lambda: pattern.search(worker.log()) or not worker.alive(), timeout=30)
        except TimeoutError:
            pytest.fail(f"worker did not listen within 30 s:\n{worker.log()[-3000:]}")
        assert worker.alive(), worker.log()[-3000:]
        time.sleep(WORKER_ALIVE_S)
        assert worker.alive(), f"worker died:\n{worker.log()[-3000:]}"
        check = run_entrypoint(env, "healthcheck")
        assert check.returncode == 0, check.stderr
    finally:
        worker.stop()


@pytest.mark.parametrize("name", ["DJANGO_SECRET_KEY", "WSS_API_KEY", "DATABASE_URL"])
def test_refuses_the_example_secret_placeholders(tmp_path: Path, name: str) -> None:
    """A CHANGE-ME value from k8s/secret.example.yaml stops the container, naming the variable."""
    result = run_entrypoint(entrypoint_env(tmp_path, **{name: "x-CHANGE-ME-x"}), "server")
    assert result.returncode == 64
    assert name in result.stderr and "placeholder" in result.stderr


def test_server_with_redis_needs_a_shared_secret_key(tmp_path: Path) -> None:
    """Scale-out (REDIS_URL) without DJANGO_SECRET_KEY is refused: checkpoints must verify on
    every node."""
    env = entrypoint_env(tmp_path, REDIS_URL="redis://127.0.0.1:6379/13")
    env.pop("DJANGO_SECRET_KEY", None)
    result = run_entrypoint(env, "server")
    assert result.returncode == 64
    assert "DJANGO_SECRET_KEY" in result.stderr


def test_worker_without_redis_is_refused(tmp_path: Path) -> None:
    """The worker role needs the channel layer."""
    result = run_entrypoint(entrypoint_env(tmp_path), "worker")
    assert result.returncode == 64
    assert "REDIS_URL" in result.stderr


@pytest.mark.parametrize("args", [[], ["serve"], ["worker", "extra"], ["manage"]])
def test_unknown_roles_print_usage(tmp_path: Path, args: list[str]) -> None:
    """A wrong role or argument count exits 64 with the usage line."""
    result = run_entrypoint(entrypoint_env(tmp_path), *args)
    assert result.returncode == 64
    assert "usage:" in result.stderr


def _fake_app(tmp_path: Path, image_model: str | None) -> Path:
    """A copy of the script in an app tree whose manage.py prints the model settings."""
    app = tmp_path / "app"
    (app / "docker").mkdir(parents=True)
    (app / "models").mkdir()
    shutil.copy(ENTRYPOINT, app / "docker" / "entrypoint.sh")
    (app / "manage.py").write_text(
        "import os, sys\nprint(os.environ.get('WSS_MODEL', '<unset>'), *sys.argv[1:])\n"
    )
    if image_model is not None:
        (app / "models" / "IMAGE_MODEL").write_text(image_model + "\n")
    return app / "docker" / "entrypoint.sh"


@pytest.mark.parametrize(
    ("image_model", "overrides", "expected"),
    [
        ("base-q8_0", {}, "base-q8_0"),
        ("base-q8_0", {"WSS_MODEL": ""}, "base-q8_0"),
        ("base-q8_0", {"WSS_MODEL": "tiny.en"}, "tiny.en"),
        ("base-q8_0", {"WHISPER_MODEL_PATH": "/models/x.bin"}, "<unset>"),
        (None, {"WSS_MODEL": ""}, "<unset>"),
    ],
)
def test_image_model_is_the_default(
    tmp_path: Path, image_model: str | None, overrides: dict[str, str], expected: str
) -> None:
    """models/IMAGE_MODEL (written by the build) is WSS_MODEL unless WSS_MODEL or
    WHISPER_MODEL_PATH is set; an empty WSS_MODEL counts as unset."""
    script = _fake_app(tmp_path, image_model)
    env = entrypoint_env(tmp_path, **overrides)
    result = subprocess.run(
        [str(script), "manage", "check"], env=env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [expected, "check"]


def test_worker_key_prefix_matches_the_readiness_module() -> None:
    """The worker healthcheck looks for the heartbeat keys the workers write."""
    try:
        from transcription.inference.heartbeat import WORKER_KEY_PREFIX
    except ImportError:  # before heartbeats moved into inference/ (issue #15)
        from transcription.readiness import WORKER_KEY_PREFIX

    match = re.search(r'^WORKER_KEY_PREFIX="([^"]+)"$', ENTRYPOINT.read_text(), re.MULTILINE)
    assert match is not None and match.group(1) == WORKER_KEY_PREFIX
