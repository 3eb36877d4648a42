"""q8_0 quantisation: a numpy port of ggml's ``quantize_row_q8_0_ref``.

pywhispercpp ships neither ggml's quantize tool nor its API (WHISPER_FACTS.md, "Quantization
support"), so quantised files are produced here, block for block as ggml would.
"""

from __future__ import annotations

import numpy as np

QK8_0 = 32  # values per block
Q8_0_BLOCK_BYTES = 2 + QK8_0  # fp16 scale, then 32 int8

# whisper.cpp's quantize tool (examples/common-ggml.cpp, whisper's to_skip list) leaves these 2-D
# tensors in f32; the loader declares them F32 regardless of the file type.
SKIPPED_2D = frozenset(
    {
        "encoder.conv1.bias",
        "encoder.conv2.bias",
        "encoder.positional_embedding",
        "decoder.positional_embedding",
    }
)


def is_quantized_tensor(name: str, ndim: int) -> bool:
    """Whether whisper.cpp's quantize would quantise this tensor (2-D weights not skipped).

    1-D tensors are never quantised, and the 3-D conv weights stay F16 because the loader
    declares them with the float ``vtype``.
    """
    return ndim == 2 and name not in SKIPPED_2D


def q8_0_nbytes(n_values: int) -> int:
    """Bytes that ``n_values`` take in q8_0 (``n_values`` must be a multiple of 32)."""
    if n_values % QK8_0:
        raise ValueError(f"q8_0 needs a multiple of {QK8_0} values, got {n_values}")
    return n_values // QK8_0 * Q8_0_BLOCK_BYTES


def quantize_q8_0(values: np.ndarray) -> bytes:
    """Quantise float values (row-major, rows a multiple of 32 long) into ggml q8_0 blocks.

    Matches the C reference: float32 arithmetic for the scale, ``roundf`` (half away from
    zero) for the quants, and round-to-nearest-even fp16 for the stored scale.
    """
    x = np.ascontiguousarray(values, dtype=np.float32).reshape(-1)
    if x.size % QK8_0:
        raise ValueError(f"q8_0 needs a multiple of {QK8_0} values, got {x.size}")
    blocks = x.reshape(-1, QK8_0)
    amax = np.max(np.abs(blocks), axis=1)
    d = amax / np.float32(127)
    with np.errstate(divide="ignore", over="ignore"):
        inv_d = np.where(d != 0, np.float32(1) / d, np.float32(0)).astype(np.float32)
    # A block whose scale is subnormal (|x| < ~1e-36) would give inf * 0 = NaN quants; its
    # values are zero at q8_0 precision anyway, so quantise it to zeros.
    inv_d[~np.isfinite(inv_d)] = 0
    scaled = blocks * inv_d[:, None]  # float32 product, as in the C code
    # roundf in float64: adding 0.5 in float32 could round up values just below .5.
    wide = scaled.astype(np.float64)
    quants = (np.sign(wide) * np.floor(np.abs(wide) + 0.5)).astype(np.int8)
    out = np.empty((blocks.shape[0], Q8_0_BLOCK_BYTES), dtype=np.uint8)
    out[:, :2] = d.astype("<f2").reshape(-1, 1).view(np.uint8)
    out[:, 2:] = quants.view(np.uint8)
    return out.tobytes()


def dequantize_q8_0(data: bytes, n_values: int) -> np.ndarray:
    """Inverse of :func:`quantize_q8_0` (``d * q``), for tests and error measurements."""
    raw = np.frombuffer(data, dtype=np.uint8, count=q8_0_nbytes(n_values)).reshape(
        -1, Q8_0_BLOCK_BYTES
    )
    d = raw[:, :2].copy().view("<f2").astype(np.float32)
    q = raw[:, 2:].view(np.int8).astype(np.float32)
    return (q * d).reshape(-1)
