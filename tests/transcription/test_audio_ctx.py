"""The reduced encoder context of ``WSS_AUDIO_CTX=auto`` (``session_jobs.audio_ctx_for``):
the audio, at least 5 s of it, plus the padding silence its kind of model needs; 50 frames per
second, never beyond whisper.cpp's 30 s (1500 frames)."""

from __future__ import annotations

import pytest

from transcription.session_jobs import audio_ctx_for


@pytest.mark.parametrize(
    ("seconds", "frames"),
    [(5.0, 500), (2.0, 500), (0.3, 500), (8.0, 650), (20.0, 1250), (25.0, 1500), (60.0, 1500)],
)
def test_english_only_models_hear_five_seconds_of_silence_after_the_audio(
    seconds: float, frames: int
) -> None:
    assert audio_ctx_for(seconds, multilingual=False) == frames


@pytest.mark.parametrize(("seconds", "frames"), [(5.0, 314), (2.0, 314), (8.0, 464)])
def test_multilingual_models_hear_1_3_seconds_of_it(seconds: float, frames: int) -> None:
    assert audio_ctx_for(seconds, multilingual=True) == frames
