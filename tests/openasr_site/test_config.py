"""``openasr_site/config.py``: env over ``server.toml`` over default; a bad value stops
start-up naming the variable."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

from openasr_site.config import SETTINGS, ConfigError, load_config
from tests.support.server import REPO, base_env, free_port


def toml(tmp_path: Path, text: str) -> dict[str, str]:
    path = tmp_path / "server.toml"
    path.write_text(text)
    return {"WSS_CONFIG_PATH": str(path)}


def test_defaults_are_the_seeds(tmp_path: Path) -> None:
    """No env, no file: the seed's defaults."""
    cfg = load_config(toml(tmp_path, ""))
    assert (cfg.port, cfg.max_sessions, cfg.window_ms, cfg.overlap_ms) == (9090, 20, 20000, 2000)
    assert (cfg.log_level, cfg.log_format, cfg.beam_size, cfg.language) == ("info", "text", 1, "en")


def test_file_over_default_and_env_over_file(tmp_path: Path) -> None:
    """server.toml overrides a default; the environment overrides server.toml."""
    env = toml(tmp_path, '[server]\nmax_sessions = 7\nport = 8000\n[logging]\nformat = "json"\n')
    cfg = load_config(env)
    assert (cfg.max_sessions, cfg.port, cfg.log_format) == (7, 8000, "json")
    cfg = load_config({**env, "WSS_MAX_SESSIONS": "3"})
    assert (cfg.max_sessions, cfg.port) == (3, 8000)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("WSS_PORT", "http"),
        ("WSS_PORT", "70000"),
        ("WSS_MAX_SESSIONS", "0"),
        ("WSS_LOG_FORMAT", "xml"),
        ("WSS_LOG_LEVEL", "loud"),
        ("WSS_BEAM_SIZE", "-1"),
        ("REDIS_URL", "localhost:6379"),
        ("WSS_LANGUAGE", "xx"),
    ],
)
def test_bad_value_names_the_variable(tmp_path: Path, name: str, value: str) -> None:
    """Each bad value raises ConfigError whose message names the variable."""
    with pytest.raises(ConfigError, match=name):
        load_config({**toml(tmp_path, ""), name: value})


def test_bad_value_in_the_file_names_the_variable(tmp_path: Path) -> None:
    """A bad server.toml value is reported under its environment variable's name."""
    with pytest.raises(ConfigError, match="WSS_MAX_SESSIONS"):
        load_config(toml(tmp_path, '[server]\nmax_sessions = "many"\n'))


@pytest.mark.parametrize("overlap", ["5000", "6000"])
def test_overlap_not_below_window_fails(tmp_path: Path, overlap: str) -> None:
    """overlap ≥ window is refused, naming both variables."""
    env = {**toml(tmp_path, ""), "WSS_WINDOW_DURATION_MS": "5000"}
    with pytest.raises(ConfigError, match="WSS_OVERLAP_DURATION_MS.*WSS_WINDOW_DURATION_MS"):
        load_config({**env, "WSS_OVERLAP_DURATION_MS": overlap})


def test_missing_config_file_named_explicitly_fails(tmp_path: Path) -> None:
    """WSS_CONFIG_PATH pointing nowhere is an error, not silently ignored."""
    with pytest.raises(ConfigError, match="WSS_CONFIG_PATH"):
        load_config({"WSS_CONFIG_PATH": str(tmp_path / "nope.toml")})


