"""Real German, Spanish and French speech from ../shared/speech/multi (FLEURS read sentences,
see its README): clips with their reference text, read in place, never copied; a test that
needs them is skipped when the folder is absent."""

from __future__ import annotations

import csv
import wave
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


def clips(language: str) -> list[Clip]:
    """Every clip of ``language`` (``de``, ``es``, ``fr``); skips the test when absent."""
    manifest = MULTI_DIR / "manifest.tsv"
    if not manifest.is_file():
        pytest.skip(f"no real multilingual speech at {MULTI_DIR}")
    found = []
    with manifest.open(newline="") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            path = MULTI_DIR / row["file"]
            if row["language"] != language or not path.is_file():
                continue
            with wave.open(str(path)) as w:
                assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 1, 2)
                pcm = w.readframes(w.getnframes())
            found.append(Clip(path.stem, language, row["reference_text"], pcm))
    if not found:
        pytest.skip(f"no {language} clips in {MULTI_DIR}")
    return found


def basic_wer(reference: str, hypothesis: str) -> float:
    """WER after Whisper's basic (language-neutral) normaliser on both sides, as the clips'
    README asks."""
    from whisper_normalizer.basic import BasicTextNormalizer

    normalise = BasicTextNormalizer()
    ref, hyp = normalise(reference).split(), normalise(hypothesis).split()
    return _edit_costs(ref, hyp)[len(ref)][len(hyp)] / max(1, len(ref))
