from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import _pywhispercpp as pw
import numpy as np
import pytest

from transcription.inference import backend as backend_mod
from transcription.inference import base, whisper_shared
from transcription.inference.backend import load_backend
from transcription.inference.base import (
    DTW_AHEADS_PRESETS,
    check_model_file,
    dtw_context_params,
    effective_threads,
    model_name_from_path,
    run_window,
)
from transcription.inference.fake import FakeBackend
from transcription.inference.types import InferenceRequest
from transcription.languages import Detected


@pytest.fixture
def ggml_file(tmp_path: Path) -> Path:
    path = tmp_path / "ggml-tiny.en.bin"
    path.write_bytes(base.GGML_MAGIC_BYTES + b"\0" * 64)
    return path


def test_missing_model_file_is_refused(tmp_path: Path) -> None:
    """A path that does not exist raises FileNotFoundError naming it."""
    with pytest.raises(FileNotFoundError, match="does not exist"):
        check_model_file(tmp_path / "missing.bin")


def test_file_without_ggml_magic_is_refused(tmp_path: Path) -> None:
    """A file that is not GGML is refused before any loader sees it."""
    path = tmp_path / "model.bin"
    path.write_bytes(b"PK\x03\x04 not a model")
    with pytest.raises(ValueError, match="not a GGML"):
        check_model_file(path)


def test_ggml_file_resolves_to_an_absolute_path(ggml_file: Path) -> None:
    """A valid file comes back absolute, so pywhispercpp never treats it as a model name."""
    assert check_model_file(ggml_file).is_absolute()


def test_model_name_comes_from_the_file_name() -> None:
    """ggml-tiny.en.bin is called tiny.en."""
    assert model_name_from_path(Path("/m/ggml-tiny.en.bin")) == "tiny.en"
    assert model_name_from_path(Path("/m/custom.bin")) == "custom"


def test_dtw_context_params_pick_the_model_alignment_heads() -> None:
    """DTW turns flash attention off and names whisper.h's preset of the model; quantised
    files use their architecture's heads; a model without a preset is refused by name."""
    assert dtw_context_params("tiny.en") == {
        "flash_attn": False,
        "dtw_token_timestamps": True,
        "dtw_aheads_preset": 3,
    }
    assert dtw_context_params("base-q8_0")["dtw_aheads_preset"] == 6
    assert dtw_context_params("large-v3-turbo-q5_0")["dtw_aheads_preset"] == 14
    with pytest.raises(ValueError, match="custom"):
        dtw_context_params("custom")


def test_dtw_presets_match_whisper_h() -> None:
    """Each preset number is whisper.h's enum value of that model (pywhispercpp's mirror)."""
    members = pw.whisper_alignment_heads_preset.__members__
    for name, value in DTW_AHEADS_PRESETS.items():
        member = "WHISPER_AHEADS_" + name.upper().replace(".", "_").replace("-", "_")
        assert int(members[member]) == value, name


@pytest.mark.parametrize(("asked", "budget", "used"), [(1, 2, 1), (4, 2, 2), (0, 3, 3)])
def test_request_threads_are_capped_by_the_backend_budget(
    asked: int, budget: int, used: int
) -> None:
    """A request gets the threads it asks for, at most the configured budget (0 = budget)."""
    assert effective_threads(InferenceRequest(n_threads=asked), budget) == used


