"""Tests for transcription/audio/resample.py (docs/PROTOCOL.md "Audio")."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transcription.audio.resample import StreamingResampler

RATES_HZ = (8000, 22050, 44100, 48000, 96000)
TONE_HZ = 1000.0


def _sine(rate: int, seconds: float = 1.0, freq: float = TONE_HZ) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _run(resampler: StreamingResampler, chunks: list[np.ndarray]) -> np.ndarray:
    return np.concatenate([resampler.process(c) for c in chunks] + [resampler.flush()])


def _split(x: np.ndarray, cuts: list[int]) -> list[np.ndarray]:
    return np.split(x, sorted(min(c, len(x)) for c in cuts))


def _dominant_hz(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / rate)[np.argmax(spectrum)])


@pytest.mark.parametrize("rate", RATES_HZ)
def test_sine_frequency_and_length_preserved(rate: int) -> None:
    """A 1 kHz sine at any input rate comes out at 16 kHz as a 1 kHz sine of the same length."""
    out = _run(StreamingResampler(rate), [_sine(rate)])
    assert out.dtype == np.float32
    assert abs(len(out) - 16000) <= 1
    assert abs(_dominant_hz(out, 16000) - TONE_HZ) < 2.0
    # Away from the edges the amplitude is intact (no gaps would show as dips).
    middle = out[1000:-1000]
    assert 0.49 < np.abs(middle).max() < 0.51


@pytest.mark.parametrize("rate", RATES_HZ)
def test_chunk_joins_have_no_discontinuity(rate: int) -> None:
    """20 ms chunks (and odd-sized ones) give the one-shot output: max sample diff ~0."""
    x = _sine(rate, seconds=2.0)
    one_shot = _run(StreamingResampler(rate), [x])
    chunk = rate // 50
    framed = _run(StreamingResampler(rate), [x[i : i + chunk] for i in range(0, len(x), chunk)])
    ragged = _run(StreamingResampler(rate), _split(x, list(range(0, len(x), 997))))
    for out in (framed, ragged):
        assert len(out) == len(one_shot)
        assert np.abs(out - one_shot).max() < 1e-5
    # And the output itself is smooth: no step larger than the sine's own slope allows.
    max_step = 0.5 * 2 * np.pi * TONE_HZ / 16000
    assert np.abs(np.diff(framed[200:-200])).max() < max_step * 1.05


def test_same_rate_passes_through() -> None:
    """Equal rates return the input samples unchanged and flush nothing."""
    resampler = StreamingResampler(16000, 16000)
    x = _sine(16000, 0.1)
    np.testing.assert_array_equal(resampler.process(x), x)
    assert resampler.flush().size == 0


def test_empty_chunk_gives_empty_output() -> None:
    """An empty chunk returns an empty float32 array."""
    out = StreamingResampler(48000).process(np.zeros(0, np.float32))
    assert out.size == 0 and out.dtype == np.float32


def test_invalid_rate_rejected() -> None:
    """A non-positive rate is a ValueError."""
    with pytest.raises(ValueError, match="positive"):
        StreamingResampler(0)


@settings(max_examples=40, deadline=None)
@given(
    rate=st.sampled_from(RATES_HZ),
    cuts=st.lists(st.integers(0, 9600), max_size=25),
    seed=st.integers(0, 2**32 - 1),
)
def test_any_chunking_gives_same_output(rate: int, cuts: list[int], seed: int) -> None:
    """Any chunking of the input gives the same resampled output, of length ~ len * 16000 / in."""
    x = np.random.default_rng(seed).uniform(-0.5, 0.5, rate // 10).astype(np.float32)
    one_shot = _run(StreamingResampler(rate), [x])
    chunked = _run(StreamingResampler(rate), _split(x, cuts))
    assert len(chunked) == len(one_shot)
    assert abs(len(one_shot) - len(x) * 16000 / rate) <= 1
    np.testing.assert_allclose(chunked, one_shot, atol=1e-5)
