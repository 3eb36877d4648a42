"""Fixtures of the chaos tests: the real model, a migrated database, one short recording."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import migrated_db
from tests.support import speech


@pytest.fixture(scope="session")
def chaos_env(tiny_model_path: Path) -> dict[str, str]:
    """What every process of a chaos deployment shares (same secret: checkpoints verify on
    every node)."""
    return {
        "WHISPER_MODEL_PATH": str(tiny_model_path),
        "DATABASE_URL": migrated_db(),
        "DJANGO_SECRET_KEY": "openasr-chaos-test-secret-0123456789-abcdefghijklmnop",
        "WSS_ADMISSION_HEADROOM": "0",
    }


@pytest.fixture(scope="session")
def recording() -> speech.Composition:
    """About 20 s of speech: four sentences, two clear voices."""
    return speech.compose(speech.SENTENCES[:4], speech.VOICES[:2])
