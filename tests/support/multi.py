"""Real German, Spanish and French speech from ../shared/speech/multi (FLEURS read sentences,
see its README): clips with their reference text, read in place, never copied; a test that
needs them is skipped when the folder is absent."""

from __future__ import annotations

import csv
import functools
import wave
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tests.support.wer import _edit_costs

MULTI_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "speech" / "multi"


@dataclass(frozen=True)
class Clip:
    """One recording: 16 kHz mono s16le ``pcm``, its language and reference text."""

    name: str
    language: str
    reference: str
    pcm: bytes

    @property
    def samples(self) -> np.ndarray:
        return np.frombuffer(self.pcm, dtype="<i2").astype(np.float32) / 32768.0


def read_clips(language: str, folder: Path = MULTI_DIR) -> list[Clip]:
    """Every clip of ``language`` (``de``, ``es``, ``fr``) in ``folder``; none when absent."""
    manifest = folder / "manifest.tsv"
    if not manifest.is_file():
        return []
    found = []
    with manifest.open(newline="") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            path = folder / row["file"]
            if row["language"] != language or not path.is_file():
                continue
            with wave.open(str(path)) as w:
                assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 1, 2)
                pcm = w.readframes(w.getnframes())
            found.append(Clip(path.stem, language, row["reference_text"], pcm))
    return found


def clips(language: str) -> list[Clip]:
    """``read_clips`` for a test: skips it when there are none."""
    found = read_clips(language)
    if not found:
        pytest.skip(f"no real {language} speech at {MULTI_DIR}")
    return found


@functools.cache
def _basic_normaliser() -> Callable[[str], str]:
    # Imported lazily, as the English one in wer.py.
    from whisper_normalizer.basic import BasicTextNormalizer

    return BasicTextNormalizer()


def basic_word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(word errors, reference words) after Whisper's basic (language-neutral) normaliser on
    both sides, as the clips' README asks: pooled over clips by the benchmark."""
    ref = _basic_normaliser()(reference).split()
    hyp = _basic_normaliser()(hypothesis).split()
    return _edit_costs(ref, hyp)[len(ref)][len(hyp)], len(ref)


def basic_wer(reference: str, hypothesis: str) -> float:
    """Word error rate after Whisper's basic normaliser (``basic_word_errors``)."""
    errors, words = basic_word_errors(reference, hypothesis)
    return errors / max(1, words)
