"""Fixtures for the auth tests: settings overrides and fresh in-process caches."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from openasr_site.config import ServerConfig
from transcription.auth import ratelimit
from transcription.auth.keys import KEY_CACHE

# Auth settings as a fresh, keyless server has them (the test process's env must not leak in).
AUTH_DEFAULTS: dict[str, Any] = {
    "api_key": "",
    "require_auth": False,
    "trusted_proxies": (),
    "allowed_origins": (),
    "auth_failure_limit": 10,
    "auth_failure_window_s": 60,
    "api_key_cache_s": 0.0,
    "key_rotation_grace_s": 86400,
    "redis_url": "",
    "max_new_sessions_per_key_per_min": 120,
}


@pytest.fixture(autouse=True)
def _fresh_auth_state() -> Iterator[None]:
    KEY_CACHE.clear()
    ratelimit._limiter = ratelimit._session_limiter = None
    yield
    KEY_CACHE.clear()
    ratelimit._limiter = ratelimit._session_limiter = None


@pytest.fixture
def configure(settings: Any) -> Callable[..., ServerConfig]:
    """Set ``settings.OPENASR`` to the auth defaults plus overrides (restored after the test)."""
    base = settings.OPENASR

    def apply(**overrides: Any) -> ServerConfig:
        settings.OPENASR = dataclasses.replace(base, **{**AUTH_DEFAULTS, **overrides})
        return settings.OPENASR

    apply()
    return apply
