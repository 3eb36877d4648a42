"""Origin check (``transcription/auth/origin.py``)."""

from __future__ import annotations

import pytest

from transcription.auth.origin import host_allowed, normalise_origin, origin_allowed, same_origin

HOSTS = ("asr.example.com", "localhost", "127.0.0.1", "[::1]")


def test_requests_without_origin_pass() -> None:
    """Non-browser clients send no Origin; the key protects them."""
    assert origin_allowed(None, "asr.example.com", (), allowed_hosts=HOSTS)
    assert origin_allowed(None, "asr.example.com", ("https://app.example.com",), allowed_hosts=())


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
    assert origin_allowed(origin, host, (), allowed_hosts=HOSTS) is ok


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
    assert origin_allowed(origin, "asr.example.com", allowed, allowed_hosts=HOSTS) is ok


def test_wildcard_allows_every_origin() -> None:
    """``*`` allows any browser origin."""
    assert origin_allowed("https://evil.example", "asr.example.com", ("*",), allowed_hosts=HOSTS)
    assert origin_allowed("null", "asr.example.com", ("*",), allowed_hosts=HOSTS)


def test_normalise_origin() -> None:
    """Case, default ports and trailing slashes do not matter."""
    assert normalise_origin("HTTPS://App.Example.com:443/") == "https://app.example.com"
    assert normalise_origin("http://h:8080") == "http://h:8080"
    assert normalise_origin("null") == "null"


@pytest.mark.parametrize(
    ("host", "ok"),
    [
        ("localhost:9090", True),
        ("127.0.0.1:9090", True),
        ("[::1]:9090", True),
        ("asr.example.com", True),
        ("ASR.example.com:443", True),
        ("evil.example", False),
        ("asr.example.com.evil.example", False),
        ("", False),
        ("bad host", False),
        (None, True),  # not a browser: browsers always send Host
    ],
)
def test_host_must_be_an_allowed_host(host: str | None, ok: bool) -> None:
    """Host follows Django's ALLOWED_HOSTS rule (port ignored, case-insensitive)."""
    assert host_allowed(host, HOSTS) is ok


def test_subdomain_patterns_and_wildcard_hosts() -> None:
    """``.example.com`` matches the domain and its subdomains; ``*`` matches any host."""
    assert host_allowed("a.example.com", (".example.com",))
    assert host_allowed("example.com", (".example.com",))
    assert host_allowed("evil.example", ("*",))


def test_same_host_rule_needs_the_host_listed_by_name() -> None:
    """DNS rebinding: with ALLOWED_HOSTS "*" a page's own host is attacker-chosen, so the
    same-host rule never applies; listed names (and patterns) still get it."""
    rebound = ("http://evil.example:9090", "evil.example:9090")
    assert not origin_allowed(*rebound, (), allowed_hosts=("*",))
    assert not origin_allowed(*rebound, (), allowed_hosts=("*", "localhost"))
    assert origin_allowed(
        "http://localhost:9090", "localhost:9090", (), allowed_hosts=("*", "localhost")
    )
    assert origin_allowed(
        "https://a.example.com", "a.example.com", (), allowed_hosts=(".example.com",)
    )
    # an explicit WSS_ALLOWED_ORIGINS list still works behind "*"
    assert origin_allowed(*rebound, ("http://evil.example:9090",), allowed_hosts=("*",))
