"""``openasr_site/config.py``: env over ``server.toml`` over default; a bad value stops
start-up naming the variable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from openasr_site.config import ConfigError, load_config
from tests.support.server import REPO, base_env, free_port


def toml(tmp_path: Path, text: str) -> dict[str, str]:
    path = tmp_path / "server.toml"
    path.write_text(text)
    return {"WSS_CONFIG_PATH": str(path)}


def test_defaults_are_the_seeds(tmp_path: Path) -> None:
    """No env, no file: the seed's defaults."""
    cfg = load_config(toml(tmp_path, ""))
    assert (cfg.port, cfg.max_sessions, cfg.window_ms, cfg.overlap_ms) == (9090, 20, 20000, 2000)
    assert (cfg.log_level, cfg.log_format, cfg.beam_size, cfg.language) == ("info", "text", 5, "en")


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
