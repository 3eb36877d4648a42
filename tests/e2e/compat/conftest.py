"""Fixtures for the compatible APIs end to end: one real daphne with the real tiny.en model and
an API key, the clips every path transcribes, and the WER of each path (printed at the end)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.e2e.conftest import migrated_db
from tests.support.server import Server, start_server
from tests.support.speech import Composition, compose, resample

KEY = "compat-e2e-key-0123456789abcdef0123456789"
# Four clear sentences, one voice per sentence, pauses long enough for server VAD (500 ms)
# and the Deepgram endpoint (300 ms).
SENTENCES = (
    "Please remember to bring the blue folder to the meeting tomorrow morning.",
    "She walked slowly along the beach while the sun was setting.",
    "The doctor asked me to drink more water and get more sleep.",
    "They opened a new bakery on the corner of our street last week.",
)
WER_BY_PATH: dict[str, float] = {}


@pytest.fixture(scope="session")
def compat_server(tiny_model_path: Path) -> Iterator[Server]:
    """daphne serving /transcribe, /v1/realtime and /v1/listen with one API key."""
    server = start_server(
        {
            "WHISPER_MODEL_PATH": str(tiny_model_path),
            "DATABASE_URL": migrated_db(),
            "WSS_API_KEY": KEY,
        }
    )
    yield server
    server.stop()
    if WER_BY_PATH:
        print("\nWER by path:", {k: round(v, 3) for k, v in sorted(WER_BY_PATH.items())})


@pytest.fixture(scope="session")
def clip() -> Composition:
    """The clip every path transcribes (16 kHz float)."""
    return compose(SENTENCES, ("hibari", "flite-rms"), pauses_ms=(1200,), tail_ms=1500)


def pcm16(audio: np.ndarray) -> bytes:
    return (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()


def g711(audio16k: np.ndarray, law: str = "ulaw") -> bytes:
    """The clip as 8 kHz G.711 (telephony), through the standard library's reference codec."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import audioop
    pcm = pcm16(resample(audio16k, 16000, 8000))
    return audioop.lin2ulaw(pcm, 2) if law == "ulaw" else audioop.lin2alaw(pcm, 2)
