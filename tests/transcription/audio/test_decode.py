"""Tests for transcription/audio/decode.py (docs/PROTOCOL.md "Audio")."""

from __future__ import annotations

import numpy as np
import opuslib
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.support.speech import resample, synthesize
from transcription.audio.decode import (
    AudioDecodeError,
    OpusDecoder,
    PcmS16leDecoder,
    make_decoder,
)

OPUS_RATE_HZ = 48000
OPUS_PACKET_SAMPLES = 960  # 20 ms at 48 kHz


def _pcm_bytes(values: list[int]) -> bytes:
    return np.array(values, dtype="<i2").tobytes()


def _decode_frames(frames: list[bytes]) -> np.ndarray:
    decoder = PcmS16leDecoder(16000)
    return np.concatenate([decoder.decode(f) for f in frames] + [np.zeros(0, np.float32)])


def _opus_packets(audio: np.ndarray) -> list[bytes]:
    """20 ms Opus packets of float audio at 48 kHz, from a real libopus encoder."""
    encoder = opuslib.Encoder(OPUS_RATE_HZ, 1, opuslib.APPLICATION_AUDIO)
    pcm = np.round(np.clip(audio, -1, 1) * 32767).astype("<i2")
    pcm = np.pad(pcm, (0, -len(pcm) % OPUS_PACKET_SAMPLES))
    return [
        encoder.encode(pcm[i : i + OPUS_PACKET_SAMPLES].tobytes(), OPUS_PACKET_SAMPLES)
        for i in range(0, len(pcm), OPUS_PACKET_SAMPLES)
    ]


@pytest.fixture(scope="module")
def speech_48k() -> np.ndarray:
    """About 2 s of flite speech at 48 kHz."""
    audio = synthesize("The quick brown fox jumps over the lazy dog.", "flite-rms")
    return resample(audio, 16000, OPUS_RATE_HZ)


def _best_lag_correlation(reference: np.ndarray, decoded: np.ndarray, max_lag: int) -> float:
    n = min(len(reference), len(decoded)) - max_lag
    best = 0.0
    for lag in range(max_lag):
        a, b = reference[:n], decoded[lag : lag + n]
        best = max(best, float(np.dot(a, b) / np.sqrt(np.dot(a, a) * np.dot(b, b))))
    return best


# --- PCM ---


def test_pcm_scales_to_unit_range() -> None:
    """PCM s16le samples map to float32 in [-1, 1) by dividing by 32768."""
    out = PcmS16leDecoder(16000).decode(_pcm_bytes([0, 16384, -32768, 32767, -1]))
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, np.array([0, 0.5, -1, 32767 / 32768, -1 / 32768], "f4"))


def test_pcm_output_rate_is_input_rate() -> None:
    """The PCM decoder does not resample: its output rate is the configured rate."""
    assert PcmS16leDecoder(44100).output_rate == 44100


def test_pcm_empty_frame_gives_empty_array() -> None:
    """An empty frame yields no samples and changes nothing."""
    decoder = PcmS16leDecoder(16000)
    assert decoder.decode(b"").size == 0
    np.testing.assert_array_equal(decoder.decode(_pcm_bytes([100])), [100 / 32768])


def test_pcm_odd_byte_waits_for_next_frame() -> None:
    """A frame with an odd byte count keeps the odd byte and completes it with the next frame."""
    data = _pcm_bytes([1000, -2000, 3000])
    decoder = PcmS16leDecoder(16000)
    first = decoder.decode(data[:3])
    assert first.size == 1
    single = decoder.decode(data[3:4])
    assert single.size == 1
    rest = decoder.decode(data[4:])
    np.testing.assert_array_equal(
        np.concatenate([first, single, rest]), np.array([1000, -2000, 3000]) / 32768
    )


def test_pcm_single_byte_frames() -> None:
    """One byte per frame still decodes the whole stream."""
    data = _pcm_bytes([12345, -54, 7])
    np.testing.assert_array_equal(
        _decode_frames([data[i : i + 1] for i in range(len(data))]),
        np.array([12345, -54, 7]) / 32768,
    )


@given(
    values=st.lists(st.integers(-32768, 32767), max_size=200),
    cuts=st.lists(st.integers(0, 400), max_size=20),
)
def test_pcm_any_split_gives_same_samples(values: list[int], cuts: list[int]) -> None:
    """Any split of the byte stream into frames gives the same samples as one frame."""
    data = _pcm_bytes(values)
    bounds = sorted({min(c, len(data)) for c in cuts})
    frames = [data[a:b] for a, b in zip([0, *bounds], [*bounds, len(data)], strict=True)]
    np.testing.assert_array_equal(_decode_frames(frames), _decode_frames([data]))


# --- Opus ---


@pytest.mark.parametrize(
    ("configured", "expected"),
    [(8000, 8000), (12000, 12000), (16000, 16000), (24000, 24000), (48000, 48000)]
    + [(11025, 48000), (22050, 48000), (44100, 48000), (96000, 48000)],
)
def test_opus_output_rate(configured: int, expected: int) -> None:
    """Opus decodes at the configured rate when libopus supports it natively, else at 48 kHz."""
    assert OpusDecoder(configured).output_rate == expected


