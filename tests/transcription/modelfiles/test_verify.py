"""Tests for the structural check and the subprocess load probe of GGML files."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pytest

from tests.transcription.modelfiles.synthetic import WHISPER_ALIASES, whisper_variables
from transcription.modelfiles import verify
from transcription.modelfiles.ct2 import Ct2Model
from transcription.modelfiles.ggml import write_ggml
from transcription.modelfiles.verify import GgmlVerifyError, probe_load, verify_ggml


@pytest.fixture
def small_ggml() -> bytes:
    """A complete, valid GGML file of a tiny synthetic Whisper model."""
    model = Ct2Model(6, "WhisperSpec", 3, whisper_variables(), WHISPER_ALIASES)
    buf = io.BytesIO()
    write_ggml(buf, model, [b"a", b"b"])
    return buf.getvalue()


def _write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "model.bin"
    path.write_bytes(data)
    return path


def test_real_tiny_model_passes(tiny_model_path: Path) -> None:
    """The converted tiny.en has the expected hparams, 167 tensors and 50,256 tokens."""
    info = verify_ggml(tiny_model_path)
    assert (info.hparams.n_vocab, info.hparams.n_audio_layer, info.hparams.n_mels) == (
        51864,
        4,
        80,
    )
    assert (info.n_tensors, info.n_tokens, info.size) == (167, 50256, 77_704_698)
    assert not info.multilingual


def test_valid_file_passes(tmp_path: Path, small_ggml: bytes) -> None:
    """A file written by write_ggml verifies, and every byte is accounted for."""
    info = verify_ggml(_write(tmp_path, small_ggml))
    assert info.size == len(small_ggml)


@pytest.mark.parametrize("keep", [3, 40, 100, 30_000, -1])
def test_truncated_file_fails(tmp_path: Path, small_ggml: bytes, keep: int) -> None:
    """Cutting the file anywhere (header, filters, vocabulary, tensors) is detected."""
    with pytest.raises(GgmlVerifyError, match="truncated|missing"):
        verify_ggml(_write(tmp_path, small_ggml[:keep]))


def test_trailing_bytes_fail(tmp_path: Path, small_ggml: bytes) -> None:
    """Extra bytes after the last tensor are read as a corrupt tensor header."""
    with pytest.raises(GgmlVerifyError):
        verify_ggml(_write(tmp_path, small_ggml + b"\0" * 20))


def test_bad_magic_fails(tmp_path: Path, small_ggml: bytes) -> None:
    """A file that is not GGML is refused by its magic."""
    with pytest.raises(GgmlVerifyError, match="bad magic"):
        verify_ggml(_write(tmp_path, b"GGUF" + small_ggml[4:]))


def test_f32_ftype_is_refused(tmp_path: Path, small_ggml: bytes) -> None:
    """ftype 0 (f32) is refused: whisper.cpp's encoder aborts on it (gotcha 11)."""
    data = small_ggml[:44] + struct.pack("<i", 0) + small_ggml[48:]
    with pytest.raises(GgmlVerifyError, match="ftype 0"):
        verify_ggml(_write(tmp_path, data))


def test_wrong_tensor_type_fails(tmp_path: Path, small_ggml: bytes) -> None:
    """A tensor stored with another type than the loader declares is refused."""
    name = b"encoder.positional_embedding"
    at = small_ggml.index(name) - 8 - 12  # ne[2] and (n_dims, name_len, ttype) precede the name
    n_dims, name_len, _ = struct.unpack("<3i", small_ggml[at : at + 12])
    assert (n_dims, name_len) == (2, len(name))
    data = small_ggml[:at] + struct.pack("<3i", 2, len(name), 1) + small_ggml[at + 12 :]
    with pytest.raises(GgmlVerifyError, match="positional_embedding has type 1"):
        verify_ggml(_write(tmp_path, data))


def test_unknown_tensor_fails(tmp_path: Path, small_ggml: bytes) -> None:
    """A tensor whisper.cpp does not know (such as a key bias) is refused."""
    name = b"encoder.blocks.0.attn.key.bias"
    extra = struct.pack("<3i", 1, len(name), 0) + struct.pack("<i", 32) + name + bytes(128)
    with pytest.raises(GgmlVerifyError, match="unknown tensor"):
        verify_ggml(_write(tmp_path, small_ggml + extra))


def test_missing_file_fails(tmp_path: Path) -> None:
    """A missing file is a GgmlVerifyError, not an OSError."""
    with pytest.raises(GgmlVerifyError, match="no such file"):
        verify_ggml(tmp_path / "nope.bin")


def test_probe_refuses_a_bad_file_without_loading(tmp_path: Path, small_ggml: bytes) -> None:
    """probe_load reports a structurally bad file without starting pywhispercpp."""
    result = probe_load(_write(tmp_path, small_ggml[:1000]))
    assert not result.ok and result.returncode is None
    assert "truncated" in (result.error or "")


@pytest.mark.slow
def test_probe_loads_the_real_model(tiny_model_path: Path) -> None:
    """probe_load loads tiny.en in a child process and transcribes silence."""
    result = probe_load(tiny_model_path)
    assert result.ok, result.error


@pytest.mark.slow
def test_probe_survives_a_crashing_load(
    tmp_path: Path, tiny_model_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file that crashes pywhispercpp comes back as ok=False instead of killing the caller."""
    truncated = _write(tmp_path, tiny_model_path.read_bytes()[:30_000_000])
    monkeypatch.setattr(verify, "verify_ggml", lambda path: None)  # let the bad file through
    result = verify.probe_load(truncated)
    assert not result.ok
    assert result.returncode != 0
    assert "pywhispercpp failed to load it" in (result.error or "")
