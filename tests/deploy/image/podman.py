"""The built image run as operators run it: podman containers, and the Redis and PostgreSQL of
this machine that the scale-out roles connect to (``make image-test``, docs/DEPLOYING.md)."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis

from tests.support.server import free_port, wait_until

# crun refuses this machine's rlimits and hybrid cgroups: every container runs with runc
# (scripts/image-podman-setup.sh writes the matching containers.conf).
PODMAN = ("podman", "--runtime", "runc")
IMAGE_UID = 10001


def podman(
    *args: str, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run one podman command; a failure raises with podman's own message."""
    result = subprocess.run(
        [*PODMAN, *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args[:3])}: {result.stderr.strip()[-2000:]}")
    return result


def http_get(port: int, path: str, timeout: float = 3) -> tuple[int, str]:
    """GET http://127.0.0.1:port/path -> (status, body); (0, reason) when nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError as exc:
        return 0, str(exc)


@dataclass
class Container:
    """One detached container of the image with the hardening compose and k8s apply: read-only
    root, tmpfs /tmp, no capabilities, no new privileges, the host's network (loopback)."""

    image: str
    role: Sequence[str]
    env: dict[str, str] = field(default_factory=dict)
    name: str = ""
    started_at: float = 0.0

    def start(self) -> Container:
        self.name = f"openasr-image-test-{os.getpid()}-{self.role[0]}-{secrets.token_hex(3)}"
        args = [
            "run",
            "--detach",
            "--name",
            self.name,
            "--network",
            "host",
            "--read-only",
            "--tmpfs",
            "/tmp",
            "--cap-drop",
            "ALL",
            "--security-opt",
            "no-new-privileges",
        ]
        for key, value in self.env.items():
            args += ["--env", f"{key}={value}"]
        self.started_at = time.monotonic()
        podman(*args, self.image, *self.role)
        return self

    def state(self) -> dict[str, object]:
        out = podman("inspect", "--format", "{{json .State}}", self.name).stdout
        return dict(json.loads(out))

    def running(self) -> bool:
        return bool(self.state()["Running"])

    def logs(self) -> str:
        result = podman("logs", self.name, check=False)
        return result.stdout + result.stderr

    def exec(self, *command: str) -> subprocess.CompletedProcess[str]:
        return podman("exec", self.name, *command, check=False)

    def signal(self, signum: signal.Signals) -> None:
        podman("kill", "--signal", signum.name, self.name)

    def wait_exit(self, timeout: float) -> int:
        """The exit code once the container has stopped; TimeoutError after ``timeout`` s."""
        wait_until(lambda: not self.running(), timeout=timeout, interval=0.2)
        return int(self.state()["ExitCode"])  # type: ignore[call-overload]

    def remove(self) -> None:
        if self.name:
            podman("rm", "--force", "--time", "2", self.name, check=False, timeout=60)


@contextmanager
def running(image: str, *role: str, env: dict[str, str] | None = None) -> Iterator[Container]:
    """A started container, removed (with its anonymous volumes) afterwards."""
    container = Container(image, role, dict(env or {}))
    try:
        yield container.start()
    finally:
        container.remove()
        podman("volume", "prune", "--force", check=False)


def run_once(image: str, *role: str, env: dict[str, str], timeout: float = 180) -> str:
    """Run a one-shot role (migrate, manage ...) to completion; its stdout, or an error."""
    args = [
        "run",
        "--rm",
        "--no-healthcheck",
        "--network",
        "host",
        "--read-only",
        "--tmpfs",
        "/tmp",
    ]
    for key, value in env.items():
        args += ["--env", f"{key}={value}"]
    result = podman(*args, image, *role, check=False, timeout=timeout)
    if result.returncode != 0:
        raise AssertionError(f"`{' '.join(role)}` exited {result.returncode}:\n{result.stderr}")
    return result.stdout


# --- services on this machine ---


@contextmanager
def private_redis() -> Iterator[str]:
    """A redis-server of our own on a free loopback port with a password (as compose and k8s
    now run it); shut down afterwards. No other Redis is touched."""
    port = free_port()
    password = secrets.token_urlsafe(24)
    workdir = Path(tempfile.mkdtemp(prefix="openasr-image-redis-"))
    proc = subprocess.Popen(
        [
            "redis-server",
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--requirepass",
            password,
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://:{password}@127.0.0.1:{port}/0"
    try:
        wait_until(lambda: _redis_answers(url), timeout=10)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


def _redis_answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_timeout=1).ping())
    except redis.RedisError:
        return False


