"""Host and Origin checks against cross-site WebSocket hijacking and DNS rebinding
(docs/PROTOCOL.md "Transport and auth").

Browsers send ``Origin`` on every WebSocket upgrade and let any page open a socket to any host,
so a page on another site could use a browser's network position. A request with an ``Origin``
must come from ``WSS_ALLOWED_ORIGINS`` (exact ``scheme://host[:port]``, or ``*``), or, when that
list is empty, from the host the request was sent to. Requests without ``Origin`` are not from a
browser and pass (the API key protects them).

"The host the request was sent to" is the ``Host`` header, which names whatever DNS name the
browser resolved: a page on ``evil.example`` whose DNS record is rebound to 127.0.0.1 sends
``Host: evil.example`` and ``Origin: http://evil.example``. So ``Host`` must first be one of
Django's ``ALLOWED_HOSTS`` (else HTTP 403), and the same-host rule trusts only a ``Host``
listed there by name: with ``ALLOWED_HOSTS = ["*"]`` it never applies.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

from django.http.request import split_domain_port, validate_host

DEFAULT_PORTS = {"http": 80, "ws": 80, "https": 443, "wss": 443}


def normalise_origin(origin: str) -> str:
    """``scheme://host[:port]`` lower-cased, default port and trailing slash dropped."""
    parts = urlsplit(origin.strip().lower())
    if not parts.scheme or not parts.hostname:
        return origin.strip().lower()  # "null" and other opaque origins compare as-is
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    try:
        port = parts.port
    except ValueError:
        return origin.strip().lower()
    if port is None or port == DEFAULT_PORTS.get(parts.scheme):
        return f"{parts.scheme}://{host}"
    return f"{parts.scheme}://{host}:{port}"


def _host_port(host_header: str, default_port: int | None) -> tuple[str, int | None]:
    parts = urlsplit(f"//{host_header.strip().lower()}")
    try:
        port = parts.port
    except ValueError:
        port = -1  # unparseable: matches nothing
    return parts.hostname or "", port if port is not None else default_port


def same_origin(origin: str, host_header: str | None) -> bool:
    """Whether ``Origin`` names the host (and port) the request was sent to. The scheme is not
    compared: behind a TLS-terminating proxy the server sees ``ws`` for an ``https`` page."""
    if not host_header:
        return False
    parts = urlsplit(origin.strip().lower())
    if not parts.scheme or not parts.hostname:
        return False
    default_port = DEFAULT_PORTS.get(parts.scheme)
    try:
        origin_port = parts.port if parts.port is not None else default_port
    except ValueError:
        return False
    return (parts.hostname, origin_port) == _host_port(host_header, default_port)


def _host_matches(host_header: str, allowed_hosts: Sequence[str]) -> bool:
    domain, _port = split_domain_port(host_header)
    return bool(domain) and validate_host(domain, allowed_hosts)


def host_allowed(host_header: str | None, allowed_hosts: Sequence[str]) -> bool:
    """Whether ``Host`` names this server (Django's ``ALLOWED_HOSTS`` rule, port ignored). A
    request without ``Host`` is not from a browser (browsers always send it) and passes."""
    return host_header is None or _host_matches(host_header, allowed_hosts)


def origin_allowed(
    origin: str | None,
    host_header: str | None,
    allowed: Sequence[str],
    *,
    allowed_hosts: Sequence[str],
) -> bool:
    """The rule of this module: no ``Origin`` passes; else the allow-list, or same host when
    ``Host`` is listed by name in ``allowed_hosts`` (not merely matched by ``*``)."""
    if origin is None:
        return True
    if allowed:
        return "*" in allowed or normalise_origin(origin) in {normalise_origin(a) for a in allowed}
    named_hosts = [h for h in allowed_hosts if h != "*"]
    return (
        host_header is not None
        and _host_matches(host_header, named_hosts)
        and same_origin(origin, host_header)
    )