@pytest.mark.e2e
def test_server_with_a_bad_value_exits_non_zero_naming_it() -> None:
    """``python -m openasr_site.server`` with WSS_MAX_SESSIONS=lots exits non-zero and says
    which variable is wrong."""
    proc = subprocess.run(
        [sys.executable, "-m", "openasr_site.server", "--port", str(free_port())],
        cwd=REPO,
        env=base_env(WSS_BACKEND="fake", WSS_MAX_SESSIONS="lots"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    assert "WSS_MAX_SESSIONS" in proc.stderr + proc.stdout


# --- the typed object ---


def test_config_is_a_frozen_dataclass_with_one_typed_field_per_setting(tmp_path: Path) -> None:
    """One field per SETTINGS entry, each holding its declared type; no attribute can be set."""
    cfg = load_config(toml(tmp_path, ""))
    assert {f.name for f in dataclasses.fields(cfg)} == {s.attr for s in SETTINGS}
    assert isinstance(cfg.window_ms, int) and isinstance(cfg.api_key_cache_s, float)
    assert isinstance(cfg.trusted_proxies, tuple) and isinstance(cfg.require_auth, bool)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.window_ms = 1  # type: ignore[misc]
    with pytest.raises(AttributeError):
        cfg.no_such_setting  # type: ignore[attr-defined]  # noqa: B018


def test_every_default_parses_and_every_setting_is_documented() -> None:
    """Each default passes its own parser, and each setting says what it means."""
    for setting in SETTINGS:
        setting.parse(setting.env, setting.default)
        assert setting.doc, setting.env


def test_replace_checks_types_and_invariants(tmp_path: Path) -> None:
    """A config derived by hand (tests) is checked like a loaded one."""
    cfg = load_config(toml(tmp_path, ""))
    assert dataclasses.replace(cfg, max_sessions=3).max_sessions == 3
    with pytest.raises(ConfigError, match="max_sessions"):
        dataclasses.replace(cfg, max_sessions="3")
    with pytest.raises(ConfigError, match="backend"):
        dataclasses.replace(cfg, backend="gpu")
    with pytest.raises(ConfigError, match="WSS_OVERLAP_DURATION_MS"):
        dataclasses.replace(cfg, overlap_ms=cfg.window_ms)


def test_repr_hides_secrets(tmp_path: Path) -> None:
    """The static key and the Redis URL (which may carry a password) never appear in a repr."""
    key = "k" * 40
    cfg = load_config({**toml(tmp_path, ""), "WSS_API_KEY": key, "REDIS_URL": "redis://:pw@h/0"})
    assert cfg.api_key == key and key not in repr(cfg) and "pw@" not in repr(cfg)


def test_effective_threads_is_capped_by_the_cpus(tmp_path: Path) -> None:
    """More inference threads than CPUs are never used."""
    cfg = load_config({**toml(tmp_path, ""), "WSS_INFERENCE_THREADS": "256"})
    assert 1 <= cfg.effective_threads <= (os.cpu_count() or 1)


# --- the connection-layer settings ---


def test_connection_layer_defaults(tmp_path: Path) -> None:
    """The defaults of docs/PROTOCOL.md "Limits"."""
    cfg = load_config(toml(tmp_path, ""))
    assert cfg.config_timeout_s == 10
    assert cfg.max_connections_per_key == 50
    assert cfg.max_new_sessions_per_key_per_min == 120
    assert cfg.max_audio_speed == 100.0
    assert cfg.max_outgoing_bytes == 8 * 1024 * 1024


def test_connection_layer_settings_from_env_and_file(tmp_path: Path) -> None:
    """Each is read from its variable or its server.toml place; 0 turns the caps off."""
    env = toml(
        tmp_path,
        "[server]\nconfig_timeout_s = 3\nmax_audio_speed = 2.5\nmax_outgoing_bytes = 65536\n",
    )
    cfg = load_config(
        {**env, "WSS_MAX_CONNECTIONS_PER_KEY": "0", "WSS_MAX_NEW_SESSIONS_PER_KEY_PER_MIN": "0"}
    )
    assert (cfg.config_timeout_s, cfg.max_audio_speed, cfg.max_outgoing_bytes) == (3, 2.5, 65536)
    assert cfg.max_connections_per_key == 0 and cfg.max_new_sessions_per_key_per_min == 0


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("WSS_CONFIG_TIMEOUT_S", "0"),
        ("WSS_MAX_CONNECTIONS_PER_KEY", "-1"),
        ("WSS_MAX_NEW_SESSIONS_PER_KEY_PER_MIN", "lots"),
        ("WSS_MAX_AUDIO_SPEED", "0.5"),
        ("WSS_MAX_AUDIO_SPEED", "1001"),
        ("WSS_MAX_AUDIO_SPEED", "nan"),
        ("WSS_MAX_OUTGOING_BYTES", "65535"),
    ],
)
def test_connection_layer_bad_values_name_the_variable(
    tmp_path: Path, name: str, value: str
) -> None:
    """Out-of-range values stop start-up naming the variable."""
    with pytest.raises(ConfigError, match=name):
        load_config({**toml(tmp_path, ""), name: value})


# --- the static key ---


@pytest.mark.parametrize("key", ["q", "short-key", "k" * 31, " " + "k" * 31 + " "])
def test_static_api_key_shorter_than_32_characters_is_refused(tmp_path: Path, key: str) -> None:
    """WSS_API_KEY under 32 characters stops start-up naming the variable, not the value."""
    with pytest.raises(ConfigError, match="WSS_API_KEY.*at least 32") as refused:
        load_config({**toml(tmp_path, ""), "WSS_API_KEY": key})
    assert key.strip() not in str(refused.value)


def test_static_api_key_of_32_characters_or_none_is_accepted(tmp_path: Path) -> None:
    """32 characters or more, or empty (no static key), start."""
    assert load_config({**toml(tmp_path, ""), "WSS_API_KEY": "k" * 32}).api_key == "k" * 32
    assert load_config({**toml(tmp_path, ""), "WSS_API_KEY": ""}).api_key == ""
    with pytest.raises(ConfigError, match="WSS_API_KEY"):
        load_config(toml(tmp_path, '[auth]\napi_key = "too-short"\n'))


def test_sentinel_addresses_are_parsed_and_checked(tmp_path: Path) -> None:
    """REDIS_SENTINELS gives (host, port) pairs; a bad item, a missing or non-redis:// REDIS_URL
    are refused naming the variable."""
    env = {**toml(tmp_path, ""), "REDIS_URL": "redis://:pw@ignored:6379/2"}
    cfg = load_config({**env, "REDIS_SENTINELS": "s1:26379, [::1]:26380"})
    assert cfg.sentinel_addresses == [("s1", 26379), ("::1", 26380)]
    assert cfg.redis_sentinel_master == "mymaster"
    assert load_config(env).sentinel_addresses == []
    with pytest.raises(ConfigError, match="REDIS_SENTINELS has item 's1'"):
        load_config({**env, "REDIS_SENTINELS": "s1"})
    with pytest.raises(ConfigError, match="REDIS_SENTINELS needs REDIS_URL"):
        load_config({**toml(tmp_path, ""), "REDIS_SENTINELS": "s1:26379"})
    with pytest.raises(ConfigError, match="REDIS_SENTINELS needs REDIS_URL"):
        load_config({**env, "REDIS_URL": "unix:///r.sock", "REDIS_SENTINELS": "s1:26379"})