def test_opus_decodes_real_speech(speech_48k: np.ndarray) -> None:
    """20 ms packets of real speech decode to 960 samples each that match the input."""
    packets = _opus_packets(speech_48k)
    decoder = OpusDecoder(OPUS_RATE_HZ)
    decoded = [decoder.decode(p) for p in packets]
    assert all(d.dtype == np.float32 and d.size == OPUS_PACKET_SAMPLES for d in decoded)
    out = np.concatenate(decoded)
    assert np.abs(out).max() < 1.0
    # Opus delays its output by its look-ahead (6.5 ms at 48 kHz); compare at the best lag.
    assert _best_lag_correlation(speech_48k, out, max_lag=600) > 0.9


def test_opus_decodes_at_16k_natively(speech_48k: np.ndarray) -> None:
    """A 16 kHz Opus decoder returns 320 samples per 20 ms packet."""
    decoder = OpusDecoder(16000)
    out = [decoder.decode(p) for p in _opus_packets(speech_48k)[:10]]
    assert [o.size for o in out] == [320] * 10


def test_opus_corrupt_packet_raises_and_decoder_recovers(speech_48k: np.ndarray) -> None:
    """A corrupt packet raises AudioDecodeError naming it; the following packets decode exactly
    as if it had never been sent."""
    packets = _opus_packets(speech_48k)
    clean = OpusDecoder(OPUS_RATE_HZ)
    expected = [clean.decode(p) for p in packets]
    decoder = OpusDecoder(OPUS_RATE_HZ)
    got = []
    for i, packet in enumerate(packets):
        if i in (0, 7, 30):
            with pytest.raises(AudioDecodeError, match="corrupt Opus packet: corrupted stream"):
                decoder.decode(b"\x03\xff")
        got.append(decoder.decode(packet))
    for a, b in zip(expected, got, strict=True):
        np.testing.assert_array_equal(a, b)


def test_opus_empty_frame_is_ignored() -> None:
    """An empty Opus frame yields no samples (no packet-loss concealment is invented)."""
    assert OpusDecoder(OPUS_RATE_HZ).decode(b"").size == 0


# --- factory ---


def test_make_decoder_picks_by_encoding() -> None:
    """make_decoder returns the decoder for the configured encoding."""
    assert isinstance(make_decoder("pcm_s16le", 8000), PcmS16leDecoder)
    assert isinstance(make_decoder("opus", 48000), OpusDecoder)


def test_make_decoder_rejects_unknown_encoding() -> None:
    """An unknown encoding is a ValueError naming the accepted ones."""
    with pytest.raises(ValueError, match="pcm_s16le"):
        make_decoder("mp3", 16000)  # type: ignore[arg-type]


# --- G.711 (pcm_mulaw, pcm_alaw) ---


def _audioop() -> object:
    """The standard library's G.711 codec (Python <= 3.12), the reference for ours."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import audioop
    return audioop


@pytest.mark.parametrize(
    ("encoding", "reference"), [("pcm_mulaw", "ulaw2lin"), ("pcm_alaw", "alaw2lin")]
)
def test_g711_decodes_every_byte_as_the_itu_tables(encoding: str, reference: str) -> None:
    """All 256 codes decode to the G.711 linear values (audioop's tables), scaled to [-1, 1)."""
    every = bytes(range(256))
    expected = np.frombuffer(getattr(_audioop(), reference)(every, 2), dtype="<i2") / 32768.0
    decoder = make_decoder(encoding, 8000)  # type: ignore[arg-type]
    assert decoder.output_rate == 8000
    np.testing.assert_array_equal(decoder.decode(every), expected.astype(np.float32))


def test_g711_round_trip_keeps_speech() -> None:
    """Speech encoded to mu-law and decoded differs from the original only by G.711's step."""
    speech = resample(synthesize("Please call me back tomorrow.", "flite-rms"), 16000, 8000)
    pcm = (np.clip(speech, -1, 1) * 32767).astype("<i2").tobytes()
    decoded = make_decoder("pcm_mulaw", 8000).decode(_audioop().lin2ulaw(pcm, 2))  # type: ignore[attr-defined]
    original = np.frombuffer(pcm, dtype="<i2") / 32768.0
    assert len(decoded) == len(original)
    snr_db = 10 * np.log10(np.sum(original**2) / np.sum((original - decoded) ** 2))
    assert snr_db > 30


@given(st.binary(max_size=400), st.lists(st.integers(0, 400), max_size=5))
def test_g711_any_split_gives_same_samples(data: bytes, cuts: list[int]) -> None:
    """One byte per sample: frames split anywhere decode to the same samples."""
    whole = make_decoder("pcm_alaw", 8000).decode(data)
    decoder = make_decoder("pcm_alaw", 8000)
    bounds = [0, *sorted(c % (len(data) + 1) for c in cuts), len(data)]
    parts = [decoder.decode(data[a:b]) for a, b in zip(bounds, bounds[1:], strict=False)]
    np.testing.assert_array_equal(np.concatenate([*parts, np.zeros(0, np.float32)]), whole)


def test_g711_duration_is_one_sample_per_byte() -> None:
    """160 bytes of 8 kHz G.711 are 20 ms."""
    assert make_decoder("pcm_mulaw", 8000).duration_ms(b"\xff" * 160) == 20
