"""Handshake checks for every WebSocket API: host, origin, API key, auth-failure limit.

Normative: docs/PROTOCOL.md "Transport and auth". Everything is decided before the consumer
runs, and a refusal is an HTTP response to the upgrade request (ASGI "WebSocket Denial Response"
extension, which ``openasr_site/server.py`` adds to daphne): 401 for a missing or wrong key, 429
with ``Retry-After`` after too many failures from one address, 403 for a ``Host`` not in
``ALLOWED_HOSTS`` or a foreign ``Origin`` (``origin.py``), 503 when the key database cannot be
read. Without the extension the socket is closed before accept.

Where the key comes from:

* ``Authorization: Bearer <key>`` (the seed's way, for every non-browser client), or
* browsers, which cannot set headers on a WebSocket, offer the subprotocols
  ``["openasr.bearer.<key>", "openasr"]``; the server answers with ``openasr`` and never echoes
  the key. When both are sent, the header is used.

The compatible APIs take the key the way their SDKs send it, and refuse in their own error
shape (``WireApi``):

* ``/v1/realtime`` (OpenAI Realtime): ``Authorization: Bearer <key>``; browsers offer the
  subprotocols ``["realtime", "openai-insecure-api-key.<key>"]`` and get ``realtime`` back.
  Refusals are OpenAI error objects (``{"error": {"message", "type", "code", "param"}}``).
* ``/v1/listen`` (Deepgram live): ``Authorization: Token <key>`` (or ``Bearer``); browsers
  offer ``["token", "<key>"]`` and get ``token`` back. Refusals are Deepgram error objects
  (``{"err_code", "err_msg", "request_id"}``).

A key in the query string is never read: URLs end up in proxy and access logs.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from transcription import metrics
from transcription.auth.keys import KEY_CACHE, AuthUnavailable, KeyIdentity
from transcription.auth.origin import host_allowed, origin_allowed
from transcription.auth.ratelimit import client_ip, get_limiter
from transcription.denial import Denial, deny

log = logging.getLogger(__name__)

PROTOCOL_NAME = "openasr"
BEARER_PROTOCOL_PREFIX = "openasr.bearer."
REALTIME_PROTOCOL = "realtime"
REALTIME_KEY_PROTOCOL_PREFIX = "openai-insecure-api-key."
DEEPGRAM_PROTOCOLS = ("token", "bearer")  # ["token", "<key>"]: the next protocol is the key
REALTIME_PATH = "/v1/realtime"
DEEPGRAM_PATH = "/v1/listen"
SCOPE_KEY = "openasr.key"
SCOPE_SUBPROTOCOL = "openasr.subprotocol"
SCOPE_CLIENT_IP = "openasr.client_ip"
DB_RETRY_AFTER_S = 5

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass(frozen=True)
class Credentials:
    """What the upgrade request offered: a key (None: none offered) and the protocol to echo."""

    key: str | None
    subprotocol: str | None


def header(scope: Scope, name: bytes) -> str | None:
    """The first value of a request header (names are lower case in ASGI scopes)."""
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            decoded: str = value.decode("latin1")
            return decoded
    return None


def header_values(scope: Scope, name: bytes) -> list[str]:
    """Every value of a request header."""
    return [v.decode("latin1") for k, v in scope.get("headers", []) if k.lower() == name]


def _offered(scope: Scope) -> list[str]:
    return [p.strip() for p in scope.get("subprotocols", []) or []]


def _authorization(scope: Scope, schemes: tuple[str, ...]) -> str | None:
    """The key in ``Authorization`` ("" when the scheme is not one of ``schemes``), or None
    without the header. The scheme is case-insensitive (RFC 7235 section 2.1)."""
    auth = header(scope, b"authorization")
    if auth is None:
        return None
    scheme, _, token = auth.strip().partition(" ")
    return token.strip() if scheme.lower() in schemes else ""


def credentials(scope: Scope) -> Credentials:
    """``/transcribe``: the key offered in ``Authorization`` or the bearer subprotocol, and
    the subprotocol to accept (``openasr`` when the client offered it)."""
    offered = _offered(scope)
    subprotocol = PROTOCOL_NAME if PROTOCOL_NAME in offered else None
    key = _authorization(scope, ("bearer",))
    if key is not None:
        return Credentials(key, subprotocol)
    for proto in offered:
        if proto.startswith(BEARER_PROTOCOL_PREFIX):
            return Credentials(proto[len(BEARER_PROTOCOL_PREFIX) :], subprotocol)
    return Credentials(None, subprotocol)


def realtime_credentials(scope: Scope) -> Credentials:
    """``/v1/realtime``: ``Authorization: Bearer``, or the browser subprotocols."""
    offered = _offered(scope)
    subprotocol = REALTIME_PROTOCOL if REALTIME_PROTOCOL in offered else None
    key = _authorization(scope, ("bearer",))
    if key is not None:
        return Credentials(key, subprotocol)
    for proto in offered:
        if proto.startswith(REALTIME_KEY_PROTOCOL_PREFIX):
            return Credentials(proto[len(REALTIME_KEY_PROTOCOL_PREFIX) :], subprotocol)
    return Credentials(None, subprotocol)


def deepgram_credentials(scope: Scope) -> Credentials:
    """``/v1/listen``: ``Authorization: Token <key>`` (or ``Bearer``), or the browser
    subprotocols ``["token", "<key>"]``."""
    offered = _offered(scope)
    key = _authorization(scope, DEEPGRAM_PROTOCOLS)
    for i, proto in enumerate(offered[:-1]):
        if proto.lower() in DEEPGRAM_PROTOCOLS:
            return Credentials(offered[i + 1] if key is None else key, proto)
    return Credentials(key, None)


# --- the error shape of each API ---


@dataclass(frozen=True)
class ShapedDenial(Denial):
    """A refusal whose JSON body is the API's own error object."""

    payload: Mapping[str, Any] = field(default_factory=dict)

    def body(self) -> bytes:
        return json.dumps(self.payload).encode()


