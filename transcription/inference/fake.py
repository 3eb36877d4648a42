"""FakeBackend: deterministic words without a model, for protocol tests and the ingest benchmark.

It never imports pywhispercpp. Words are derived from the audio itself (one ``tok{n}`` word per
500 ms slot of non-silent audio, ``n`` counting slots from the clip's start) or taken from a
configured script, and each call can sleep in proportion to the audio length to mimic a model
of known speed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from transcription.audio import SAMPLE_RATE_HZ
from transcription.inference.filters import DEFAULT_FILTERS, FilterConfig, filter_segments
from transcription.inference.types import InferenceRequest, Segment, Word
from transcription.languages import Detected

WORD_MS = 500
# RMS below this counts as silence (about -50 dBFS).
SILENCE_RMS = 0.003


class FakeBackend:
    """A Backend that returns ``tok{n}`` words (or a script) and takes a configurable time."""

    def __init__(
        self,
        *,
        model_path: Path | None = None,
        concurrency: int = 1,
        seconds_per_audio_second: float = 0.0,
        script: Sequence[str] | None = None,
        filters: FilterConfig = DEFAULT_FILTERS,
        fail: bool = False,
        multilingual: bool = False,
        language: str = "en",
        language_probability: float = 1.0,
    ) -> None:
        self.model_name = "fake"
        self.model_path = model_path or Path("fake")
        self.concurrency = concurrency
        self.seconds_per_audio_second = seconds_per_audio_second
        self.fail = fail  # raise on every call: a worker whose inference fails
        self.multilingual = multilingual
        self.language, self.language_probability = language, language_probability  # detected
        self.script = tuple(script) if script is not None else None
        self._filters = filters
        self._slots = threading.BoundedSemaphore(concurrency)
        self.calls = 0
        self._lock = threading.Lock()

    def transcribe(self, samples: np.ndarray, request: InferenceRequest) -> list[Segment]:
        """Return one segment with a word per 500 ms slot of non-silent audio."""
        if self.fail:
            raise RuntimeError("fake backend configured to fail (WSS_FAKE_BACKEND_FAIL)")
        audio = np.asarray(samples, dtype=np.float32)
        # Callers beyond ``concurrency`` wait, as they do for a free state in the real backends.
        with self._slots:
            with self._lock:
                self.calls += 1
            if self.seconds_per_audio_second > 0:
                time.sleep(len(audio) / SAMPLE_RATE_HZ * self.seconds_per_audio_second)
            words = self._words(audio)
        if not words:
            return []
        segment = Segment(
            text=" ".join(w.text for w in words),
            start_ms=words[0].start_ms,
            end_ms=words[-1].end_ms,
            words=tuple(words),
        )
        return filter_segments([segment], self._filters)

    def detect_language(self, samples: np.ndarray, request: InferenceRequest) -> Detected:
        """``language`` (a constructor argument, "en" by default) with ``probability``."""
        return Detected(self.language, self.language_probability)

    def close(self) -> None:
        """Nothing to free."""

    def _words(self, audio: np.ndarray) -> list[Word]:
        slot = WORD_MS * SAMPLE_RATE_HZ // 1000
        words: list[Word] = []
        # Only whole slots: a partial slot at the end would turn into a word in one window
        # and a different one in the next, which real whisper does not do either.
        for n in range(len(audio) // slot):
            chunk = audio[n * slot : (n + 1) * slot]
            if float(np.sqrt(np.mean(chunk * chunk))) < SILENCE_RMS:
                continue
            if self.script is not None:
                if len(words) >= len(self.script):
                    break
                text = self.script[len(words)]
            else:
                text = f"tok{n}"
            words.append(Word(text, n * WORD_MS, (n + 1) * WORD_MS, 0.9))
        return words
