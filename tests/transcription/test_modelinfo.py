"""``transcription/modelinfo.py``: the served models (worker pools) and which one serves."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from django.conf import settings

from transcription import modelinfo
from transcription.inference.base import GGML_MAGIC_BYTES
from transcription.modelinfo import find_model, route, served_models


@pytest.fixture
def models_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A models/ with an English-only tiny.en and a multilingual base (headers only)."""
    for name, n_vocab in (("tiny.en", 51864), ("base", 51865)):
        header = GGML_MAGIC_BYTES + n_vocab.to_bytes(4, "little", signed=True)
        (tmp_path / f"ggml-{name}.bin").write_bytes(header + b"\0" * 16)
    monkeypatch.setattr(modelinfo, "models_dir", lambda: tmp_path)
    return tmp_path


def cfg(**changes: object) -> object:
    base = {"model_path": "", "model_name": "tiny.en", "models": (), "redis_url": ""}
    return dataclasses.replace(settings.OPENASR, **{**base, **changes})


def test_in_process_serves_every_installed_bundled_model_default_first(models_dir: Path) -> None:
    """No Redis, WSS_MODELS empty: tiny.en (WSS_MODEL) then base, each with its kind."""
    served = served_models(cfg())
    assert [(m.model_id, m.multilingual) for m in served] == [
        ("whisper-tiny.en", False),
        ("whisper-base", True),
    ]


def test_with_redis_only_the_default_and_wss_models_are_served(models_dir: Path) -> None:
    """With Redis the pools are the default plus WSS_MODELS (workers run elsewhere)."""
    assert [m.model_id for m in served_models(cfg(redis_url="redis://x"))] == ["whisper-tiny.en"]
    both = served_models(cfg(redis_url="redis://x", models=("base",)))
    assert [m.model_id for m in both] == ["whisper-tiny.en", "whisper-base"]
    assert [m.model_id for m in served_models(cfg(models=("tiny.en",)))] == ["whisper-tiny.en"]


@pytest.mark.parametrize("asked", ["whisper-base", "base", "BASE", "ggml-base.bin"])
def test_a_model_id_names_a_pool_by_our_id_its_name_or_its_file(
    models_dir: Path, asked: str
) -> None:
    """Our id, the short name and the file name all find base."""
    found = find_model(cfg(), asked)
    assert found is not None and found.model_id == "whisper-base"


@pytest.mark.parametrize("asked", ["whisper-large-v3", "whisper-1", "nova-3", ""])
def test_an_unknown_model_id_is_served_by_the_default_model(models_dir: Path, asked: str) -> None:
    """The seed's clients send any id: the default model serves it."""
    assert route(cfg(), asked, "en").model_id == "whisper-tiny.en"


@pytest.mark.parametrize("language", ["de", "auto", "German"])
def test_a_non_english_session_on_the_english_only_model_goes_to_a_multilingual_one(
    models_dir: Path, language: str
) -> None:
    """tiny.en asked for German (or auto): base serves it; English stays on tiny.en."""
    assert route(cfg(), "whisper-tiny.en", language).model_id == "whisper-base"
    assert route(cfg(), "whisper-tiny.en", "en").model_id == "whisper-tiny.en"
    assert route(cfg(), "whisper-base", "en").model_id == "whisper-base"


def test_translation_on_the_english_only_model_goes_to_a_multilingual_one(
    models_dir: Path,
) -> None:
    """task translate, even of English: base serves it (tiny.en has no translate task)."""
    assert route(cfg(), "whisper-tiny.en", "en", "translate").model_id == "whisper-base"
    assert route(cfg(), "whisper-tiny.en", "de", "translate").model_id == "whisper-base"
    assert route(cfg(), "whisper-tiny.en", "en", "transcribe").model_id == "whisper-tiny.en"


def test_without_a_multilingual_model_the_english_only_one_is_returned(models_dir: Path) -> None:
    """Nothing to reroute to: tiny.en comes back, and check_config refuses the language."""
    only_tiny = cfg(models=("tiny.en",))
    assert route(only_tiny, "whisper-base", "de").model_id == "whisper-tiny.en"
