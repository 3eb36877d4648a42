"""PROTOCOL.md "Transport and auth" against real daphne processes (FAKE backend: only the
upgrade and the session start matter here) with a real ``websockets`` client and real Redis.

Two servers share one database and one Redis, as two nodes of a deployment. Each test sends
its own ``X-Forwarded-For`` address (127.0.0.1 is a trusted proxy), so the failure counts of one
test never reach another.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import websockets
from websockets.datastructures import Headers
from websockets.exceptions import InvalidStatus

from tests.e2e.conftest import migrated_db, redis_test_url
from tests.support.client import config
from tests.support.server import REPO, Server, base_env, start_server

pytestmark = pytest.mark.e2e

ENV_KEY = secrets.token_hex(32)
SECRET_KEY = secrets.token_urlsafe(50)
REDIS_DB = 14
_addresses = (f"198.51.100.{n}" for n in itertools.count(1))

CREATE_KEYS = """
import json
from datetime import timedelta
from django.utils import timezone
from transcription.auth.keys import create_key, revoke_key
keys = {}
for name in ("active", "revoked", "expired", "live", "rotate", "browser", "limited"):
    row, key = create_key(name, max_sessions=1 if name == "limited" else None)
    keys[name] = key
    if name == "revoked":
        revoke_key(row)
    if name == "expired":
        row.expires_at = timezone.now() - timedelta(seconds=1)
        row.save()
print(json.dumps(keys))
"""


@dataclass
class Deployment:
    """Two server nodes, their database, and the keys created in it."""

    nodes: list[Server]
    env: dict[str, str]
    keys: dict[str, str] = field(default_factory=dict)

    def manage(self, *args: str) -> str:
        """Run ``manage.py`` against the deployment's database; return its stdout."""
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=REPO,
            env=base_env(**self.env),
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout


@pytest.fixture(scope="module")
def deployment() -> Iterator[Deployment]:
    env = {
        "WSS_BACKEND": "fake",
        "WSS_VAD": "energy",
        "WSS_API_KEY": ENV_KEY,
        "WSS_TRUSTED_PROXIES": "127.0.0.1",
        "WSS_API_KEY_CACHE_S": "1",
        "REDIS_URL": redis_test_url(REDIS_DB),
        "DATABASE_URL": migrated_db(),
        "DJANGO_SECRET_KEY": SECRET_KEY,
    }
    dep = Deployment(nodes=[], env=env)
    dep.keys = json.loads(dep.manage("shell", "-c", CREATE_KEYS).strip().splitlines()[-1])
    try:
        dep.nodes = [start_server(env, wait="/health") for _ in range(2)]
        yield dep
    finally:
        for node in dep.nodes:
            node.stop()


@dataclass
class Attempt:
    status: int
    headers: Headers  # case-insensitive
    subprotocol: str | None = None


async def attempt(
    server: Server,
    key: str | None = None,
    *,
    address: str | None = None,
    raw_auth: str | None = None,
    subprotocols: list[str] | None = None,
    origin: str | None = None,
    query: str = "",
) -> Attempt:
    """One upgrade request; the HTTP status the client saw (101 when accepted)."""
    headers: dict[str, str] = {}
    if address:
        headers["X-Forwarded-For"] = address
    if raw_auth is not None:
        headers["Authorization"] = raw_auth
    elif key is not None:
        headers["Authorization"] = f"Bearer {key}"
    try:
        async with websockets.connect(
            server.url + query,
            additional_headers=headers,
            subprotocols=subprotocols,  # type: ignore[arg-type]
            origin=origin,  # type: ignore[arg-type]
            open_timeout=10,
        ) as ws:
            assert ws.response is not None
            return Attempt(101, ws.response.headers, ws.subprotocol)
    except InvalidStatus as exc:
        return Attempt(exc.response.status_code, exc.response.headers)


async def eventually_refused(server: Server, key: str, within_s: float) -> float:
    """Seconds until ``key`` is refused with 401 (fails after ``within_s``)."""
    start = time.monotonic()
    while time.monotonic() - start < within_s:
        if (await attempt(server, key, address=next(_addresses))).status == 401:
            return time.monotonic() - start
        await asyncio.sleep(0.25)
    pytest.fail(f"key still accepted after {within_s} s")


async def test_refused_handshakes_get_401(deployment: Deployment) -> None:
    """No header, empty bearer, wrong, revoked or expired key, key in the query: HTTP 401."""
    node, keys, ip = deployment.nodes[0], deployment.keys, next(_addresses)
    assert (await attempt(node, address=ip)).status == 401
    assert (await attempt(node, raw_auth="Bearer ", address=ip)).status == 401
    assert (await attempt(node, raw_auth="Bearer", address=ip)).status == 401
    assert (await attempt(node, "oasr_0123456789ab." + "A" * 43, address=ip)).status == 401
    assert (await attempt(node, ENV_KEY + "0", address=ip)).status == 401
    assert (await attempt(node, keys["revoked"], address=ip)).status == 401
    assert (await attempt(node, keys["expired"], address=ip)).status == 401
    ip2 = next(_addresses)
    assert (await attempt(node, address=ip2, query=f"?api_key={keys['active']}")).status == 401
    refused = await attempt(node, "wrong", address=ip2)
    assert refused.status == 401 and refused.headers["WWW-Authenticate"].startswith("Bearer")


async def test_valid_keys_are_accepted(deployment: Deployment) -> None:
    """A database key and the WSS_API_KEY env key both get 101, on every node."""
    for node in deployment.nodes:
        assert (await attempt(node, deployment.keys["active"])).status == 101
        assert (await attempt(node, ENV_KEY)).status == 101


