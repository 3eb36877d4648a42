"""Handshake middleware (``transcription/auth/middleware.py``) through channels'
``WebsocketCommunicator``, with the denial-response extension added to the scope."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import DatabaseError
from django_prometheus.testutils import assert_metric_diff, save_registry

from transcription.auth import keys
from transcription.auth.keys import create_key
from transcription.auth.middleware import HandshakeAuthMiddleware, credentials

pytestmark = pytest.mark.django_db(transaction=True)

ENV_KEY = "a3f1b9c7e8d2f4a6b0c5e7d9f1a3b5c7e9d1f3a5b7c9e1d3f5a7b9c1e3d5f7"
REJECTED = "openasr_connections_rejected_auth_total"


async def inner_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Stands in for the consumer: accepts and reports what the middleware put in the scope."""
    assert (await receive())["type"] == "websocket.connect"
    await send({"type": "websocket.accept", "subprotocol": scope.get("openasr.subprotocol")})
    report = {"key": scope.get("openasr.key"), "ip": scope.get("openasr.client_ip")}
    await send({"type": "websocket.send", "text": json.dumps(report)})


@dataclass
class Outcome:
    """What the client saw: an HTTP status (101 for accepted) and the rest."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] | None = None
    subprotocol: str | None = None
    report: dict[str, Any] | None = None
    close_code: int | None = None


async def handshake(
    headers: list[tuple[str, str]] | None = None,
    *,
    subprotocols: list[str] | None = None,
    peer: str = "203.0.113.5",
    path: str = "/transcribe",
    extension: bool = True,
) -> Outcome:
    app = HandshakeAuthMiddleware(inner_app)
    comm = WebsocketCommunicator(
        app,
        path,
        headers=[(k.lower().encode(), v.encode()) for k, v in headers or []],
        subprotocols=subprotocols,
    )
    comm.scope["client"] = (peer, 40000)
    if extension:
        comm.scope["extensions"] = {"websocket.http.response": {}}
    await comm.send_input({"type": "websocket.connect"})
    first = await comm.receive_output(2)
    try:
        if first["type"] == "websocket.http.response.start":
            body = await comm.receive_output(2)
            return Outcome(
                status=first["status"],
                headers={k.decode(): v.decode() for k, v in first["headers"]},
                body=json.loads(body["body"]),
            )
        if first["type"] == "websocket.close":
            return Outcome(status=403, close_code=first["code"])  # what daphne would answer
        assert first["type"] == "websocket.accept"
        report = json.loads((await comm.receive_output(2))["text"])
        return Outcome(status=101, subprotocol=first.get("subprotocol"), report=report)
    finally:
        await comm.wait(2)


def bearer(key: str) -> list[tuple[str, str]]:
    return [("Authorization", f"Bearer {key}")]


async def db_key(name: str = "client", **kwargs: Any) -> tuple[Any, str]:
    return await sync_to_async(create_key)(name, **kwargs)


# --- dev mode ---


async def test_dev_mode_is_open(configure: Any) -> None:
    """No key anywhere and WSS_REQUIRE_AUTH unset: accepted with no key."""
    out = await handshake()
    assert out.status == 101 and out.report == {"key": None, "ip": "203.0.113.5"}


async def test_dev_mode_echoes_the_openasr_subprotocol(configure: Any) -> None:
    """Browsers that offer subprotocols get one back even in dev mode."""
    out = await handshake(subprotocols=["openasr.bearer.whatever", "openasr"])
    assert out.status == 101 and out.subprotocol == "openasr"


async def test_require_auth_closes_dev_mode(configure: Any) -> None:
    """WSS_REQUIRE_AUTH=true without a key offered: 401."""
    configure(require_auth=True)
    assert (await handshake()).status == 401


# --- keys ---


async def test_env_key_in_the_header(configure: Any) -> None:
    """Authorization: Bearer <WSS_API_KEY> is accepted as the env key."""
    configure(api_key=ENV_KEY)
    out = await handshake(bearer(ENV_KEY))
    assert out.status == 101
    assert out.report is not None
    assert out.report["key"] == {"id": "env", "name": "env", "max_sessions": None, "prefix": ""}


async def test_database_key_in_the_header(configure: Any) -> None:
    """A database key is accepted and the connection knows its id, name and limit."""
    row, key = await db_key("mobile-app", max_sessions=2)
    out = await handshake(bearer(key))
    assert out.status == 101 and out.report is not None
    assert out.report["key"] == {
        "id": str(row.pk),
        "name": "mobile-app",
        "max_sessions": 2,
        "prefix": row.prefix,
    }


async def test_bearer_scheme_is_case_insensitive(configure: Any) -> None:
    """RFC 7235: 'bearer' and 'BEARER' are the same scheme."""
    _, key = await db_key()
    assert (await handshake([("Authorization", f"bearer {key}")])).status == 101


async def test_subprotocol_bearer_for_browsers(configure: Any) -> None:
    """["openasr.bearer.<key>", "openasr"] authenticates; the server echoes only "openasr"."""
    _, key = await db_key()
    out = await handshake(subprotocols=[f"openasr.bearer.{key}", "openasr"])
    assert out.status == 101 and out.subprotocol == "openasr"
    assert out.report is not None and out.report["key"]["name"] == "client"


async def test_subprotocol_bearer_alone_echoes_nothing(configure: Any) -> None:
    """The key-carrying protocol is never echoed back."""
    _, key = await db_key()
    out = await handshake(subprotocols=[f"openasr.bearer.{key}"])
    assert out.status == 101 and out.subprotocol is None


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ([], "missing API key"),
        ([("Authorization", "Bearer")], "empty API key"),
        ([("Authorization", "Bearer ")], "empty API key"),
        ([("Authorization", "Basic dXNlcjpwYXNz")], "empty API key"),
        ([("Authorization", "Bearer oasr_0123456789ab.nope")], "invalid API key"),
    ],
)
async def test_missing_or_wrong_key_is_401(
    configure: Any, headers: list[tuple[str, str]], message: str
) -> None:
    """401 with WWW-Authenticate and a short JSON reason; the metric counts it."""
    await db_key()
    before = save_registry()
    out = await handshake(headers)
    assert out.status == 401
    assert out.headers["www-authenticate"].startswith("Bearer")
    assert out.headers["content-type"] == "application/json"
    assert out.body is not None and out.body["error"] == "unauthorized"
    assert message in out.body["message"]
    assert_metric_diff(before, 1, REJECTED)


async def test_key_in_the_query_string_is_ignored(configure: Any) -> None:
    """?api_key=, ?key=, ?token=: never read."""
    _, key = await db_key()
    for name in ("api_key", "key", "token", "access_token"):
        assert (await handshake(path=f"/transcribe?{name}={key}")).status == 401


async def test_header_wins_over_subprotocol(configure: Any) -> None:
    """With both, the Authorization header is the credential (one credential per request)."""
    _, key = await db_key()
    out = await handshake(
        [("Authorization", "Bearer wrong")], subprotocols=[f"openasr.bearer.{key}", "openasr"]
    )
    assert out.status == 401


async def test_without_the_extension_the_socket_is_closed(configure: Any) -> None:
    """Servers without the denial extension get a close before accept (daphne: 403)."""
    configure(api_key=ENV_KEY)
    out = await handshake(extension=False)
    assert out.close_code == 1008


async def test_database_outage_is_503_not_401(
    configure: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key that cannot be checked is not a wrong key: 503 with Retry-After, no failure."""
    await db_key()

    def broken(prefix: str) -> None:
        raise DatabaseError("db down")

    monkeypatch.setattr(keys, "_load_snapshot", broken)
    before = save_registry()
    out = await handshake(bearer("oasr_0123456789ab.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"))
    assert out.status == 503 and "retry-after" in out.headers
    assert_metric_diff(before, 0, REJECTED)


