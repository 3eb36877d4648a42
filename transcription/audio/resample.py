"""Streaming resampling of decoded audio to the 16 kHz the VAD and Whisper expect.

Normative: ``docs/PROTOCOL.md`` "Audio": everything is resampled to 16 kHz mono float32
with a streaming resampler, so frame boundaries add no clicks or gaps.
"""

from __future__ import annotations

import numpy as np
import soxr

from transcription.audio import SAMPLE_RATE_HZ

TARGET_RATE_HZ = SAMPLE_RATE_HZ


class StreamingResampler:
    """Converts one continuous stream from ``in_rate`` to ``out_rate``, chunk by chunk.

    soxr's ``ResampleStream`` keeps the filter state between chunks, so any split of the input
    gives the same output as one call; resampling frames independently would click at each join.
    """

    def __init__(self, in_rate: int, out_rate: int = TARGET_RATE_HZ) -> None:
        if in_rate <= 0 or out_rate <= 0:
            raise ValueError(f"sample rates must be positive, got {in_rate} -> {out_rate}")
        self.in_rate = in_rate
        self.out_rate = out_rate
        self._stream: soxr.ResampleStream | None = None
        if in_rate != out_rate:
            self._stream = soxr.ResampleStream(in_rate, out_rate, 1, dtype="float32", quality="HQ")

    def process(self, x: np.ndarray) -> np.ndarray:
        """Called per decoded frame; returns the float32 output available so far."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        if self._stream is None:
            return x
        if x.size == 0:
            return np.zeros(0, dtype=np.float32)
        out: np.ndarray = self._stream.resample_chunk(x, last=False)
        return out

    def flush(self) -> np.ndarray:
        """Called once at end of stream; returns the tail still held by the filter."""
        if self._stream is None:
            return np.zeros(0, dtype=np.float32)
        tail: np.ndarray = self._stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
        return tail
