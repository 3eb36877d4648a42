"""``openasr_site/settings.py``: the secret key (env, or a 0600 file created atomically), its
fallbacks, and the hosts the server answers."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from openasr_site import settings as site_settings
from openasr_site.settings import read_or_create_secret
from tests.support.server import REPO


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_secret_file_is_created_0600_and_reused(tmp_path: Path) -> None:
    """No env secret: a random key is written to var/secret_key, mode 0600, and read back on
    the next start; no temporary file is left behind."""
    path = tmp_path / "var" / "secret_key"
    key = read_or_create_secret(path)
    assert len(key) >= 50 and path.read_text() == key
    assert mode(path) == 0o600
    assert read_or_create_secret(path) == key
    assert [p.name for p in path.parent.iterdir()] == ["secret_key"]


def test_secret_file_is_0600_from_its_first_byte(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Even with umask 0: the file is created with mode 0600 (never chmod-ed after writing),
    and it appears at its final name only complete."""
    seen: list[tuple[int, str]] = []
    real_link = os.link

    def link(src: str | Path, dst: str | Path) -> None:
        seen.append((mode(Path(src)), Path(src).read_text()))
        real_link(src, dst)

    def no_chmod(*args: object) -> None:
        raise AssertionError("the secret file must not need a chmod")

    monkeypatch.setattr(os, "link", link)
    monkeypatch.setattr(os, "chmod", no_chmod)
    old = os.umask(0)
    try:
        key = read_or_create_secret(tmp_path / "secret_key")
    finally:
        os.umask(old)
    assert seen == [(0o600, key)]
    assert mode(tmp_path / "secret_key") == 0o600


def test_racing_processes_agree_on_one_secret(tmp_path: Path) -> None:
    """Many starts at once (threads here, processes in real life) all end up with the key
    that is on disk: the loser of the race reads the winner's file."""
    path = tmp_path / "secret_key"
    barrier = threading.Barrier(8)
    keys: list[str] = []

    def start() -> None:
        barrier.wait()
        keys.append(read_or_create_secret(path))

    threads = [threading.Thread(target=start) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(keys) == 8 and set(keys) == {path.read_text()}
    assert [p.name for p in tmp_path.iterdir()] == ["secret_key"]


def test_racing_processes_agree_on_one_secret_across_processes(tmp_path: Path) -> None:
    """Two interpreters starting at once read the same key."""
    code = (
        "import sys; from pathlib import Path; "
        "from openasr_site.settings import read_or_create_secret; "
        "print(read_or_create_secret(Path(sys.argv[1])))"
    )
    env = {**os.environ, "DJANGO_SECRET_KEY": "unused-here"}
    env.pop("WSS_API_KEY", None)
    path = tmp_path / "secret_key"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(path)],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outs = [proc.communicate(timeout=60)[0].strip() for proc in procs]
    assert outs[0] == outs[1] == path.read_text()


def test_a_world_readable_secret_file_is_tightened(tmp_path: Path) -> None:
    """A file left readable by others (an older version wrote it before its chmod) is made
    0600 on start."""
    path = tmp_path / "secret_key"
    path.write_text("old-secret")
    path.chmod(0o644)
    assert read_or_create_secret(path) == "old-secret"
    assert mode(path) == 0o600


def test_an_empty_secret_file_stops_start_up(tmp_path: Path) -> None:
    """An empty file is an error naming it, not an empty secret."""
    from django.core.exceptions import ImproperlyConfigured

    (tmp_path / "secret_key").write_text("")
    with pytest.raises(ImproperlyConfigured, match="secret_key is empty"):
        read_or_create_secret(tmp_path / "secret_key")


def _settings_in_subprocess(env: dict[str, str], expr: str) -> str:
    """Evaluate ``expr`` over a freshly imported settings module with ``env``."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "WSS_API_KEY"))}
    out = subprocess.run(
        [sys.executable, "-c", f"import openasr_site.settings as s; print({expr})"],
        cwd=REPO,
        env={**base, "DJANGO_SECRET_KEY": "current", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return out.stdout.strip()


def test_env_secret_wins_and_no_file_is_written(tmp_path: Path) -> None:
    """DJANGO_SECRET_KEY set: used as is, OPENASR_VAR_DIR untouched; unset: the file's key."""
    env = {"DJANGO_SECRET_KEY": " s3cret ", "OPENASR_VAR_DIR": str(tmp_path)}
    assert _settings_in_subprocess(env, "s.SECRET_KEY") == "s3cret"
    assert list(tmp_path.iterdir()) == []
    key = _settings_in_subprocess({**env, "DJANGO_SECRET_KEY": ""}, "s.SECRET_KEY")
    assert key == (tmp_path / "secret_key").read_text()


def test_secret_key_fallbacks_are_read_comma_separated() -> None:
    """DJANGO_SECRET_KEY_FALLBACKS="a, b" → SECRET_KEY_FALLBACKS ["a", "b"]; unset → []."""
    got = _settings_in_subprocess(
        {"DJANGO_SECRET_KEY_FALLBACKS": "old-1, old-2,"}, "s.SECRET_KEY_FALLBACKS"
    )
    assert got == "['old-1', 'old-2']"
    assert _settings_in_subprocess({}, "s.SECRET_KEY_FALLBACKS") == "[]"


def test_allowed_hosts_default_to_localhost_and_env_overrides() -> None:
    """Never "*" by default; DJANGO_ALLOWED_HOSTS replaces the list."""
    assert _settings_in_subprocess({}, "s.ALLOWED_HOSTS") == "['localhost', '127.0.0.1', '[::1]']"
    got = _settings_in_subprocess(
        {"DJANGO_ALLOWED_HOSTS": "asr.example.com, 10.0.0.7"}, "s.ALLOWED_HOSTS"
    )
    assert got == "['asr.example.com', '10.0.0.7']"
    assert site_settings.DEFAULT_ALLOWED_HOSTS == "localhost,127.0.0.1,[::1]"
