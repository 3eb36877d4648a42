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
    """About 14 s of speech: three sentences, two clear voices (the failures happen at 7 s)."""
    return speech.compose(speech.SENTENCES[:3], speech.VOICES[:2])