_OPENAI_CODES = {
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "forbidden"),
    429: ("rate_limit_error", "rate_limit_exceeded"),
    503: ("server_error", "service_unavailable"),
}
_DEEPGRAM_CODES = {
    401: "INVALID_AUTH",
    403: "INSUFFICIENT_PERMISSIONS",
    429: "TOO_MANY_REQUESTS",
    503: "SERVICE_UNAVAILABLE",
}


def openai_denial(denial: Denial) -> Denial:
    """The refusal as an OpenAI error object."""
    kind, code = _OPENAI_CODES.get(denial.status, ("invalid_request_error", denial.error))
    error = {"message": denial.message, "type": kind, "code": code, "param": None}
    headers = [(k, v) for k, v in denial.headers if k != b"www-authenticate"]
    if denial.status == 401:
        headers.append((b"www-authenticate", b'Bearer realm="openasr"'))
    return ShapedDenial(
        denial.status, denial.error, denial.message, headers, payload={"error": error}
    )


def deepgram_denial(denial: Denial) -> Denial:
    """The refusal as a Deepgram error object."""
    payload = {
        "err_code": _DEEPGRAM_CODES.get(denial.status, denial.error.upper()),
        "err_msg": denial.message,
        "request_id": str(uuid.uuid4()),
    }
    headers = [(k, v) for k, v in denial.headers if k != b"www-authenticate"]
    if denial.status == 401:
        headers.append((b"www-authenticate", b'Token realm="openasr"'))
    return ShapedDenial(denial.status, denial.error, denial.message, headers, payload=payload)


@dataclass(frozen=True)
class WireApi:
    """How one WebSocket API takes its key and shapes its refusals."""

    name: str
    credentials: Callable[[Scope], Credentials]
    shape: Callable[[Denial], Denial]
    missing_key: str


OPENASR = WireApi(
    "openasr", credentials, lambda d: d, "missing API key: send Authorization: Bearer <key>"
)
OPENAI_REALTIME = WireApi(
    "openai_realtime",
    realtime_credentials,
    openai_denial,
    "You didn't provide an API key: send Authorization: Bearer <key>",
)
DEEPGRAM = WireApi(
    "deepgram",
    deepgram_credentials,
    deepgram_denial,
    "Missing API key: send Authorization: Token <key>",
)


