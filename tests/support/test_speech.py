"""Tests for the offline test-speech helpers."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from tests.support import speech
from tests.support.speech import (
    ALL_VOICES,
    SAMPLE_RATE_HZ,
    SENTENCES,
    compose,
    resample,
    synthesize,
    to_pcm16,
    write_wav,
)


@pytest.fixture
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty speech cache directory for the test."""
    monkeypatch.setenv("OPENASR_SPEECH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.mark.parametrize("voice", ALL_VOICES)
def test_each_voice_speaks_a_plausible_clip(voice: str) -> None:
    """Every voice returns non-silent float32 mono audio lasting about as long as the words."""
    text = SENTENCES[1]
    audio = synthesize(text, voice)
    assert audio.dtype == np.float32 and audio.ndim == 1
    seconds = len(audio) / SAMPLE_RATE_HZ
    words = len(text.split())
    # Ordinary speech runs at roughly 2-4 words per second.
    assert words / 5 < seconds < words / 1.5
    assert float(np.sqrt(np.mean(audio**2))) > 0.01
    assert float(np.max(np.abs(audio))) <= 1.0


def test_cache_hit_returns_identical_samples(private_cache: Path) -> None:
    """A second synthesis of the same text and voice comes from the cache with equal samples."""
    first = synthesize(SENTENCES[2], "flite-rms")
    files = list(private_cache.glob("*.npy"))
    assert len(files) == 1
    mtime = files[0].stat().st_mtime_ns
    second = synthesize(SENTENCES[2], "flite-rms")
    np.testing.assert_array_equal(first, second)
    assert files[0].stat().st_mtime_ns == mtime
    assert not list(private_cache.glob(".tmp-*"))


def test_corrupt_cache_entry_is_resynthesised(private_cache: Path) -> None:
    """A truncated cache file is replaced instead of failing the test that reads it."""
    good = synthesize(SENTENCES[3], "flite-rms")
    (entry,) = private_cache.glob("*.npy")
    entry.write_bytes(entry.read_bytes()[:50])
    np.testing.assert_array_equal(synthesize(SENTENCES[3], "flite-rms"), good)


def test_unknown_voice_is_rejected() -> None:
    """An unknown voice name raises ValueError naming the accepted voices."""
    with pytest.raises(ValueError, match="flite-rms"):
        synthesize("hello", "robot")


def test_compose_places_sentences_and_pauses() -> None:
    """compose joins sentences with the given pauses and reports where each one lies."""
    sentences = SENTENCES[:3]
    comp = compose(sentences, ["flite-rms", "flite-slt"], pauses_ms=[500, 1000], tail_ms=200)
    assert comp.text == " ".join(sentences)
    assert len(comp.spans_ms) == 3
    assert comp.spans_ms[0][0] == 300
    assert comp.spans_ms[1][0] - comp.spans_ms[0][1] == pytest.approx(500, abs=1)
    assert comp.spans_ms[2][0] - comp.spans_ms[1][1] == pytest.approx(1000, abs=1)
    assert comp.duration_ms - comp.spans_ms[2][1] == pytest.approx(200, abs=1)
    # Voices cycle: the third sentence is flite-rms again.
    start = comp.spans_ms[2][0] * SAMPLE_RATE_HZ // 1000
    clip = synthesize(sentences[2], "flite-rms")
    np.testing.assert_array_equal(comp.audio[start : start + len(clip)], clip)


def test_compose_default_pauses_are_varied_and_bounded() -> None:
    """Without pauses_ms the gaps vary and stay within 200-2000 ms."""
    comp = compose(SENTENCES[:6], ["flite-rms"])
    gaps = [b[0] - a[1] for a, b in zip(comp.spans_ms, comp.spans_ms[1:], strict=False)]
    assert all(199 <= g <= 2001 for g in gaps)
    assert len(set(gaps)) > 3


def test_compose_noise_fills_silence() -> None:
    """noise_level adds low noise so pauses are not digital zero."""
    comp = compose(SENTENCES[:1], ["flite-rms"], noise_level=0.003)
    lead = comp.audio[: 300 * SAMPLE_RATE_HZ // 1000]
    assert 0.001 < float(np.sqrt(np.mean(lead**2))) < 0.01


def test_sentences_are_distinct_and_digit_free() -> None:
    """The sentence bank has 20+ distinct 8-15 word sentences without digits."""
    assert len(set(SENTENCES)) == len(SENTENCES) >= 20
    for sentence in SENTENCES:
        assert 8 <= len(sentence.split()) <= 15, sentence
        assert not any(ch.isdigit() for ch in sentence), sentence


def test_to_pcm16_clips_and_scales() -> None:
    """to_pcm16 writes little-endian int16, clipping values outside [-1, 1]."""
    pcm = to_pcm16(np.array([0.0, 0.5, -1.0, 2.0], dtype=np.float32))
    assert np.frombuffer(pcm, "<i2").tolist() == [0, 16384, -32767, 32767]


def test_write_wav_round_trips(tmp_path: Path) -> None:
    """write_wav produces a 16-bit mono WAV with the given rate and samples."""
    audio = np.linspace(-0.5, 0.5, 1600, dtype=np.float32)
    write_wav(tmp_path / "x.wav", audio, rate=8000)
    with wave.open(str(tmp_path / "x.wav")) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (8000, 1, 2)
        assert wav.readframes(wav.getnframes()) == to_pcm16(audio)


def test_resample_changes_length_and_keeps_tone() -> None:
    """resample scales the length by the rate ratio and preserves a tone's amplitude."""
    t = np.arange(24_000) / 24_000
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    out = resample(tone, 24_000, SAMPLE_RATE_HZ)
    assert out.dtype == np.float32 and len(out) == 16_000
    assert float(np.max(np.abs(out[1000:-1000]))) == pytest.approx(0.5, abs=0.01)


def test_cache_dir_follows_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """OPENASR_SPEECH_CACHE overrides the default cache directory."""
    monkeypatch.setenv("OPENASR_SPEECH_CACHE", "/tmp/somewhere-else")
    assert speech.cache_dir() == Path("/tmp/somewhere-else")
    monkeypatch.delenv("OPENASR_SPEECH_CACHE")
    assert speech.cache_dir() == Path("/tmp/openasr-speech-cache")