async def test_failures_are_limited_per_address_across_nodes(deployment: Deployment) -> None:
    """10 failures per 60 s from one address, counted across both nodes: the 11th is 429 with
    Retry-After; another address is unaffected; a valid key from the blocked address works."""
    a, b = deployment.nodes
    blocked, other = next(_addresses), next(_addresses)
    statuses = [(await attempt((a, b)[n % 2], "wrong", address=blocked)).status for n in range(10)]
    assert statuses == [401] * 10
    eleventh = await attempt(b, "wrong", address=blocked)
    assert eleventh.status == 429
    assert 1 <= int(eleventh.headers["Retry-After"]) <= 60
    assert (await attempt(a, address=blocked)).status == 429
    assert (await attempt(a, "wrong", address=other)).status == 401
    assert (await attempt(a, deployment.keys["active"], address=blocked)).status == 101
    assert (await attempt(b, ENV_KEY, address=blocked)).status == 101


async def test_rotation_grace_period(deployment: Deployment) -> None:
    """After rotation both keys work until the grace ends, then only the new one."""
    node, old = deployment.nodes[0], deployment.keys["rotate"]
    prefix = old.split(".")[0]
    new = deployment.manage("apikey", "rotate", prefix, "--grace-s", "4").strip()
    assert new.startswith("oasr_") and new != old
    assert (await attempt(node, old)).status == 101
    assert (await attempt(node, new)).status == 101
    await eventually_refused(node, old, within_s=12)
    assert (await attempt(node, new)).status == 101
    deployment.keys["rotated"] = new


async def test_revocation_reaches_a_running_server_within_5_s(deployment: Deployment) -> None:
    """A key revoked through the ORM stops working on running nodes within 5 s."""
    key = deployment.keys["live"]
    for node in deployment.nodes:
        assert (await attempt(node, key)).status == 101
    deployment.manage("apikey", "revoke", key.split(".")[0])
    for node in deployment.nodes:
        assert await eventually_refused(node, key, within_s=5) <= 5


async def test_browser_subprotocol_bearer(deployment: Deployment) -> None:
    """Sec-WebSocket-Protocol ["openasr.bearer.<key>", "openasr"] works; "openasr" is echoed."""
    node, key = deployment.nodes[1], deployment.keys["browser"]
    accepted = await attempt(node, subprotocols=[f"openasr.bearer.{key}", "openasr"])
    assert accepted.status == 101 and accepted.subprotocol == "openasr"
    assert key not in str(accepted.headers)
    wrong = await attempt(
        node, subprotocols=["openasr.bearer.wrong", "openasr"], address=next(_addresses)
    )
    assert wrong.status == 401


async def test_foreign_origin_is_403(deployment: Deployment) -> None:
    """A page from another site cannot open a socket, even with a valid key."""
    node, key = deployment.nodes[0], deployment.keys["active"]
    assert (await attempt(node, key, origin="https://evil.example")).status == 403
    assert (await attempt(node, key, origin=f"http://127.0.0.1:{node.port}")).status == 101


async def test_per_key_session_limit(deployment: Deployment) -> None:
    """A key with max_sessions=1 gets SESSION_LIMIT for a second live session on a node."""
    node, key = deployment.nodes[0], deployment.keys["limited"]
    auth = {"Authorization": f"Bearer {key}"}
    async with (
        websockets.connect(node.url, additional_headers=auth) as first,
        websockets.connect(node.url, additional_headers=auth) as second,
    ):
        await first.send(json.dumps({"type": "speech.config", "payload": config()}))
        ack = json.loads(await asyncio.wait_for(first.recv(), 10))
        assert ack["type"] == "speech.config.ack"
        await second.send(json.dumps({"type": "speech.config", "payload": config()}))
        error = json.loads(await asyncio.wait_for(second.recv(), 10))
        assert error["type"] == "speech.error"
        assert error["payload"]["code"] == "SESSION_LIMIT"
        assert "API key" in error["payload"]["message"]


def test_no_key_material_in_the_server_logs(deployment: Deployment) -> None:
    """After all of the above, no key (nor its secret part) appears in either node's log."""
    logs = "\n".join(node.log() for node in deployment.nodes)
    assert "handshake refused" in logs  # the log did record the refusals
    for key in [*deployment.keys.values(), ENV_KEY]:
        assert key not in logs
        assert key.split(".")[-1] not in logs


def test_require_auth_without_a_key_refuses_to_start() -> None:
    """WSS_REQUIRE_AUTH=true and no key anywhere: the process exits non-zero, saying why."""
    server = start_server(
        {
            "WSS_BACKEND": "fake",
            "WSS_REQUIRE_AUTH": "true",
            "DATABASE_URL": migrated_db(),
            "DJANGO_SECRET_KEY": SECRET_KEY,
        },
        wait=None,
    )
    try:
        assert server.proc is not None
        code = server.proc.wait(timeout=60)
    finally:
        server.stop()
    assert code != 0
    assert "WSS_REQUIRE_AUTH=true but no API key is configured" in server.log()


def test_require_auth_with_an_env_key_starts() -> None:
    """WSS_REQUIRE_AUTH=true with WSS_API_KEY set: the server starts and serves the key."""
    server = start_server(
        {
            "WSS_BACKEND": "fake",
            "WSS_REQUIRE_AUTH": "true",
            "WSS_API_KEY": ENV_KEY,
            "DATABASE_URL": migrated_db(),
            "DJANGO_SECRET_KEY": SECRET_KEY,
        },
        wait="/health",
    )
    try:
        assert asyncio.run(attempt(server, ENV_KEY)).status == 101
        assert asyncio.run(attempt(server)).status == 401
    finally:
        server.stop()
