"""The built image, run as operators run it (``make image-test``): the `server` role alone with
its embedded defaults, and `migrate` + `server` + `worker` against Redis and PostgreSQL, on a
read-only root filesystem as UID 10001; real speech in, the right words out; SIGTERM drains."""

from __future__ import annotations

import asyncio
import json
import secrets
import signal
import time
from typing import Any

import pytest
import websockets

from tests.deploy.image.podman import (
    IMAGE_UID,
    Container,
    http_get,
    nginx_proxy,
    podman,
    postgres_database,
    private_redis,
    run_once,
    running,
)
from tests.deploy.manifests import PRIVATE_PATHS
from tests.support.client import StreamResult, config, pcm_chunks, stream
from tests.support.server import free_port, wait_until
from tests.support.speech import SAMPLE_RATE_HZ, SENTENCES, compose, to_pcm16
from tests.support.wer import wer

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

VOICE = "flite-rms"
SPEECH = compose(SENTENCES[:3], [VOICE])
# tiny.en on these clear sentences makes 0-2 word errors in 34 words (measured here); the
# bound catches a wrong model, a broken audio path or lost windows, not a word or two.
MAX_WER = 0.15
READY_TIMEOUT_S = 120
# WSS_SHUTDOWN_GRACE_S of the scale-out run (the compose and k8s value); the server must exit
# within it, plus the 0.5 s close and a margin for the container runtime.
GRACE_S = 25
CLOSE_NORMAL = 1000
PUBLIC_PAGES = ("/", "/static/openasr/demo.js", "/static/openasr/pcm-worklet.js")


