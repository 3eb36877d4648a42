from __future__ import annotations

import sys
import threading
import time

import numpy as np

from transcription.inference.backend import load_backend
from transcription.inference.base import Backend
from transcription.inference.fake import FakeBackend
from transcription.inference.types import InferenceRequest

RATE = 16_000


def tone(seconds: float, amplitude: float = 0.1) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (amplitude * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * RATE), dtype=np.float32)


def test_fake_backend_satisfies_the_backend_protocol() -> None:
    """FakeBackend has every attribute and method of Backend."""
    assert isinstance(FakeBackend(), Backend)


def test_one_word_per_500ms_of_sound_numbered_by_slot() -> None:
    """Each 500 ms slot with sound gives a word tok{n}, timed to its slot."""
    audio = np.concatenate([tone(1.0), silence(1.0), tone(0.5)])
    [segment] = FakeBackend().transcribe(audio, InferenceRequest())
    assert segment.text == "tok0 tok1 tok4"
    assert [(w.start_ms, w.end_ms) for w in segment.words] == [(0, 500), (500, 1000), (2000, 2500)]


def test_same_audio_gives_same_words() -> None:
    """Output is deterministic."""
    audio = tone(2.0)
    backend = FakeBackend()
    assert backend.transcribe(audio, InferenceRequest()) == backend.transcribe(
        audio, InferenceRequest()
    )


def test_silence_gives_no_segments() -> None:
    """Digital silence (or a partial last slot) produces nothing."""
    assert FakeBackend().transcribe(silence(3.0), InferenceRequest()) == []
    assert FakeBackend().transcribe(tone(0.4), InferenceRequest()) == []


def test_script_replaces_the_generated_words() -> None:
    """A configured script is spoken word by word over the non-silent slots."""
    backend = FakeBackend(script=["hello", "world"])
    [segment] = backend.transcribe(tone(2.0), InferenceRequest())
    assert segment.text == "hello world"


def test_delay_is_proportional_to_audio_length() -> None:
    """seconds_per_audio_second makes a call take that long per second of audio."""
    backend = FakeBackend(seconds_per_audio_second=0.05)
    started = time.monotonic()
    backend.transcribe(tone(2.0), InferenceRequest())
    assert 0.09 <= time.monotonic() - started < 1.0


def test_calls_beyond_concurrency_wait_for_a_slot() -> None:
    """With concurrency 1, a second concurrent call runs after the first."""
    backend = FakeBackend(concurrency=1, seconds_per_audio_second=0.1)
    threads = [
        threading.Thread(target=backend.transcribe, args=(tone(1.0), InferenceRequest()))
        for _ in range(2)
    ]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert time.monotonic() - started >= 0.19
    assert backend.calls == 2


def test_load_backend_fake_never_imports_pywhispercpp(tmp_path: object) -> None:
    """load_backend("fake") needs no model file and does not import pywhispercpp."""
    before = "pywhispercpp" in sys.modules
    backend = load_backend("fake", "/nonexistent/model.bin", concurrency=2, n_threads=1)
    assert backend.concurrency == 2
    assert ("pywhispercpp" in sys.modules) == before