# --- failure limit ---


async def test_eleventh_failure_is_429_and_a_valid_key_still_works(configure: Any) -> None:
    """10 failures per 60 s per address: the 11th gets 429 + Retry-After; a valid key from
    the same address is served; another address is unaffected."""
    _, key = await db_key()
    before = save_registry()
    statuses = [(await handshake(bearer("wrong"), peer="198.51.100.9")).status for _ in range(10)]
    assert statuses == [401] * 10
    blocked = await handshake(bearer("wrong"), peer="198.51.100.9")
    assert blocked.status == 429
    assert 1 <= int(blocked.headers["retry-after"]) <= 60
    assert blocked.body is not None and blocked.body["error"] == "too_many_requests"
    assert_metric_diff(before, 11, REJECTED)
    assert (await handshake(peer="198.51.100.9")).status == 429  # no key at all: also blocked
    assert (await handshake(bearer(key), peer="198.51.100.9")).status == 101
    assert (await handshake(bearer("wrong"), peer="198.51.100.10")).status == 401


async def test_forwarded_for_is_used_only_from_trusted_proxies(configure: Any) -> None:
    """Behind a trusted proxy each forwarded client has its own count."""
    configure(trusted_proxies=("127.0.0.1",), auth_failure_limit=1)
    await db_key()

    def via_proxy(client: str) -> list[tuple[str, str]]:
        return [("X-Forwarded-For", client), ("Authorization", "Bearer wrong")]

    assert (await handshake(via_proxy("203.0.113.1"), peer="127.0.0.1")).status == 401
    assert (await handshake(via_proxy("203.0.113.1"), peer="127.0.0.1")).status == 429
    assert (await handshake(via_proxy("203.0.113.2"), peer="127.0.0.1")).status == 401
    # an untrusted peer's header is ignored: its own address is counted
    assert (await handshake(via_proxy("203.0.113.3"), peer="198.51.100.50")).status == 401
    assert (await handshake(via_proxy("203.0.113.4"), peer="198.51.100.50")).status == 429


