"""Write whisper.cpp's GGML model file from a parsed CTranslate2 Whisper model.

File layout (little-endian int32 unless noted), as read by ``whisper_model_load``::

    magic 'ggml'; hparams (n_vocab, n_audio_ctx, n_audio_state, n_audio_head, n_audio_layer,
    n_text_ctx, n_text_state, n_text_head, n_text_layer, n_mels, ftype);
    mel filters: n_mel, n_fft(=bins), f32[n_mel * n_fft];
    vocabulary: n_tokens, n_tokens x (len, bytes);
    tensors until EOF: n_dims, name_len, ttype, ne[n_dims], name, data (no padding).

The tensor names, shapes and types follow the mapping table in WHISPER_FACTS.md. The output
depends only on the input bytes, so converting twice gives the same file.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Iterator, Sequence
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import BinaryIO, Literal

import numpy as np

from transcription.audio import SAMPLE_RATE_HZ
from transcription.modelfiles.ct2 import Ct2FormatError, Ct2Model
from transcription.modelfiles.quantize import is_quantized_tensor, q8_0_nbytes, quantize_q8_0

GGML_MAGIC = 0x67676D6C

# ggml_type ids stored per tensor.
GGML_TYPE_F32 = 0
GGML_TYPE_F16 = 1
GGML_TYPE_Q8_0 = 8

# File ftype: 1 = mostly f16; quantised files store ggml_ftype + 1000 * GGML_QNT_VERSION (2).
FTYPE_F16 = 1
FTYPE_Q8_0 = 2007
FTYPES: dict[str, int] = {"f16": FTYPE_F16, "q8_0": FTYPE_Q8_0}
Quant = Literal["f16", "q8_0"]

N_FFT = 400
EOT_TOKEN = "<|endoftext|>"

# 2-D tensors the loader always declares F32 (conv biases are reshaped to (S, 1)).
_F32_2D = frozenset(
    {
        "encoder.conv1.bias",
        "encoder.conv2.bias",
        "encoder.positional_embedding",
        "decoder.positional_embedding",
    }
)


@dataclass(frozen=True)
class Hparams:
    """whisper.cpp hyper-parameters, in the order they are stored."""

    n_vocab: int
    n_audio_ctx: int
    n_audio_state: int
    n_audio_head: int
    n_audio_layer: int
    n_text_ctx: int
    n_text_state: int
    n_text_head: int
    n_text_layer: int
    n_mels: int
    ftype: int

    STRUCT = struct.Struct("<11i")

    def pack(self) -> bytes:
        """The hparams block as written after the magic."""
        return self.STRUCT.pack(*astuple(self))

    @classmethod
    def unpack(cls, data: bytes) -> Hparams:
        """Parse the 44-byte hparams block."""
        return cls(*cls.STRUCT.unpack(data))


@dataclass(frozen=True)
class TensorSpec:
    """What whisper.cpp expects of one tensor: numpy shape (``ne`` reversed) and ggml type."""

    name: str
    shape: tuple[int, ...]
    ttype: int

    @property
    def ne(self) -> tuple[int, ...]:
        """GGML dimensions, fastest-varying first."""
        return tuple(reversed(self.shape))

    @property
    def nbytes(self) -> int:
        """Size of the tensor's data in the file."""
        return tensor_nbytes(self.ttype, int(np.prod(self.shape)))


def tensor_nbytes(ttype: int, n_values: int) -> int:
    """Bytes of data for ``n_values`` elements of ggml type ``ttype``."""
    if ttype == GGML_TYPE_F32:
        return 4 * n_values
    if ttype == GGML_TYPE_F16:
        return 2 * n_values
    if ttype == GGML_TYPE_Q8_0:
        return q8_0_nbytes(n_values)
    raise ValueError(f"unsupported ggml tensor type {ttype}")


