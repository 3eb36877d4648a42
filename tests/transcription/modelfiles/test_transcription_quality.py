"""End-to-end check of converted models: pywhispercpp loads them and transcribes real speech."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import MODELS_DIR
from tests.support.speech import SENTENCES, VOICES, compose
from tests.support.wer import wer
from transcription.modelfiles.install import install_model
from transcription.modelfiles.verify import verify_ggml

pytestmark = pytest.mark.slow

MAX_WER = 0.15
# Eight distinct sentences (about 90 words) cycling the three clear voices, joined into two
# clips of about 20 s: each fits one 30 s Whisper window, so a model pays two encoder passes
# instead of eight.
_SENTENCES = [SENTENCES[i] for i in (0, 2, 4, 6, 9, 12, 15, 18)]
_GROUPS = [_SENTENCES[:4], _SENTENCES[4:]]


def _transcribe_all(model_path: Path) -> tuple[str, str]:
    """Transcribe every clip with a freshly loaded model; returns (reference, hypothesis)."""
    from pywhispercpp.model import Model

    verify_ggml(model_path)  # a bad file would segfault inside pywhispercpp
    model = Model(str(model_path), n_threads=2, redirect_whispercpp_logs_to=None)
    references, hypotheses = [], []
    for k, group in enumerate(_GROUPS):
        voices = VOICES[k % len(VOICES) :] + VOICES[: k % len(VOICES)]
        clip = compose(group, voices, pauses_ms=[400, 700, 500])
        assert clip.duration_ms < 28_000
        segments = model.transcribe(clip.audio, language="en")
        references.append(clip.text)
        hypotheses.append(" ".join(s.text.strip() for s in segments))
    return " ".join(references), " ".join(hypotheses)


@pytest.fixture(scope="module")
def tiny_q8_0_path() -> Path:
    """tiny.en quantised to q8_0 in <repo>/models (idempotent)."""
    return install_model("tiny.en", MODELS_DIR, quant="q8_0")


def test_tiny_en_transcribes_test_speech(tiny_model_path: Path) -> None:
    """The converted tiny.en transcribes eight sentences in three voices with WER <= 15 %."""
    reference, hypothesis = _transcribe_all(tiny_model_path)
    assert wer(reference, hypothesis) <= MAX_WER, hypothesis


def test_base_transcribes_test_speech(base_model_path: Path) -> None:
    """The converted multilingual base, forced to English, reaches WER <= 15 % too."""
    reference, hypothesis = _transcribe_all(base_model_path)
    assert wer(reference, hypothesis) <= MAX_WER, hypothesis


def test_tiny_en_q8_0_transcribes_test_speech(tiny_q8_0_path: Path) -> None:
    """The q8_0 tiny.en loads and keeps WER <= 15 % on the same speech."""
    reference, hypothesis = _transcribe_all(tiny_q8_0_path)
    assert wer(reference, hypothesis) <= MAX_WER, hypothesis