async def test_accepted_connection_knows_the_forwarded_client(configure: Any) -> None:
    """scope["openasr.client_ip"] is the forwarded client behind a trusted proxy."""
    configure(trusted_proxies=("127.0.0.1",))
    out = await handshake([("X-Forwarded-For", "203.0.113.77")], peer="127.0.0.1")
    assert out.report is not None and out.report["ip"] == "203.0.113.77"


# --- host and origin ---


@pytest.fixture
def asr_host(settings: Any) -> None:
    """The server answers asr.example.com (DJANGO_ALLOWED_HOSTS)."""
    settings.ALLOWED_HOSTS = ["asr.example.com", "localhost", "127.0.0.1"]


async def test_foreign_origin_is_403_and_not_an_auth_failure(
    configure: Any, asr_host: None
) -> None:
    """A browser page from another site is refused with 403, before any key check."""
    _, key = await db_key()
    before = save_registry()
    out = await handshake(
        [("Origin", "https://evil.example"), ("Host", "asr.example.com"), *bearer(key)]
    )
    assert out.status == 403 and out.body == {"error": "forbidden", "message": "Origin not allowed"}
    assert_metric_diff(before, 0, REJECTED)


async def test_same_origin_and_allowed_origins_pass(configure: Any, asr_host: None) -> None:
    """Same host passes by default; WSS_ALLOWED_ORIGINS lists other pages."""
    _, key = await db_key()
    same = [("Origin", "https://asr.example.com"), ("Host", "asr.example.com"), *bearer(key)]
    assert (await handshake(same)).status == 101
    configure(allowed_origins=("https://app.example.com",))
    other = [("Origin", "https://app.example.com"), ("Host", "asr.example.com"), *bearer(key)]
    assert (await handshake(other)).status == 101
    assert (await handshake(same)).status == 403


async def test_host_not_allowed_is_403_before_any_key_check(configure: Any, asr_host: None) -> None:
    """A Host outside DJANGO_ALLOWED_HOSTS is refused with 403 and counts as no auth failure,
    even with a valid key and no Origin; no Host at all (not a browser) passes."""
    _, key = await db_key()
    before = save_registry()
    out = await handshake([("Host", "evil.example:9090"), *bearer(key)])
    assert out.status == 403 and out.body == {"error": "forbidden", "message": "Host not allowed"}
    assert_metric_diff(before, 0, REJECTED)
    assert (await handshake([("Host", "127.0.0.1:9090"), *bearer(key)])).status == 101
    assert (await handshake(bearer(key))).status == 101