def tensor_type(name: str, ndim: int, ftype: int) -> int:
    """The ggml type whisper.cpp's loader declares for a tensor (gotcha 2 in WHISPER_FACTS.md)."""
    if ndim < 2 or name in _F32_2D:
        return GGML_TYPE_F32
    if ndim == 3:  # conv weights: vtype, F16 for every non-f32 model
        return GGML_TYPE_F16
    if ftype == FTYPE_Q8_0 and is_quantized_tensor(name, ndim):
        return GGML_TYPE_Q8_0
    if ftype == FTYPE_F16:
        return GGML_TYPE_F16
    raise ValueError(f"unsupported ftype {ftype} (supported: {sorted(FTYPES.values())})")


def tensor_layout(hp: Hparams) -> list[TensorSpec]:
    """Every tensor whisper.cpp loads for these hparams, in the order this module writes them."""
    sa, st = hp.n_audio_state, hp.n_text_state
    shapes: list[tuple[str, tuple[int, ...]]] = [
        ("encoder.positional_embedding", (hp.n_audio_ctx, sa)),
        ("encoder.conv1.weight", (sa, hp.n_mels, 3)),
        ("encoder.conv1.bias", (sa, 1)),
        ("encoder.conv2.weight", (sa, sa, 3)),
        ("encoder.conv2.bias", (sa, 1)),
    ]
    for i in range(hp.n_audio_layer):
        shapes += _block_shapes(f"encoder.blocks.{i}", sa, cross=False)
    shapes += [("encoder.ln_post.weight", (sa,)), ("encoder.ln_post.bias", (sa,))]
    shapes += [
        ("decoder.positional_embedding", (hp.n_text_ctx, st)),
        ("decoder.token_embedding.weight", (hp.n_vocab, st)),
    ]
    for i in range(hp.n_text_layer):
        shapes += _block_shapes(f"decoder.blocks.{i}", st, cross=True)
    shapes += [("decoder.ln.weight", (st,)), ("decoder.ln.bias", (st,))]
    return [TensorSpec(n, s, tensor_type(n, len(s), hp.ftype)) for n, s in shapes]


def _block_shapes(prefix: str, s: int, *, cross: bool) -> list[tuple[str, tuple[int, ...]]]:
    out: list[tuple[str, tuple[int, ...]]] = []
    attentions = ["attn", "cross_attn"] if cross else ["attn"]
    for attn in attentions:
        out += [(f"{prefix}.{attn}_ln.weight", (s,)), (f"{prefix}.{attn}_ln.bias", (s,))]
        out += [(f"{prefix}.{attn}.query.weight", (s, s)), (f"{prefix}.{attn}.query.bias", (s,))]
        out += [(f"{prefix}.{attn}.key.weight", (s, s))]  # no key bias: gotcha 5
        out += [(f"{prefix}.{attn}.value.weight", (s, s)), (f"{prefix}.{attn}.value.bias", (s,))]
        out += [(f"{prefix}.{attn}.out.weight", (s, s)), (f"{prefix}.{attn}.out.bias", (s,))]
    out += [(f"{prefix}.mlp_ln.weight", (s,)), (f"{prefix}.mlp_ln.bias", (s,))]
    out += [(f"{prefix}.mlp.0.weight", (4 * s, s)), (f"{prefix}.mlp.0.bias", (4 * s,))]
    out += [(f"{prefix}.mlp.2.weight", (s, 4 * s)), (f"{prefix}.mlp.2.bias", (s,))]
    return out


# --- hparams, mel filters, vocabulary ---