def wait_ready(container: Container, port: int, timeout: float = READY_TIMEOUT_S) -> float:
    """Seconds from ``podman run`` to the first 200 on /ready; fails with the container's log
    if it exits or the time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if http_get(port, "/ready", timeout=2)[0] == 200:
            return time.monotonic() - container.started_at
        if not container.running():
            pytest.fail(f"{container.role[0]} exited before /ready:\n{container.logs()[-4000:]}")
        time.sleep(0.2)
    pytest.fail(f"/ready not 200 within {timeout} s:\n{container.logs()[-4000:]}")


def transcribe(port: int, *, key: str | None = None, realtime: bool = False) -> StreamResult:
    headers = {"Authorization": f"Bearer {key}"} if key else None
    frames = pcm_chunks(to_pcm16(SPEECH.audio), SAMPLE_RATE_HZ)
    return asyncio.run(
        stream(
            f"ws://127.0.0.1:{port}/transcribe",
            frames,
            config(),
            headers=headers,
            realtime=realtime,
            speed=None if realtime else 4.0,
            timeout=120,
        )
    )


def assert_words(result: StreamResult) -> float:
    """The stream ended normally and its phrases are the spoken words; returns the WER."""
    assert result.errors == [], result.errors
    assert result.final is not None, result.events[-5:]
    assert result.close_code == CLOSE_NORMAL
    error_rate = wer(SPEECH.text, result.phrase_text)
    assert error_rate <= MAX_WER, f"WER {error_rate:.2%}: {result.phrase_text!r}"
    return round(error_rate, 4)


PROCESSES = (
    "import os\n"
    "for pid in filter(str.isdigit, os.listdir('/proc')):\n"
    "    try:\n"
    "        status = open(f'/proc/{pid}/status').read()\n"
    "        cmd = ' '.join(open(f'/proc/{pid}/cmdline').read().replace('\\0', ' ').split())\n"
    "    except OSError:\n"
    "        continue\n"
    "    uid = next(l.split()[1:] for l in status.splitlines() if l.startswith('Uid:'))\n"
    "    print(' '.join(uid), cmd)\n"
)


def assert_unprivileged_on_a_read_only_root(container: Container) -> None:
    """Every process (tini, the role's Python, this probe) runs as 10001; the root filesystem
    refuses writes; /tmp and /var/lib/openasr take them."""
    result = container.exec("python", "-c", PROCESSES)
    assert result.returncode == 0, result.stderr
    lines = [line.split(maxsplit=4) for line in result.stdout.splitlines()]
    assert any("tini" in line[-1] for line in lines), result.stdout
    assert any("python" in line[-1] for line in lines), result.stdout
    for real, effective, saved, fs, *_ in lines:
        assert {real, effective, saved, fs} == {str(IMAGE_UID)}, result.stdout
    for path in ("/app/probe", "/etc/probe", "/opt/venv/probe"):
        denied = container.exec("touch", path)
        assert denied.returncode != 0 and "Read-only file system" in denied.stderr, path
    for path in ("/tmp/probe", "/var/lib/openasr/probe"):
        assert container.exec("touch", path).returncode == 0, path
    inspect = json.loads(podman("inspect", container.name).stdout)[0]
    assert inspect["HostConfig"]["ReadonlyRootfs"] is True


def test_image_metadata(image: str, measured: dict[str, Any]) -> None:
    """The image runs as 10001:10001 under tini with the server role by default, keeps its
    HEALTHCHECK (docker format), and no build-time pip configuration is left in it."""
    info = json.loads(podman("image", "inspect", image).stdout)[0]
    measured["image_size_mb"] = round(info["Size"] / 1e6)
    assert info["Config"]["User"] == f"{IMAGE_UID}:{IMAGE_UID}"
    assert info["Config"]["Entrypoint"][:2] == ["/usr/bin/tini", "--"]
    assert info["Config"]["Cmd"] == ["server"]
    health = (
        json.loads(
            podman("image", "inspect", "--format", "{{json .HealthCheck}}", image).stdout or "null"
        )
        or info.get("HealthCheck")
        or info["Config"].get("Healthcheck")
    )
    assert health and "healthcheck" in " ".join(health["Test"]), health
    # podman build -v leaves empty mount points behind; scripts/image-pip-config.py keeps them
    # under /tmp (a tmpfs in every deployment) except the empty /etc/pip.conf.
    probe = (
        "test ! -s /etc/pip.conf && test -s /etc/ssl/certs/ca-certificates.crt"
        " && test -z \"$(ls -A /opt | grep -v '^venv$')\""
    )
    result = podman(
        "run", "--rm", "--no-healthcheck", "--entrypoint", "sh", image, "-c", probe, check=False
    )
    assert result.returncode == 0, "build-time pip files were left in the image"


def test_server_role_alone_serves_with_the_embedded_defaults(
    image: str, measured: dict[str, Any]
) -> None:
    """`podman run --read-only IMAGE` (only WSS_PORT chosen: the host network is shared)
    migrates its SQLite key table in /var/lib/openasr, turns ready, serves the captions page,
    transcribes speech, runs unprivileged, and exits 0 soon after SIGTERM."""
    port = free_port()
    with running(image, "server", env={"WSS_PORT": str(port)}) as server:
        measured["server_alone_first_ready_s"] = round(wait_ready(server, port), 1)
        assert http_get(port, "/health")[0] == 200
        status, page = http_get(port, "/")
        assert status == 200 and "<html" in page.lower()
        assert http_get(port, "/static/openasr/demo.js")[0] == 200
        assert server.exec("test", "-s", "/var/lib/openasr/db.sqlite3").returncode == 0
        measured["server_alone_wer"] = assert_words(transcribe(port))
        assert_unprivileged_on_a_read_only_root(server)
        started = time.monotonic()
        server.signal(signal.SIGTERM)
        assert server.wait_exit(timeout=15) == 0, server.logs()[-3000:]
        measured["server_alone_sigterm_exit_s"] = round(time.monotonic() - started, 1)


def test_scale_out_roles_against_redis_and_postgresql(image: str, measured: dict[str, Any]) -> None:
    """migrate, then a worker and a server (Redis with a password, PostgreSQL): /ready once a
    worker heartbeat is fresh; docker/nginx.conf in front serves the captions page and 404s
    /admin/, /metrics and the probes; a database key made with `manage apikey create` streams
    speech through nginx to the right words, a wrong key gets 401, healthchecks pass, and
    SIGTERM mid-session lets the session finish before the server exits 0 within
    WSS_SHUTDOWN_GRACE_S."""
    with private_redis() as redis_url, postgres_database() as database_url:
        secret = {"DJANGO_SECRET_KEY": secrets.token_urlsafe(50), "DATABASE_URL": database_url}
        port = free_port()
        settings = {
            "DJANGO_ALLOWED_HOSTS": "localhost,127.0.0.1",
            "REDIS_URL": redis_url,
            "WSS_API_KEY": secrets.token_urlsafe(40),
            "WSS_REQUIRE_AUTH": "true",
            "WSS_PORT": str(port),
            "WSS_SHUTDOWN_GRACE_S": str(GRACE_S),
        }
        run_once(image, "migrate", env=secret)
        key = run_once(image, "manage", "apikey", "create", "image-test", env=secret)
        key = key.strip().splitlines()[-1]
        with (
            running(image, "worker", env={**settings, "REDIS_URL": redis_url}) as worker,
            running(image, "server", env={**secret, **settings}) as server,
        ):
            measured["scale_out_first_ready_s"] = round(wait_ready(server, port), 1)
            for container in (server, worker):
                assert_unprivileged_on_a_read_only_root(container)
                check = podman("healthcheck", "run", container.name, check=False)
                assert check.returncode == 0, f"{container.role[0]}: {check.stdout}{check.stderr}"
            assert _upgrade_status(port, "not-a-key") == 401
            with nginx_proxy(port) as public:
                for path in PUBLIC_PAGES:
                    assert http_get(public, path)[0] == 200, f"nginx {path}"
                for path in PRIVATE_PATHS:
                    assert http_get(public, path)[0] == 404, f"nginx exposes {path}"
                    assert http_get(port, path)[0] != 0
                assert _upgrade_status(public, "not-a-key") == 401
                result, drain = _stream_through_a_sigterm(server, port, public, key)
            measured["scale_out_wer"] = assert_words(result)
            assert drain["ready_while_draining"] == 503
            assert drain["exit_code"] == 0, server.logs()[-3000:]
            assert drain["exit_s"] < GRACE_S + 3
            measured["scale_out_sigterm_mid_session_exit_s"] = drain["exit_s"]
            # runworker has no SIGTERM handler: it dies of the signal (143 = 128 + 15) at
            # once, and the servers re-send a window in flight (k8s/worker.yaml).
            started = time.monotonic()
            worker.signal(signal.SIGTERM)
            assert worker.wait_exit(timeout=30) in {0, 128 + signal.SIGTERM}, worker.logs()[-3000:]
            measured["worker_sigterm_exit_s"] = round(time.monotonic() - started, 1)


def _upgrade_status(port: int, key: str) -> int:
    async def attempt() -> int:
        try:
            async with websockets.connect(
                f"ws://127.0.0.1:{port}/transcribe",
                additional_headers={"Authorization": f"Bearer {key}"},
            ):
                return 101
        except websockets.InvalidStatus as exc:
            return exc.response.status_code

    return asyncio.run(attempt())


def _stream_through_a_sigterm(
    server: Container, port: int, public: int, key: str
) -> tuple[StreamResult, dict[str, Any]]:
    """Stream the speech in real time through nginx (``public``) and SIGTERM the server 2 s
    in; returns the stream and what the drain did: the server's /ready meanwhile, its exit
    code, seconds from SIGTERM to exit."""
    drain: dict[str, Any] = {}

    async def scenario() -> StreamResult:
        session = asyncio.ensure_future(
            asyncio.to_thread(transcribe, public, key=key, realtime=True)
        )
        await asyncio.sleep(2)
        drain["sigterm_at"] = time.monotonic()
        await asyncio.to_thread(server.signal, signal.SIGTERM)
        await asyncio.sleep(0.5)
        drain["ready_while_draining"] = (await asyncio.to_thread(http_get, port, "/ready"))[0]
        return await session

    result = asyncio.run(scenario())
    wait_until(lambda: not server.running(), timeout=GRACE_S + 10)
    drain["exit_code"] = int(server.state()["ExitCode"])  # type: ignore[call-overload]
    drain["exit_s"] = round(time.monotonic() - drain["sigterm_at"], 1)
    return result, drain
