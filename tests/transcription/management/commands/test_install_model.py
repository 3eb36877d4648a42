"""Tests for ``manage.py install_model``."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from pytest_django.fixtures import Settings

from tests.transcription.modelfiles.synthetic import whisper_variables, write_ct2_dir


def _run(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("install_model", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_prints_the_installed_path_last(tmp_path: Path) -> None:
    """The last stdout line is the absolute path; progress goes to stderr."""
    out, err = _run("tiny.en", "--models-dir", str(tmp_path))
    path = Path(out.strip().splitlines()[-1])
    assert path == (tmp_path / "ggml-tiny.en.bin").resolve()
    assert path.stat().st_size == 77_704_698
    assert "reading CTranslate2 model" in err and "installed" in err
    out, err = _run("tiny.en", "--models-dir", str(tmp_path))
    assert out.strip().splitlines()[-1] == str(path)
    assert "already installed" in err


def test_type_and_from_ct2(tmp_path: Path) -> None:
    """--type q8_0 with --from-ct2 writes ggml-<name>-q8_0.bin from that directory."""
    ct2_dir = write_ct2_dir(tmp_path / "ct2", whisper_variables(), vocab=40)
    models = str(tmp_path / "m")
    out, _ = _run("mine", "--from-ct2", str(ct2_dir), "--type", "q8_0", "--models-dir", models)
    assert Path(out.strip()).name == "ggml-mine-q8_0.bin"


def test_force_rebuilds(tmp_path: Path) -> None:
    """--force converts again although the file is installed."""
    ct2_dir = write_ct2_dir(tmp_path / "ct2", whisper_variables(), vocab=40)
    args = ("mine", "--from-ct2", str(ct2_dir), "--models-dir", str(tmp_path / "m"))
    _run(*args)
    _, err = _run(*args, "--force")
    assert "already installed" not in err and "installed" in err


def test_errors_become_command_errors(tmp_path: Path) -> None:
    """An install failure exits through CommandError with the install error's message."""
    with pytest.raises(CommandError, match="unknown model 'nonesuch'"):
        _run("nonesuch", "--models-dir", str(tmp_path))


def test_default_models_dir_is_base_dir_models(tmp_path: Path, settings: Settings) -> None:
    """Without --models-dir the file goes to settings.BASE_DIR / "models"."""
    settings.BASE_DIR = tmp_path
    out, _ = _run("tiny.en")
    assert Path(out.strip()) == (tmp_path / "models" / "ggml-tiny.en.bin").resolve()
