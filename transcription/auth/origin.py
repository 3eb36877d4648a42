"""Origin check against cross-site WebSocket hijacking (PROTOCOL.md "Transport and auth").

Browsers send ``Origin`` on every WebSocket upgrade and let any page open a socket to any host,
so a page on another site could use a browser's network position. A request with an ``Origin``
must come from ``WSS_ALLOWED_ORIGINS`` (exact ``scheme://host[:port]``, or ``*``), or, when that
list is empty, from the host the request was sent to. Requests without ``Origin`` are not from a
browser and pass (the API key protects them).
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

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


def origin_allowed(origin: str | None, host_header: str | None, allowed: Sequence[str]) -> bool:
    """The rule of this module: no ``Origin`` passes; else the allow-list, or same host."""
    if origin is None:
        return True
    if allowed:
        return "*" in allowed or normalise_origin(origin) in {normalise_origin(a) for a in allowed}
    return same_origin(origin, host_header)
