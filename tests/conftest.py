"""Fixtures shared by the whole test suite."""

from __future__ import annotations

from pathlib import Path

import pytest

from transcription.modelfiles.install import install_model

REPO_ROOT = Path(__file__).resolve().parent.parent
MODELS_DIR = REPO_ROOT / "models"


@pytest.fixture(scope="session")
def tiny_model_path() -> Path:
    """The real tiny.en GGML model in <repo>/models, converted on first use (then reused)."""
    return install_model("tiny.en", MODELS_DIR)


@pytest.fixture(scope="session")
def base_model_path() -> Path:
    """The real multilingual base GGML model in <repo>/models, converted on first use."""
    return install_model("base", MODELS_DIR)
