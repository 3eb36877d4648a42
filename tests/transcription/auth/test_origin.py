"""Origin check (``transcription/auth/origin.py``)."""

from __future__ import annotations

import pytest

from transcription.auth.origin import normalise_origin, origin_allowed, same_origin


def test_requests_without_origin_pass() -> None:
    """Non-browser clients send no Origin; the key protects them."""
    assert origin_allowed(None, "asr.example.com", ())
    assert origin_allowed(None, "asr.example.com", ("https://app.example.com",))


@pytest.mark.parametrize(
    ("origin", "host", "ok"),
    [
        ("https://asr.example.com", "asr.example.com", True),
        ("https://ASR.example.com", "asr.example.com", True),
        ("https://asr.example.com", "asr.example.com:443", True),
        ("http://localhost:9090", "localhost:9090", True),
        ("http://127.0.0.1:9090", "127.0.0.1:9090", True),
        ("http://[::1]:9090", "[::1]:9090", True),
        # behind a TLS-terminating proxy the page is https, the host header the same
        ("https://asr.example.com", "asr.example.com", True),
        ("https://evil.example", "asr.example.com", False),
        ("https://asr.example.com.evil.example", "asr.example.com", False),
        ("http://localhost:3000", "localhost:9090", False),
        ("https://asr.example.com", "asr.example.com:9090", False),
        ("null", "asr.example.com", False),
        ("https://asr.example.com", None, False),
        ("https://asr.example.com:bad", "asr.example.com", False),
    ],
)
def test_same_origin_without_allow_list(origin: str, host: str | None, ok: bool) -> None:
    """With WSS_ALLOWED_ORIGINS empty, only pages of the requested host may connect."""
    assert same_origin(origin, host) is ok
    assert origin_allowed(origin, host, ()) is ok


@pytest.mark.parametrize(
    ("origin", "ok"),
    [
        ("https://app.example.com", True),
        ("https://app.example.com/", True),
        ("https://APP.example.com:443", True),
        ("http://localhost:3000", True),
        ("http://app.example.com", False),  # scheme is part of an origin
        ("https://app.example.com:8443", False),
        ("https://asr.example.com", False),  # the list replaces same-origin
        ("https://evil.example", False),
    ],
)
def test_allow_list_is_exact(origin: str, ok: bool) -> None:
    """With WSS_ALLOWED_ORIGINS set, the origin must be one of them (scheme, host, port)."""
    allowed = ("https://app.example.com", "http://localhost:3000")
    assert origin_allowed(origin, "asr.example.com", allowed) is ok


def test_wildcard_allows_every_origin() -> None:
    """``*`` allows any browser origin."""
    assert origin_allowed("https://evil.example", "asr.example.com", ("*",))
    assert origin_allowed("null", "asr.example.com", ("*",))


def test_normalise_origin() -> None:
    """Case, default ports and trailing slashes do not matter."""
    assert normalise_origin("HTTPS://App.Example.com:443/") == "https://app.example.com"
    assert normalise_origin("http://h:8080") == "http://h:8080"
    assert normalise_origin("null") == "null"
