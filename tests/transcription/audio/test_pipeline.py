"""Tests for transcription/audio/pipeline.py (docs/PROTOCOL.md "Audio", "Flow control and
limits")."""

from __future__ import annotations

import numpy as np
import opuslib
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.speech import SENTENCES, compose, resample, to_pcm16
from transcription.audio.decode import AudioDecodeError
from transcription.audio.pipeline import AudioPipeline, FeedResult
from transcription.audio.vad import NoVad, SileroVad


def _sine_pcm(rate: int, seconds: float, freq: float = 440.0) -> bytes:
    t = np.arange(int(rate * seconds)) / rate
    return to_pcm16(0.5 * np.sin(2 * np.pi * freq * t))


def _feed_all(pipeline: AudioPipeline, frames: list[bytes]) -> list[FeedResult]:
    return [pipeline.feed(f) for f in frames]


def _frames(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def test_pcm_16k_goes_straight_into_the_buffer() -> None:
    """16 kHz PCM is held sample for sample, and each frame reports the ms accepted."""
    data = _sine_pcm(16000, 1.0)
    pipeline = AudioPipeline("pcm_s16le", 16000, capacity_ms=30000, vad=None)
    results = _feed_all(pipeline, _frames(data, 640))
    assert results[0] == FeedResult(accepted_ms=20, refused_ms=0)
    pipeline.finish()
    expected = np.frombuffer(data, "<i2").astype(np.float32) / 32768
    np.testing.assert_array_equal(pipeline.buffer.window(0, 1000), expected)


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000, 96000])
def test_pcm_any_rate_arrives_at_16k(rate: int) -> None:
    """PCM at any rate is resampled to 16 kHz: one second in, one second held after finish."""
    pipeline = AudioPipeline("pcm_s16le", rate, capacity_ms=30000, vad=None)
    # 21 ms frames with an odd byte count exercise the odd-byte carry and resampler joins.
    _feed_all(pipeline, _frames(_sine_pcm(rate, 1.0), rate * 21 // 1000 * 2 + 1))
    pipeline.finish()
    assert pipeline.buffer.end_ms == 1000
    held = pipeline.buffer.window(0, 1000)
    spectrum = np.abs(np.fft.rfft(held * np.hanning(len(held))))
    assert abs(np.fft.rfftfreq(len(held), 1 / 16000)[np.argmax(spectrum)] - 440) < 2


@settings(max_examples=25, deadline=None)
@given(cuts=st.lists(st.integers(0, 8820), max_size=20))
def test_any_framing_gives_same_buffer(cuts: list[int]) -> None:
    """Any split of a 44.1 kHz PCM byte stream into frames gives the same held samples."""
    data = _sine_pcm(44100, 0.1)
    bounds = sorted(set(cuts))
    frames = [data[a:b] for a, b in zip([0, *bounds], [*bounds, len(data)], strict=True)]
    one = AudioPipeline("pcm_s16le", 44100, capacity_ms=1000, vad=None)
    one.feed(data)
    one.finish()
    many = AudioPipeline("pcm_s16le", 44100, capacity_ms=1000, vad=None)
    _feed_all(many, frames)
    many.finish()
    np.testing.assert_allclose(many.buffer.window(0, 100), one.buffer.window(0, 100), atol=1e-6)


def test_opus_packets_decode_resample_and_buffer() -> None:
    """48 kHz Opus packets of 20 ms each add 20 ms of 16 kHz audio; a corrupt packet raises
    AudioDecodeError and the next packet is accepted."""
    encoder = opuslib.Encoder(48000, 1, opuslib.APPLICATION_AUDIO)
    pcm = _sine_pcm(48000, 1.0)
    packets = [encoder.encode(chunk, 960) for chunk in _frames(pcm, 1920)]
    pipeline = AudioPipeline("opus", 48000, capacity_ms=30000, vad=None)
    _feed_all(pipeline, packets[:25])
    with pytest.raises(AudioDecodeError, match="corrupt Opus packet"):
        pipeline.feed(b"\x03\xff")
    _feed_all(pipeline, packets[25:])
    pipeline.finish()
    assert pipeline.buffer.end_ms == 1000
    held = pipeline.buffer.window(100, 900)
    assert 0.3 < np.sqrt(np.mean(held**2)) < 0.4  # a 0.5-amplitude sine has RMS 0.354


def test_refused_audio_is_reported_in_ms() -> None:
    """Audio beyond the bound is refused and reported in ms, rounded up so none is lost silently."""
    pipeline = AudioPipeline("pcm_s16le", 16000, capacity_ms=1000, vad=None)
    assert pipeline.feed(bytes(2 * 12000)) == FeedResult(accepted_ms=750, refused_ms=0)
    assert pipeline.feed(bytes(2 * 8000)) == FeedResult(accepted_ms=250, refused_ms=250)
    assert pipeline.feed(bytes(2)) == FeedResult(accepted_ms=0, refused_ms=1)
    pipeline.buffer.release(500)
    assert pipeline.feed(bytes(2 * 8000)).refused_ms == 0


def test_timeline_start_is_passed_to_the_buffer() -> None:
    """A resumed session's pipeline places audio after the checkpoint's last_audio_ms."""
    pipeline = AudioPipeline("pcm_s16le", 16000, capacity_ms=1000, vad=None, timeline_start_ms=7000)
    pipeline.feed(bytes(3200))
    assert (pipeline.buffer.start_ms, pipeline.buffer.end_ms) == (7000, 7100)


def test_finish_flushes_the_resampler_once() -> None:
    """finish() pushes the resampler's tail into the buffer; a second call does nothing."""
    pipeline = AudioPipeline("pcm_s16le", 44100, capacity_ms=30000, vad=NoVad())
    pipeline.feed(_sine_pcm(44100, 0.5))
    before = pipeline.buffer.end_ms
    assert before < 500
    result = pipeline.finish()
    assert pipeline.buffer.end_ms == 500
    assert result.refused_ms == 0 and 0 < result.accepted_ms <= 500 - before  # floored ms
    assert pipeline.finish() == FeedResult(accepted_ms=0, refused_ms=0)


def test_speech_flags_through_the_whole_path() -> None:
    """48 kHz PCM speech with pauses, fed in 20 ms frames, yields the sentences as speech spans."""
    layout = compose(SENTENCES[4:6], ["flite-rms"], pauses_ms=[1000], lead_ms=600, tail_ms=600)
    data = to_pcm16(resample(layout.audio, 16000, 48000))
    pipeline = AudioPipeline("pcm_s16le", 48000, capacity_ms=30000, vad=SileroVad())
    _feed_all(pipeline, _frames(data, 1920))
    pipeline.finish()
    spans = pipeline.buffer.speech_spans(0, pipeline.buffer.end_ms)
    assert len(spans) == len(layout.spans_ms)
    for (s, e), (ts, te) in zip(spans, layout.spans_ms, strict=True):
        assert abs(s - ts) <= 100 and abs(e - te) <= 100
    assert not pipeline.buffer.has_speech(0, layout.spans_ms[0][0] - 150)