def wire_api(path: str) -> WireApi:
    """The API a WebSocket path belongs to (anything else is ``/transcribe``'s)."""
    path = path.rstrip("/")
    if path == REALTIME_PATH:
        return OPENAI_REALTIME
    if path == DEEPGRAM_PATH:
        return DEEPGRAM
    return OPENASR


def allowed_hosts() -> list[str]:
    """``ALLOWED_HOSTS`` as Django's HTTP side applies it (with DEBUG and an empty list, the
    localhost names), so WebSocket and HTTP answer the same hosts."""
    hosts = list(settings.ALLOWED_HOSTS)
    if settings.DEBUG and not hosts:
        hosts = [".localhost", "127.0.0.1", "[::1]"]
    return hosts


def request_client_ip(scope: Scope) -> str:
    """The client address for the failure limit (``X-Forwarded-For`` from trusted proxies)."""
    client = scope.get("client")
    peer = str(client[0]) if client else None
    return client_ip(
        peer, header_values(scope, b"x-forwarded-for"), settings.OPENASR.trusted_proxies
    )


class HandshakeAuthMiddleware:
    """ASGI middleware for WebSocket scopes: host and origin, then key, then the failure limit.

    On success the inner app gets ``scope["openasr.key"]`` (a ``KeyIdentity``, or None in dev
    mode) and ``scope["openasr.subprotocol"]`` (the non-secret protocol to accept with).
    """

    def __init__(self, inner: ASGIApp) -> None:
        self.inner = inner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "websocket":
            await self.inner(scope, receive, send)
            return
        ip = request_client_ip(scope)
        outcome = await self.authorize(scope, ip)
        if isinstance(outcome, Denial):
            await receive()  # websocket.connect
            await deny(scope, send, wire_api(scope.get("path", "")).shape(outcome))
            return
        identity, subprotocol = outcome
        scope = {
            **scope,
            SCOPE_KEY: identity,
            SCOPE_SUBPROTOCOL: subprotocol,
            SCOPE_CLIENT_IP: ip,
        }
        await self.inner(scope, receive, send)

    async def authorize(
        self, scope: Scope, ip: str
    ) -> Denial | tuple[KeyIdentity | None, str | None]:
        """Decide the handshake: ``(identity, subprotocol)`` to accept, or a ``Denial``."""
        cfg = settings.OPENASR
        host, hosts = header(scope, b"host"), allowed_hosts()
        if not host_allowed(host, hosts):
            log.info("handshake refused from %s: Host not allowed (DJANGO_ALLOWED_HOSTS)", ip)
            return Denial(403, "forbidden", "Host not allowed")
        origin = header(scope, b"origin")
        if not origin_allowed(origin, host, cfg.allowed_origins, allowed_hosts=hosts):
            log.info("handshake refused from %s: origin not allowed", ip)
            return Denial(403, "forbidden", "Origin not allowed")
        api = wire_api(scope.get("path", ""))
        creds = api.credentials(scope)
        try:
            if not await KEY_CACHE.auth_required():
                return None, creds.subprotocol  # dev mode (check_auth_configuration warned)
            if creds.key is None:
                reason = api.missing_key
            else:
                result = await KEY_CACHE.authenticate(creds.key)
                if result.identity is not None:
                    return result.identity, creds.subprotocol
                reason = result.reason
        except AuthUnavailable:
            log.warning("handshake refused from %s: key database unavailable", ip, exc_info=True)
            return Denial(
                503,
                "unavailable",
                "Authentication is temporarily unavailable",
                [(b"retry-after", str(DB_RETRY_AFTER_S).encode())],
            )
        verdict = await get_limiter().record_failure(ip)
        metrics.CONNECTIONS_REJECTED_AUTH.inc()
        if verdict.blocked:
            log.info("handshake refused from %s: too many auth failures (%d)", ip, verdict.count)
            return Denial(
                429,
                "too_many_requests",
                f"Too many failed authentication attempts; retry after {verdict.retry_after_s} s",
                [(b"retry-after", str(verdict.retry_after_s).encode())],
            )
        log.info("handshake refused from %s: %s", ip, reason)
        return Denial(
            401, "unauthorized", reason, [(b"www-authenticate", b'Bearer realm="openasr"')]
        )
