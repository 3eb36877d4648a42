"""Model and speech fixtures for the whisper backend tests.

The model comes from ``tiny_model_path`` in tests/conftest.py (owned by the converter); until
that fixture exists, every model test is skipped with the reason.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

SENTENCE = "Please remember to bring the blue folder to the meeting tomorrow morning."
OTHER_SENTENCE = "The train to the city leaves from the station after lunch."
VOICE = "flite-rms"


def normalise(text: str) -> str:
    """Lower case, punctuation removed (apostrophes kept), single spaces."""
    return " ".join(re.sub(r"[^\w' ]", " ", text.lower()).split())


@pytest.fixture(scope="module")
def model_path(request: pytest.FixtureRequest) -> Path:
    try:
        path = request.getfixturevalue("tiny_model_path")
    except pytest.FixtureLookupError:
        pytest.skip("tests/conftest.py has no tiny_model_path fixture yet (converter pending)")
    return Path(path)


@pytest.fixture(scope="module")
def speech() -> tuple[np.ndarray, str]:
    from tests.support.speech import synthesize

    return synthesize(SENTENCE, VOICE), SENTENCE


@pytest.fixture(scope="module")
def speech_pair(speech: tuple[np.ndarray, str]) -> list[tuple[np.ndarray, str]]:
    from tests.support.speech import synthesize

    return [speech, (synthesize(OTHER_SENTENCE, VOICE), OTHER_SENTENCE)]


@pytest.fixture(scope="module")
def shared_backend(model_path: Path) -> Iterator[object]:
    from transcription.inference.whisper_shared import SharedWhisperBackend

    backend = SharedWhisperBackend(model_path, concurrency=1, n_threads=2)
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def pwc_backend(model_path: Path) -> Iterator[object]:
    from transcription.inference.whisper_pwc import PyWhisperCppBackend

    backend = PyWhisperCppBackend(model_path, concurrency=1, n_threads=2)
    yield backend
    backend.close()