def test_shared_falls_back_to_pywhispercpp_with_a_warning(
    ggml_file: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """When the ctypes binding fails its self-check, load_backend uses pywhispercpp (with the
    DTW setting too)."""

    def broken(*args: Any, **kwargs: Any) -> None:
        raise whisper_shared.BindingError("whisper.h layout mismatch: test")

    class StubPwc:
        def __init__(self, path: Path, *, concurrency: int, n_threads: int, dtw: bool) -> None:
            self.args = (path, concurrency, n_threads, dtw)

    monkeypatch.setattr(backend_mod, "SharedWhisperBackend", broken)
    monkeypatch.setattr(backend_mod, "PyWhisperCppBackend", StubPwc)
    with caplog.at_level(logging.WARNING):
        backend = load_backend("shared", ggml_file, concurrency=2, n_threads=1, dtw=True)
    assert isinstance(backend, StubPwc)
    assert backend.args == (ggml_file, 2, 1, True)
    assert "falling back to pywhispercpp" in caplog.text


def test_model_load_errors_are_not_hidden_by_the_fallback(
    ggml_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A model that fails to load raises; only binding errors trigger the fallback."""

    def bad_model(*args: Any, **kwargs: Any) -> None:
        raise ValueError("whisper.cpp could not load it")

    monkeypatch.setattr(backend_mod, "SharedWhisperBackend", bad_model)
    with pytest.raises(ValueError, match="could not load"):
        load_backend("shared", ggml_file, concurrency=1, n_threads=1)


def test_unknown_kind_and_bad_counts_are_refused(ggml_file: Path) -> None:
    """load_backend names the rule that a bad argument breaks."""
    with pytest.raises(ValueError, match="backend must be one of"):
        load_backend("onnx", ggml_file, concurrency=1, n_threads=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="concurrency"):
        load_backend("fake", ggml_file, concurrency=0, n_threads=1)
    with pytest.raises(ValueError, match="n_threads"):
        load_backend("fake", ggml_file, concurrency=1, n_threads=0)


@pytest.mark.parametrize(
    ("language", "multilingual", "given"),
    [("de", True, "de"), ("auto", True, "auto"), ("zz", True, "auto"), ("de", False, "en")],
)
def test_no_language_value_fails_a_window(language: str, multilingual: bool, given: str) -> None:
    """whisper.cpp is given a code it knows: unknown codes are detected, English-only is en."""
    assert base.whisper_language(language, multilingual) == given


def test_a_multilingual_model_detects_an_auto_window_and_reports_the_language() -> None:
    """run_window: "auto" on a multilingual backend detects first, transcribes in the
    detected language and returns the detection; a given code or an English-only model
    detects nothing."""
    backend = FakeBackend(multilingual=True, language="de", language_probability=0.91)
    audio = np.full(16000, 0.1, dtype=np.float32)
    _, found = run_window(backend, audio, InferenceRequest(language="auto"))
    assert found == Detected("de", 0.91)
    assert run_window(backend, audio, InferenceRequest(language="fr"))[1] is None
    assert run_window(FakeBackend(), audio, InferenceRequest(language="auto"))[1] is None


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["shared", "pywhispercpp"])
def test_base_detects_german_speech_with_a_clear_probability(
    kind: str, base_model_path: Path
) -> None:
    """whisper.cpp's language detection on a real German sentence: de, p > 0.8, through
    either backend's binding (pywhispercpp fills the probabilities in place), and the same
    after a call with a short audio_ctx on the same state (an interim pass): detection hears
    the whole window, not the audio_ctx whisper.cpp kept from that call."""
    from tests.support.multi import clips

    clip = clips("de")[0]
    backend = load_backend(kind, base_model_path, concurrency=1, n_threads=2)  # type: ignore[arg-type]
    try:
        found = backend.detect_language(clip.samples, InferenceRequest(language="auto"))
        backend.transcribe(clip.samples[:16000], InferenceRequest(language="de", audio_ctx=64))
        after_short = backend.detect_language(clip.samples, InferenceRequest(language="auto"))
    finally:
        backend.close()
    assert found.code == "de" and found.probability > 0.8
    assert after_short == found


def test_every_call_sets_the_translate_task_from_the_request() -> None:
    """common_params sets whisper.cpp's translate flag each call (params persist between
    calls in pywhispercpp), from the request: a translated window never leaks into the next."""
    assert base.common_params(InferenceRequest(translate=True))["translate"] is True
    assert base.common_params(InferenceRequest())["translate"] is False