def _pg_ready(port: int) -> bool:
    return (
        subprocess.run(
            ["pg_isready", "-q", "-h", "127.0.0.1", "-p", str(port)], check=False
        ).returncode
        == 0
    )


def _as_postgres(*command: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["runuser", "-u", "postgres", "--", *command],
        capture_output=True,
        text=True,
        check=True,
        **kwargs,  # type: ignore[arg-type]
    )


@contextmanager
def postgres_database() -> Iterator[str]:
    """A throw-away database and role for the test, as a DATABASE_URL: in the PostgreSQL this
    machine runs on 127.0.0.1:5432 when one answers, else in a private cluster started here
    (initdb in a temporary directory, a free port); dropped or stopped afterwards."""
    if os.environ.get("OPENASR_IMAGE_TEST_PRIVATE_PG") != "1" and _pg_ready(5432):
        with _database_in(5432, host_socket=None) as url:
            yield url
        return
    with _private_cluster() as (port, socket_dir):
        with _database_in(port, host_socket=socket_dir) as url:
            yield url


@contextmanager
def _database_in(port: int, host_socket: str | None) -> Iterator[str]:
    name = f"openasr_image_test_{os.getpid()}"
    password = secrets.token_urlsafe(18)
    psql = ["psql", "-v", "ON_ERROR_STOP=1", "-p", str(port), "-d", "postgres", "-q"]
    if host_socket:
        psql += ["-h", host_socket]
    _as_postgres(*psql, "-c", f"CREATE ROLE {name} LOGIN PASSWORD '{password}'")
    try:
        _as_postgres(*psql, "-c", f"CREATE DATABASE {name} OWNER {name}")
        yield f"postgres://{name}:{password}@127.0.0.1:{port}/{name}"
    finally:
        _as_postgres(*psql, "-c", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        _as_postgres(*psql, "-c", f"DROP ROLE IF EXISTS {name}")


@contextmanager
def _private_cluster() -> Iterator[tuple[int, str]]:
    bindir = _pg_bindir()
    port = free_port()
    root = Path(tempfile.mkdtemp(prefix="openasr-image-pg-"))
    shutil.chown(root, "postgres", "postgres")
    data, sock = root / "data", str(root)
    _as_postgres(
        str(bindir / "initdb"), "-D", str(data), "--auth-local=peer", "--auth-host=scram-sha-256"
    )
    options = f"-p {port} -k {sock} -c listen_addresses=127.0.0.1"
    _as_postgres(str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-w", "start")
    try:
        yield port, sock
    finally:
        _as_postgres(str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop")
        shutil.rmtree(root, ignore_errors=True)


def _pg_bindir() -> Path:
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not versions:
        raise RuntimeError("no PostgreSQL server installed (make image-test installs postgresql)")
    return versions[-1].parent


@contextmanager
def nginx_proxy(server_port: int) -> Iterator[int]:
    """docker/nginx.conf served by this machine's nginx in front of a server on the loopback:
    the compose file's `server:9090` upstream and listen port swapped for local ones, nothing
    else changed. Yields nginx's port."""
    conf = (Path(__file__).resolve().parents[3] / "docker" / "nginx.conf").read_text()
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="openasr-image-nginx-"))
    replaced = (
        conf.replace(
            "set $openasr http://server:9090;", f"set $openasr http://127.0.0.1:{server_port};"
        )
        .replace("listen 8080;", f"listen 127.0.0.1:{port};")
        .replace("pid /tmp/nginx.pid;", f"pid {workdir}/nginx.pid;")
    )
    assert replaced.count(str(server_port)) == 1 and f":{port};" in replaced, "nginx.conf changed"
    (workdir / "nginx.conf").write_text(replaced)
    log = (workdir / "nginx.log").open("w")
    proc = subprocess.Popen(
        ["nginx", "-p", str(workdir), "-c", str(workdir / "nginx.conf"), "-g", "daemon off;"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until(lambda: http_get(port, "/nothing")[0] == 404 or proc.poll() is not None)
        assert proc.poll() is None, (workdir / "nginx.log").read_text()
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()
        shutil.rmtree(workdir, ignore_errors=True)
