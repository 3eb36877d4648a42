"""Builders for small synthetic CTranslate2 files, so parser and converter tests need no model."""

from __future__ import annotations

import struct
from collections.abc import Mapping
from pathlib import Path

import numpy as np

_DTYPE_IDS = {"float32": 0, "int8": 1, "int16": 2, "int32": 3, "float16": 4}


def _string(text: str) -> bytes:
    raw = text.encode() + b"\0"
    return struct.pack("<H", len(raw)) + raw


def ct2_bytes(
    variables: Mapping[str, np.ndarray],
    aliases: Mapping[str, str] | None = None,
    *,
    version: int = 6,
    bf16: frozenset[str] = frozenset(),
) -> bytes:
    """A CT2 model.bin (binary version 4-6) holding ``variables`` and ``aliases``.

    Names in ``bf16`` are stored as bfloat16 (the top 16 bits of their float32 values).
    """
    out = [struct.pack("<I", version), _string("WhisperSpec"), struct.pack("<I", 3)]
    out.append(struct.pack("<I", len(variables)))
    for name, array in variables.items():
        if name in bf16:
            data = (np.asarray(array, np.float32).view(np.uint32) >> 16).astype("<u2")
            dtype_id = 5
        else:
            data, dtype_id = array, _DTYPE_IDS[array.dtype.name]
        out += [_string(name), struct.pack("<B", array.ndim)]
        out.append(struct.pack(f"<{array.ndim}I", *array.shape))
        payload = np.ascontiguousarray(data).tobytes()
        out += [struct.pack("<B", dtype_id), struct.pack("<I", len(payload)), payload]
    aliases = aliases or {}
    out.append(struct.pack("<I", len(aliases)))
    for alias, target in aliases.items():
        out += [_string(alias), _string(target)]
    return b"".join(out)


def whisper_variables(
    *,
    s: int = 32,
    n_mels: int = 8,
    vocab: int = 40,
    audio_ctx: int = 12,
    text_ctx: int = 6,
    audio_layers: int = 2,
    text_layers: int = 1,
    heads: int = 2,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Random fp16 variables shaped like a CT2 WhisperSpec model (plus its scalars)."""
    rng = np.random.default_rng(seed)

    def r(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape).astype(np.float16)

    v: dict[str, np.ndarray] = {
        "encoder/num_heads": np.array(heads, np.int16),
        "decoder/num_heads": np.array(heads, np.int16),
        "decoder/alibi": np.array(0, np.int8),
        "encoder/conv1/weight": r(s, n_mels, 3),
        "encoder/conv1/bias": r(s),
        "encoder/conv2/weight": r(s, s, 3),
        "encoder/conv2/bias": r(s),
        "encoder/position_encodings/encodings": r(audio_ctx, s),
        "encoder/layer_norm/gamma": r(s),
        "encoder/layer_norm/beta": r(s),
        "decoder/embeddings/weight": r(vocab, s),
        "decoder/position_encodings/encodings": r(text_ctx, s),
        "decoder/layer_norm/gamma": r(s),
        "decoder/layer_norm/beta": r(s),
    }

    def block(p: str, cross: bool) -> None:
        v[f"{p}/self_attention/layer_norm/gamma"] = r(s)
        v[f"{p}/self_attention/layer_norm/beta"] = r(s)
        v[f"{p}/self_attention/linear_0/weight"] = r(3 * s, s)
        v[f"{p}/self_attention/linear_0/bias"] = r(3 * s)
        v[f"{p}/self_attention/linear_1/weight"] = r(s, s)
        v[f"{p}/self_attention/linear_1/bias"] = r(s)
        if cross:
            v[f"{p}/attention/layer_norm/gamma"] = r(s)
            v[f"{p}/attention/layer_norm/beta"] = r(s)
            v[f"{p}/attention/linear_0/weight"] = r(s, s)
            v[f"{p}/attention/linear_0/bias"] = r(s)
            v[f"{p}/attention/linear_1/weight"] = r(2 * s, s)
            v[f"{p}/attention/linear_1/bias"] = r(2 * s)
            v[f"{p}/attention/linear_2/weight"] = r(s, s)
            v[f"{p}/attention/linear_2/bias"] = r(s)
        v[f"{p}/ffn/layer_norm/gamma"] = r(s)
        v[f"{p}/ffn/layer_norm/beta"] = r(s)
        v[f"{p}/ffn/linear_0/weight"] = r(4 * s, s)
        v[f"{p}/ffn/linear_0/bias"] = r(4 * s)
        v[f"{p}/ffn/linear_1/weight"] = r(s, 4 * s)
        v[f"{p}/ffn/linear_1/bias"] = r(s)

    for i in range(audio_layers):
        block(f"encoder/layer_{i}", cross=False)
    for i in range(text_layers):
        block(f"decoder/layer_{i}", cross=True)
    return v


WHISPER_ALIASES = {"decoder/projection/weight": "decoder/embeddings/weight"}


def write_ct2_dir(directory: Path, variables: Mapping[str, np.ndarray], vocab: int) -> Path:
    """A faster-whisper directory: model.bin plus a vocabulary of ``vocab`` byte-level tokens.

    The last vocabulary entry is ``<|endoftext|>``, so ``vocab - 1`` tokens are written to GGML.
    """
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "model.bin").write_bytes(ct2_bytes(variables, WHISPER_ALIASES))
    tokens = [f"t{i}" for i in range(vocab - 1)] + ["<|endoftext|>"]
    (directory / "vocabulary.txt").write_text("\n".join(tokens) + "\n", encoding="utf-8")
    return directory
