"""The one place that picks an inference backend implementation.

Implementations: ``shared`` (ctypes over whisper.cpp, one copy of the weights, one state per
concurrent call), ``pywhispercpp`` (a pool of pywhispercpp models, one copy of the weights
each) and ``fake`` (deterministic words, for protocol tests and the ingest benchmark).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

from transcription.inference.base import Backend, check_model_file
from transcription.inference.fake import FakeBackend
from transcription.inference.whisper_pwc import PyWhisperCppBackend
from transcription.inference.whisper_shared import BindingError, SharedWhisperBackend

log = logging.getLogger(__name__)

BackendKind = Literal["shared", "pywhispercpp", "fake"]


def load_backend(
    kind: BackendKind,
    model_path: str | Path,
    *,
    concurrency: int,
    n_threads: int,
    dtw: bool = False,
) -> Backend:
    """Load a backend (blocking, seconds). ``n_threads`` caps the threads of one inference;
    ``dtw`` times words by whisper.cpp's DTW token timestamps (``words.py``).

    ``shared`` falls back to ``pywhispercpp`` with a warning when the ctypes binding does not
    match the installed libwhisper (its layout self-check or symbol lookup fails).
    """
    if concurrency < 1:
        raise ValueError("concurrency must be an integer >= 1")
    if n_threads < 1:
        raise ValueError("n_threads must be an integer >= 1")
    if kind == "fake":
        return FakeBackend(model_path=Path(model_path), concurrency=concurrency)
    path = check_model_file(model_path)
    if kind == "shared":
        try:
            return SharedWhisperBackend(path, concurrency=concurrency, n_threads=n_threads, dtw=dtw)
        except BindingError:
            log.warning(
                "shared whisper backend unavailable; falling back to pywhispercpp "
                "(one copy of the weights per concurrent inference)",
                exc_info=True,
            )
            kind = "pywhispercpp"
    if kind == "pywhispercpp":
        return PyWhisperCppBackend(path, concurrency=concurrency, n_threads=n_threads, dtw=dtw)
    raise ValueError(f"backend must be one of shared, pywhispercpp, fake; got {kind!r}")