def hparams_from_ct2(model: Ct2Model, ftype: int) -> Hparams:
    """Derive whisper.cpp hparams from the CT2 variables (WHISPER_FACTS.md, hparams table)."""
    try:
        audio_pos = model.get("encoder/position_encodings/encodings")
        text_pos = model.get("decoder/position_encodings/encodings")
        embeddings = model.get("decoder/embeddings/weight")
        conv1 = model.get("encoder/conv1/weight")
        n_audio_head = model.scalar("encoder/num_heads")
        n_text_head = model.scalar("decoder/num_heads")
    except KeyError as exc:
        raise Ct2FormatError(f"not a CTranslate2 Whisper model: {exc.args[0]}") from None
    return Hparams(
        n_vocab=embeddings.shape[0],
        n_audio_ctx=audio_pos.shape[0],
        n_audio_state=audio_pos.shape[1],
        n_audio_head=n_audio_head,
        n_audio_layer=_count_layers(model, "encoder"),
        n_text_ctx=text_pos.shape[0],
        n_text_state=embeddings.shape[1],
        n_text_head=n_text_head,
        n_text_layer=_count_layers(model, "decoder"),
        n_mels=conv1.shape[1],
        ftype=ftype,
    )


def _count_layers(model: Ct2Model, side: str) -> int:
    pattern = re.compile(rf"^{side}/layer_(\d+)/")
    indices = {int(m.group(1)) for name in model.variables if (m := pattern.match(name))}
    if indices != set(range(len(indices))):
        raise Ct2FormatError(f"{side} layers are not numbered 0..n-1: {sorted(indices)}")
    return len(indices)


def mel_filters(n_mels: int, sample_rate: int = SAMPLE_RATE_HZ, n_fft: int = N_FFT) -> np.ndarray:
    """librosa's slaney mel filterbank, float32 (n_mels, 1 + n_fft // 2), bit-exact.

    Follows ``librosa.filters.mel(sr, n_fft, n_mels, fmin=0, fmax=sr/2, htk=False,
    norm="slaney")`` operation by operation: float64 ramps, float32 weights, then an in-place
    multiply by a float64 ``enorm`` (a plain float64 computation differs by about 2e-9).
    """
    fftfreqs = np.fft.rfftfreq(n=n_fft, d=1.0 / sample_rate)
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(sample_rate / 2.0), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fftfreqs)
    weights = np.zeros((n_mels, 1 + n_fft // 2), dtype=np.float32)
    for i in range(n_mels):
        lower = -ramps[i] / fdiff[i]
        upper = ramps[i + 2] / fdiff[i + 1]
        weights[i] = np.maximum(0, np.minimum(lower, upper))
    enorm = 2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels])
    weights *= enorm[:, np.newaxis]
    return weights


# Slaney's auditory-toolbox mel scale: linear below 1 kHz, logarithmic above.
_F_SP = 200.0 / 3
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOGSTEP = np.log(6.4) / 27.0


def _hz_to_mel(hz: float) -> float:
    if hz >= _MIN_LOG_HZ:
        return float(_MIN_LOG_MEL + np.log(hz / _MIN_LOG_HZ) / _LOGSTEP)
    return hz / _F_SP


def _mel_to_hz(mels: np.ndarray) -> np.ndarray:
    freqs = _F_SP * mels
    log_t = mels >= _MIN_LOG_MEL
    freqs[log_t] = _MIN_LOG_HZ * np.exp(_LOGSTEP * (mels[log_t] - _MIN_LOG_MEL))
    return freqs


def _unicode_to_bytes() -> dict[str, int]:
    # Inverse of GPT-2's bytes_to_unicode: printable bytes map to themselves, the rest to 256+n.
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    printable += range(ord("®"), ord("ÿ") + 1)
    table = {chr(b): b for b in printable}
    n = 0
    for b in range(256):
        if b not in printable:
            table[chr(256 + n)] = b
            n += 1
    return table


