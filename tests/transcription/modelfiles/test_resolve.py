"""Tests for resolving the configured model to an existing file."""

from __future__ import annotations

from pathlib import Path

import pytest

from transcription.modelfiles.resolve import ModelPathError, resolve_model_path


def test_env_path_wins(tmp_path: Path) -> None:
    """WHISPER_MODEL_PATH is used even when the default model exists."""
    (tmp_path / "ggml-tiny.en.bin").write_bytes(b"x")
    custom = tmp_path / "custom.bin"
    custom.write_bytes(b"x")
    assert resolve_model_path(str(custom), tmp_path) == custom.resolve()


def test_missing_env_path_is_an_error_not_a_download(tmp_path: Path) -> None:
    """A WHISPER_MODEL_PATH that does not exist raises, naming the variable (never a bare name)."""
    (tmp_path / "ggml-tiny.en.bin").write_bytes(b"x")
    with pytest.raises(ModelPathError, match="WHISPER_MODEL_PATH='tiny.en'"):
        resolve_model_path("tiny.en", tmp_path)


def test_default_name_in_models_dir(tmp_path: Path) -> None:
    """Without WHISPER_MODEL_PATH the file is models_dir/ggml-<default_name>.bin, absolute."""
    (tmp_path / "ggml-base.bin").write_bytes(b"x")
    for env in (None, "", "  "):
        path = resolve_model_path(env, tmp_path, default_name="base")
        assert path == (tmp_path / "ggml-base.bin").resolve() and path.is_absolute()


def test_missing_default_model_says_how_to_install(tmp_path: Path) -> None:
    """A missing default model names the install_model command."""
    with pytest.raises(ModelPathError, match="manage.py install_model tiny.en"):
        resolve_model_path(None, tmp_path)


def test_error_is_a_file_not_found_error(tmp_path: Path) -> None:
    """Callers catching FileNotFoundError also catch ModelPathError."""
    with pytest.raises(FileNotFoundError):
        resolve_model_path(str(tmp_path / "missing.bin"), tmp_path)