async def test_dns_rebinding_is_refused_with_wildcard_hosts(configure: Any, settings: Any) -> None:
    """ALLOWED_HOSTS "*": a rebound page (Origin and Host both evil.example) is refused with
    403, while clients without Origin and listed origins still connect."""
    settings.ALLOWED_HOSTS = ["*"]
    rebound = [("Origin", "http://evil.example:9090"), ("Host", "evil.example:9090")]
    assert (await handshake(rebound)).status == 403
    assert (await handshake([("Host", "evil.example:9090")])).status == 101
    configure(allowed_origins=("http://evil.example:9090",))
    assert (await handshake(rebound)).status == 101


async def test_debug_without_allowed_hosts_answers_localhost_only(
    configure: Any, settings: Any
) -> None:
    """As Django's HTTP side: DEBUG with an empty ALLOWED_HOSTS means the localhost names."""
    settings.DEBUG, settings.ALLOWED_HOSTS = True, []
    assert (await handshake([("Host", "localhost:9090")])).status == 101
    assert (await handshake([("Host", "asr.example.com")])).status == 403


def test_credentials_parsing() -> None:
    """Header first, then the bearer subprotocol; "openasr" is echoed when offered."""
    scope = {"headers": [(b"authorization", b"Bearer k1")], "subprotocols": ["openasr"]}
    assert credentials(scope).key == "k1" and credentials(scope).subprotocol == "openasr"
    scope = {"headers": [], "subprotocols": ["openasr.bearer.k2"]}
    assert credentials(scope).key == "k2" and credentials(scope).subprotocol is None
    assert credentials({"headers": []}).key is None


# --- the compatible APIs: their key forms and error shapes ---

REALTIME = "/v1/realtime?intent=transcription"
LISTEN = "/v1/listen?model=nova-3"


async def test_realtime_takes_bearer_and_the_browser_subprotocols(configure: Any) -> None:
    """OpenAI Realtime: Authorization: Bearer, or ["realtime", "openai-insecure-api-key.<key>"]
    with "realtime" echoed (never the key)."""
    _, key = await db_key()
    assert (await handshake(bearer(key), path=REALTIME)).status == 101
    out = await handshake(
        subprotocols=["realtime", f"openai-insecure-api-key.{key}"], path=REALTIME
    )
    assert out.status == 101 and out.subprotocol == "realtime"


async def test_realtime_refusals_are_openai_error_objects(configure: Any) -> None:
    """A wrong key: 401 with {"error": {"type", "code": "invalid_api_key", ...}}."""
    await db_key()
    out = await handshake(bearer("oasr_0123456789ab.nope"), path=REALTIME)
    assert out.status == 401 and out.body is not None
    assert out.body["error"]["code"] == "invalid_api_key"
    assert out.body["error"]["type"] == "invalid_request_error"
    assert "message" in out.body["error"] and "param" in out.body["error"]


async def test_deepgram_takes_token_bearer_and_the_token_subprotocol(configure: Any) -> None:
    """Deepgram: Authorization: Token <key> (or Bearer), or ["token", "<key>"] with "token"
    echoed."""
    _, key = await db_key()
    assert (await handshake([("Authorization", f"Token {key}")], path=LISTEN)).status == 101
    assert (await handshake([("Authorization", f"bearer {key}")], path=LISTEN)).status == 101
    out = await handshake(subprotocols=["token", key], path=LISTEN)
    assert out.status == 101 and out.subprotocol == "token"


async def test_deepgram_refusals_are_deepgram_error_objects(configure: Any) -> None:
    """A wrong key: 401 with {"err_code": "INVALID_AUTH", "err_msg", "request_id"}."""
    await db_key()
    out = await handshake([("Authorization", "Token oasr_0123456789ab.nope")], path=LISTEN)
    assert out.status == 401 and out.body is not None
    assert out.body["err_code"] == "INVALID_AUTH"
    assert set(out.body) == {"err_code", "err_msg", "request_id"}
    assert out.headers["www-authenticate"].startswith("Token")


async def test_the_token_scheme_is_not_a_key_on_transcribe(configure: Any) -> None:
    """Each API keeps its own forms: Token is Deepgram's, not /transcribe's."""
    _, key = await db_key()
    assert (await handshake([("Authorization", f"Token {key}")])).status == 401