def load_vocabulary(path: str | Path) -> list[bytes]:
    """The byte strings of the tokens before ``<|endoftext|>`` in a CT2 vocabulary.txt.

    Tokens stay bytes: hundreds are partial UTF-8 sequences (gotcha 7). whisper.cpp adds the
    special, language and timestamp tokens itself.
    """
    # Split on "\n" only: some tokens are other line separators that splitlines() would cut.
    lines = Path(path).read_text(encoding="utf-8").split("\n")
    try:
        eot = lines.index(EOT_TOKEN)
    except ValueError:
        raise Ct2FormatError(f"{path}: no {EOT_TOKEN} token; not a Whisper vocabulary") from None
    table = _unicode_to_bytes()
    tokens: list[bytes] = []
    for token_id, token in enumerate(lines[:eot]):
        try:
            tokens.append(bytes(table[ch] for ch in token))
        except KeyError as exc:
            raise Ct2FormatError(
                f"{path}: token {token_id} has {exc.args[0]!r}, not a byte-level character"
            ) from None
    return tokens


# --- tensors ---


def ct2_tensors(model: Ct2Model, hp: Hparams) -> Iterator[tuple[str, np.ndarray]]:
    """(GGML name, float array in numpy shape) for every tensor, in ``tensor_layout`` order."""
    w = model.weight
    s_audio, s_text = hp.n_audio_state, hp.n_text_state
    yield "encoder.positional_embedding", w("encoder/position_encodings/encodings")
    for conv in ("conv1", "conv2"):
        yield f"encoder.{conv}.weight", w(f"encoder/{conv}/weight")
        yield f"encoder.{conv}.bias", w(f"encoder/{conv}/bias").reshape(-1, 1)  # gotcha 4
    for i in range(hp.n_audio_layer):
        src, dst = f"encoder/layer_{i}", f"encoder.blocks.{i}"
        yield from _norm(model, f"{src}/self_attention/layer_norm", f"{dst}.attn_ln")
        yield from _fused(model, f"{src}/self_attention/linear_0", f"{dst}.attn", s_audio, "qkv")
        yield from _linear(model, f"{src}/self_attention/linear_1", f"{dst}.attn.out")
        yield from _ffn(model, src, dst)
    yield from _norm(model, "encoder/layer_norm", "encoder.ln_post")
    yield "decoder.positional_embedding", w("decoder/position_encodings/encodings")
    # decoder/projection/weight is an alias of the embedding: whisper.cpp ties the LM head.
    yield "decoder.token_embedding.weight", w("decoder/embeddings/weight")
    for i in range(hp.n_text_layer):
        src, dst = f"decoder/layer_{i}", f"decoder.blocks.{i}"
        yield from _norm(model, f"{src}/self_attention/layer_norm", f"{dst}.attn_ln")
        yield from _fused(model, f"{src}/self_attention/linear_0", f"{dst}.attn", s_text, "qkv")
        yield from _linear(model, f"{src}/self_attention/linear_1", f"{dst}.attn.out")
        yield from _norm(model, f"{src}/attention/layer_norm", f"{dst}.cross_attn_ln")
        yield from _linear(model, f"{src}/attention/linear_0", f"{dst}.cross_attn.query")
        yield from _fused(model, f"{src}/attention/linear_1", f"{dst}.cross_attn", s_text, "kv")
        yield from _linear(model, f"{src}/attention/linear_2", f"{dst}.cross_attn.out")
        yield from _ffn(model, src, dst)
    yield from _norm(model, "decoder/layer_norm", "decoder.ln")


def _norm(model: Ct2Model, src: str, dst: str) -> Iterator[tuple[str, np.ndarray]]:
    yield f"{dst}.weight", model.weight(f"{src}/gamma")
    yield f"{dst}.bias", model.weight(f"{src}/beta")


def _linear(model: Ct2Model, src: str, dst: str) -> Iterator[tuple[str, np.ndarray]]:
    yield f"{dst}.weight", model.weight(f"{src}/weight")
    yield f"{dst}.bias", model.weight(f"{src}/bias")


def _ffn(model: Ct2Model, src: str, dst: str) -> Iterator[tuple[str, np.ndarray]]:
    yield from _norm(model, f"{src}/ffn/layer_norm", f"{dst}.mlp_ln")
    yield from _linear(model, f"{src}/ffn/linear_0", f"{dst}.mlp.0")
    yield from _linear(model, f"{src}/ffn/linear_1", f"{dst}.mlp.2")


