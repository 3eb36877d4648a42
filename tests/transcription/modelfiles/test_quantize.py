"""Tests for the q8_0 quantiser (a port of ggml's quantize_row_q8_0_ref)."""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from transcription.modelfiles.quantize import (
    Q8_0_BLOCK_BYTES,
    QK8_0,
    dequantize_q8_0,
    is_quantized_tensor,
    q8_0_nbytes,
    quantize_q8_0,
)


def _reference_q8_0(values: np.ndarray) -> bytes:
    """Scalar transcription of ggml's C reference, one block and one value at a time."""
    out = bytearray()
    x = values.astype(np.float32)
    for start in range(0, len(x), QK8_0):
        block = x[start : start + QK8_0]
        amax = np.float32(max(abs(float(v)) for v in block))
        d = np.float32(amax / np.float32(127))
        with np.errstate(over="ignore"):
            inv = np.float32(1) / d if d != 0 else np.float32(0)
        if not np.isfinite(inv):  # subnormal scale: the block quantises to zeros
            inv = np.float32(0)
        out += struct.pack("<e", float(d))  # struct 'e' rounds to nearest even, like F16C
        for v in block:
            x0 = float(np.float32(v * inv))
            out += struct.pack("<b", int(math.copysign(math.floor(abs(x0) + 0.5), x0)))
    return bytes(out)


def test_matches_scalar_reference_on_random_rows() -> None:
    """Random weights quantise to exactly the bytes the C reference produces."""
    rng = np.random.default_rng(7)
    values = (rng.standard_normal(32 * 64) * rng.uniform(0.001, 3.0)).astype(np.float32)
    assert quantize_q8_0(values) == _reference_q8_0(values)


def test_zero_block_has_zero_scale_and_quants() -> None:
    """An all-zero block stores scale 0 and zero quants (no division by zero)."""
    data = quantize_q8_0(np.zeros(QK8_0, np.float32))
    assert data == bytes(Q8_0_BLOCK_BYTES)


def test_half_values_round_away_from_zero() -> None:
    """Quants use roundf (half away from zero), unlike numpy's round-half-even."""
    block = np.zeros(QK8_0, np.float32)
    block[0] = 127.0  # scale d = 1, so values map to themselves
    block[1:5] = [2.5, -2.5, 0.5, -0.5]
    quants = np.frombuffer(quantize_q8_0(block)[2:], np.int8)
    assert quants[:5].tolist() == [127, 3, -3, 1, -1]


@settings(max_examples=50, deadline=None)
@given(arrays(np.float32, QK8_0 * 2, elements=st.floats(-1e4, 1e4, width=32)))
def test_property_matches_reference_and_bounds_error(values: np.ndarray) -> None:
    """For any block the bytes equal the reference and the error is at most half a step."""
    data = quantize_q8_0(values)
    assert data == _reference_q8_0(values)
    restored = dequantize_q8_0(data, values.size)
    for start in range(0, values.size, QK8_0):
        block = values[start : start + QK8_0]
        step = float(np.abs(block).max()) / 127
        # fp16 rounding of the scale adds up to 2^-11 relative error per value, and a scale
        # below fp16's range underflows (absolute error up to 127 * 2^-25).
        bound = step * 0.5 + float(np.abs(block).max()) * 2**-10 + 127 * 2**-24
        assert np.max(np.abs(restored[start : start + QK8_0] - block)) <= bound


def test_sizes() -> None:
    """q8_0 stores 34 bytes per 32 values and refuses partial blocks."""
    assert q8_0_nbytes(384 * 384) == 384 * 384 // 32 * 34
    assert len(quantize_q8_0(np.ones((3, 64), np.float16))) == 6 * Q8_0_BLOCK_BYTES
    with pytest.raises(ValueError, match="multiple of 32"):
        quantize_q8_0(np.ones(33, np.float32))


@pytest.mark.parametrize(
    ("name", "ndim", "expected"),
    [
        ("encoder.blocks.0.attn.query.weight", 2, True),
        ("decoder.token_embedding.weight", 2, True),
        ("encoder.blocks.0.attn.query.bias", 1, False),
        ("encoder.conv1.weight", 3, False),
        ("encoder.conv1.bias", 2, False),
        ("encoder.positional_embedding", 2, False),
        ("decoder.positional_embedding", 2, False),
    ],
)
def test_quantised_tensors_follow_whisper_cpp(name: str, ndim: int, expected: bool) -> None:
    """Only 2-D weights outside whisper.cpp's skip list are quantised."""
    assert is_quantized_tensor(name, ndim) is expected
