"""Transcript quality through the real server (docs/PROTOCOL.md "Windows and events"): silence
and noise produce no text, joins neither repeat nor lose words, and quiet speech is not gated."""

from __future__ import annotations

import numpy as np
import pytest

from tests.support import speech
from tests.support.client import config, pcm_chunks, stream
from tests.support.server import Server
from tests.support.wer import repeated_bigrams, wer

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

SECONDS = 60


def white_noise(level_dbfs: float) -> np.ndarray:
    rng = np.random.default_rng(1)
    return (rng.standard_normal(SECONDS * 16000) * 10 ** (level_dbfs / 20)).astype(np.float32)


def pink_noise(level_dbfs: float) -> np.ndarray:
    rng = np.random.default_rng(2)
    spectrum = np.fft.rfft(rng.standard_normal(SECONDS * 16000))
    freqs = np.fft.rfftfreq(SECONDS * 16000)
    spectrum[1:] /= np.sqrt(freqs[1:])
    pink = np.fft.irfft(spectrum)
    pink /= np.sqrt(np.mean(pink**2))
    return (pink * 10 ** (level_dbfs / 20)).astype(np.float32)


@pytest.mark.parametrize(
    "audio",
    [
        np.zeros(SECONDS * 16000, dtype=np.float32),
        white_noise(-30),
        pink_noise(-30),
    ],
    ids=["silence", "white-noise", "pink-noise"],
)
async def test_silence_and_noise_produce_no_words(
    inprocess_server: Server, audio: np.ndarray
) -> None:
    """60 s of silence, white noise or pink noise: no words at all, checkpoints still advance."""
    result = await stream(inprocess_server.url, pcm_chunks(speech.to_pcm16(audio), 16000), config())
    result.assert_ended_normally()
    assert result.phrase_text == ""
    assert result.final is not None and result.final["text"] == ""
    assert result.last_checkpoint["last_audio_ms"] >= (SECONDS - 6) * 1000


# About three wrong words: two to three times the voices' WER on a larger corpus
# (TEST_SPEECH.md), since these clips are short; the assertion messages give what was measured.
JOIN_WER_MAX = 0.05  # 3 of 69 words
QUIET_WER_MAX = 0.1  # 3 of 35 words


@pytest.mark.parametrize(("window", "overlap"), [(5000, 500), (2000, 200)])
async def test_joins_neither_repeat_nor_lose_words(
    inprocess_server: Server, window: int, overlap: int
) -> None:
    """Long speech with short and long pauses, at 5 s and 2 s windows: no repeated word pair
    and the words of every sentence come back."""
    sentences = speech.SENTENCES[6:12]
    comp = speech.compose(sentences, speech.VOICES, pauses_ms=[200, 1500, 300, 800, 250])
    result = await stream(
        inprocess_server.url,
        pcm_chunks(speech.to_pcm16(comp.audio), 16000),
        config(window_duration_ms=window, overlap_duration_ms=overlap),
    )
    result.assert_ended_normally()
    assert repeated_bigrams(result.phrase_text, comp.text) == 0, result.phrase_text
    error_rate = wer(comp.text, result.phrase_text)
    print(f"WER {error_rate:.4f}")
    assert error_rate <= JOIN_WER_MAX, (
        f"WER {error_rate:.1%} at {window} ms windows (measured 0.0 % at 5 s and 2 s): "
        f"{result.phrase_text}"
    )


async def test_quiet_speech_is_not_mistaken_for_silence(inprocess_server: Server) -> None:
    """Generated speech whose loudest sample is at -45 dBFS passes the speech gate and is
    transcribed as well as loud speech."""
    comp = speech.compose(speech.SENTENCES[12:15], speech.VOICES)
    quiet = comp.audio / float(np.max(np.abs(comp.audio))) * 10 ** (-45 / 20)
    result = await stream(inprocess_server.url, pcm_chunks(speech.to_pcm16(quiet), 16000), config())
    result.assert_ended_normally()
    error_rate = wer(comp.text, result.phrase_text)
    print(f"WER {error_rate:.4f}")
    assert error_rate <= QUIET_WER_MAX, (
        f"WER {error_rate:.1%} at -45 dBFS peak (measured 0.0 %): {result.phrase_text}"
    )