def _fused(
    model: Ct2Model, src: str, dst: str, s: int, parts: Literal["qkv", "kv"]
) -> Iterator[tuple[str, np.ndarray]]:
    # CT2 fuses the projections row-wise; whisper.cpp wants them apart. The key bias is dropped
    # (whisper.cpp has no such tensor, and softmax ignores a per-query constant: gotcha 5).
    weight, bias = model.weight(f"{src}/weight"), model.weight(f"{src}/bias")
    names = ("query", "key", "value") if parts == "qkv" else ("key", "value")
    if weight.shape != (len(names) * s, s) or bias.shape != (len(names) * s,):
        raise Ct2FormatError(
            f"{src}: fused {parts} weight {weight.shape} / bias {bias.shape} do not fit "
            f"state size {s}"
        )
    for k, name in enumerate(names):
        yield f"{dst}.{name}.weight", weight[k * s : (k + 1) * s]
        if name != "key":
            yield f"{dst}.{name}.bias", bias[k * s : (k + 1) * s]


# --- writing ---


def write_ggml(
    out: BinaryIO,
    model: Ct2Model,
    vocabulary: Sequence[bytes],
    *,
    quant: Quant = "f16",
    on_tensor: Callable[[int, int], None] | None = None,
) -> Hparams:
    """Write the whole GGML file for ``model`` to ``out``; returns the hparams written.

    ``on_tensor(done, total)`` is called after each tensor. Raises Ct2FormatError when a CT2
    variable is missing or has a shape the hparams do not explain.
    """
    if quant not in FTYPES:
        raise ValueError(f"quant must be one of {', '.join(FTYPES)}, got {quant!r}")
    hp = hparams_from_ct2(model, FTYPES[quant])
    if len(vocabulary) > hp.n_vocab:
        raise Ct2FormatError(f"{len(vocabulary)} vocabulary tokens exceed n_vocab {hp.n_vocab}")
    out.write(struct.pack("<I", GGML_MAGIC))
    out.write(hp.pack())
    filters = mel_filters(hp.n_mels)
    out.write(struct.pack("<2i", *filters.shape))
    out.write(filters.astype("<f4").tobytes())
    out.write(struct.pack("<i", len(vocabulary)))
    for token in vocabulary:
        out.write(struct.pack("<i", len(token)))
        out.write(token)
    layout = tensor_layout(hp)
    for done, (spec, (name, array)) in enumerate(
        zip(layout, ct2_tensors(model, hp), strict=True), start=1
    ):
        if name != spec.name or array.shape != spec.shape:
            raise Ct2FormatError(
                f"{name} has shape {array.shape}; whisper.cpp expects {spec.name} {spec.shape}"
            )
        _write_tensor(out, spec, array)
        if on_tensor is not None:
            on_tensor(done, len(layout))
    return hp


def _write_tensor(out: BinaryIO, spec: TensorSpec, array: np.ndarray) -> None:
    name = spec.name.encode()
    out.write(struct.pack("<3i", len(spec.shape), len(name), spec.ttype))
    out.write(struct.pack(f"<{len(spec.ne)}i", *spec.ne))
    out.write(name)
    # No transposes: CT2 stores (out, in[, k]) like torch; C-order bytes with ne reversed match
    # convert-pt-to-ggml.py (gotcha 1).
    if spec.ttype == GGML_TYPE_Q8_0:
        data = quantize_q8_0(array)
    else:
        dtype = "<f4" if spec.ttype == GGML_TYPE_F32 else "<f2"
        data = np.ascontiguousarray(array, dtype=dtype).tobytes()
    if len(data) != spec.nbytes:  # defensive: a mismatch would make whisper.cpp misread the rest
        raise AssertionError(f"{spec.name}: wrote {len(data)} bytes, expected {spec.nbytes}")
    out.write(data)
