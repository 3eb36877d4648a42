"""Audio files as people upload them, made in the test with PyAV's encoders (no binaries)."""

from __future__ import annotations

import io

import av
import numpy as np

from tests.support.speech import SAMPLE_RATE_HZ, resample

# name → (container format, codec, sample rate): what phones, browsers and editors produce
FORMATS: dict[str, tuple[str, str, int]] = {
    "wav": ("wav", "pcm_s16le", 44_100),
    "mp3": ("mp3", "libmp3lame", 44_100),
    "m4a": ("ipod", "aac", 48_000),
    "ogg": ("ogg", "libopus", 48_000),
    "webm": ("webm", "libopus", 48_000),
    "flac": ("flac", "flac", 22_050),
}


def encode(audio: np.ndarray, name: str, rate: int | None = None) -> bytes:
    """``audio`` (16 kHz float32 mono) as a file of format ``name`` (a key of FORMATS), at the
    format's usual sample rate unless ``rate`` is given."""
    container_format, codec, usual_rate = FORMATS[name]
    rate = rate or usual_rate
    samples = resample(audio, SAMPLE_RATE_HZ, rate)
    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2")[None, :]
    out = io.BytesIO()
    with av.open(out, "w", format=container_format) as container:
        stream = container.add_stream(codec, rate=rate)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return out.getvalue()
