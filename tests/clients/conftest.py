"""Fixtures for the client tests: generated speech files and a real server with tiny.en."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.server import REPO, Server, start_server
from tests.support.speech import SENTENCES, Composition, compose, write_wav

try:
    import openasr_client  # noqa: F401
except ImportError:  # not pip-installed (make install does): use the checkout, here and in
    # the CLI subprocesses the tests start
    CLIENT_SRC = str(REPO / "clients" / "python")
    sys.path.insert(0, CLIENT_SRC)
    os.environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [CLIENT_SRC, os.environ.get("PYTHONPATH")])
    )

MODEL_PATH = REPO / "models" / "ggml-tiny.en.bin"
API_KEY = "clienttest." + "k" * 43  # the server's single WSS_API_KEY for these tests


@dataclass(frozen=True)
class SpeechFile:
    """A WAV of composed sentences and what was said."""

    path: Path
    composition: Composition
    sentences: tuple[str, ...]


def _migrated_db() -> str:
    path = Path(tempfile.mkdtemp(prefix="openasr-clients-")) / "db.sqlite3"
    url = f"sqlite:///{path}"
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=REPO,
        env={**os.environ, "DATABASE_URL": url},
        check=True,
    )
    return url


@pytest.fixture(scope="session")
def speech_file(tmp_path_factory: pytest.TempPathFactory) -> SpeechFile:
    """Four sentences in two clear voices with varied pauses (about 15 s), as a 16 kHz WAV."""
    sentences = SENTENCES[:4]
    composition = compose(sentences, ("hibari", "flite-rms"), noise_level=0.002)
    path = tmp_path_factory.mktemp("speech") / "four-sentences.wav"
    write_wav(path, composition.audio)
    return SpeechFile(path, composition, sentences)


@pytest.fixture(scope="session")
def asr_server() -> Iterator[Server]:
    """A real daphne server with the real tiny.en model, requiring ``API_KEY``."""
    if not MODEL_PATH.exists():
        subprocess.run(
            [sys.executable, "manage.py", "install_model", "tiny.en"], cwd=REPO, check=True
        )
    server = start_server(
        {
            "WHISPER_MODEL_PATH": str(MODEL_PATH),
            "DATABASE_URL": _migrated_db(),
            "WSS_API_KEY": API_KEY,
        }
    )
    yield server
    server.stop()
