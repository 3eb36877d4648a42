from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.transcription.inference.conftest import normalise
from transcription.inference.base import Backend
from transcription.inference.types import InferenceRequest
from transcription.inference.whisper_pwc import PyWhisperCppBackend
from transcription.session_jobs import audio_ctx_for

pytestmark = pytest.mark.slow


def test_satisfies_the_backend_protocol(pwc_backend: PyWhisperCppBackend) -> None:
    """PyWhisperCppBackend is a Backend and knows tiny.en is English-only."""
    assert isinstance(pwc_backend, Backend)
    assert pwc_backend.multilingual is False
    assert pwc_backend.model_name == "tiny.en"


def test_transcribes_speech(
    pwc_backend: PyWhisperCppBackend, speech: tuple[np.ndarray, str]
) -> None:
    """The pywhispercpp backend returns the spoken sentence."""
    audio, text = speech
    segments = pwc_backend.transcribe(audio, InferenceRequest(n_threads=2))
    assert normalise(" ".join(s.text for s in segments)) == normalise(text)


def test_words_are_monotone_inside_segments_and_join_to_the_text(
    pwc_backend: PyWhisperCppBackend, speech_pair: list[tuple[np.ndarray, str]]
) -> None:
    """Word times never run backwards, stay inside their segment and words join to its text."""
    audio = np.concatenate([speech_pair[0][0], np.zeros(8000, np.float32), speech_pair[1][0]])
    segments = pwc_backend.transcribe(audio, InferenceRequest(n_threads=2))
    assert segments
    cursor = 0
    for segment in segments:
        assert " ".join(w.text for w in segment.words) == segment.text
        for word in segment.words:
            assert segment.start_ms <= word.start_ms <= word.end_ms <= segment.end_ms
            assert word.start_ms >= cursor
            assert 0.0 <= word.probability <= 1.0
            cursor = word.end_ms
    assert segments[-1].end_ms <= len(audio) * 1000 // 16_000


def test_audio_ctx_for_short_clip_keeps_the_words(
    pwc_backend: PyWhisperCppBackend, speech: tuple[np.ndarray, str]
) -> None:
    """The reduced audio_ctx of WSS_AUDIO_CTX=auto still hears the sentence."""
    audio, text = speech
    audio_ctx = audio_ctx_for(len(audio) / 16_000, multilingual=False)  # tiny.en
    segments = pwc_backend.transcribe(audio, InferenceRequest(n_threads=2, audio_ctx=audio_ctx))
    assert normalise(" ".join(s.text for s in segments)) == normalise(text)


def test_params_set_by_one_call_do_not_persist(
    pwc_backend: PyWhisperCppBackend, speech: tuple[np.ndarray, str]
) -> None:
    """A call with beam search, a prompt and audio_ctx leaves the next default call unchanged."""
    audio, _ = speech
    plain = pwc_backend.transcribe(audio, InferenceRequest(n_threads=2))
    pwc_backend.transcribe(
        audio, InferenceRequest(n_threads=1, beam_size=3, prompt="Zebra quartz.", audio_ctx=300)
    )
    assert pwc_backend.transcribe(audio, InferenceRequest(n_threads=2)) == plain


def test_silence_produces_no_segments(pwc_backend: PyWhisperCppBackend) -> None:
    """Five seconds of silence give no text after the hallucination filters."""
    assert pwc_backend.transcribe(np.zeros(80_000, np.float32), InferenceRequest()) == []


def test_missing_model_file_is_refused_before_loading(tmp_path: Path) -> None:
    """A path that does not exist raises FileNotFoundError instead of downloading."""
    with pytest.raises(FileNotFoundError):
        PyWhisperCppBackend(tmp_path / "ggml-tiny.en.bin", concurrency=1, n_threads=1)
