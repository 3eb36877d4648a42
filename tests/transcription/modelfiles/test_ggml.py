"""Tests for the GGML writer: mel filters, vocabulary, tensor layout and the written file."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import pytest

from tests.transcription.modelfiles.synthetic import WHISPER_ALIASES, whisper_variables
from transcription.modelfiles.ct2 import Ct2FormatError, Ct2Model
from transcription.modelfiles.ggml import (
    FTYPE_F16,
    FTYPE_Q8_0,
    GGML_MAGIC,
    GGML_TYPE_F16,
    GGML_TYPE_F32,
    GGML_TYPE_Q8_0,
    Hparams,
    load_vocabulary,
    mel_filters,
    tensor_layout,
    tensor_nbytes,
    write_ggml,
)
from transcription.modelfiles.quantize import quantize_q8_0
from transcription.modelfiles.verify import verify_ggml

# Non-zero runs (first bin, values) of librosa.filters.mel(sr=16000, n_fft=400, n_mels=80) in
# float32, i.e. whisper's assets/mel_filters.npz, as published in public code. A float64
# computation of the same formula differs from these in the last bit.
_LIBROSA_ROWS: dict[int, tuple[int, list[float]]] = {
    0: (1, [0.02486259490251541]),
    1: (1, [0.001990821911022067, 0.022871771827340126]),
    39: (40, [0.001418047584593296, 0.011486922390758991, 0.010089744813740253,
              0.00040022286702878773]),
    58: (83, [0.0007392280967906117, 0.0030791081953793764, 0.005418988410383463,
              0.007397185545414686, 0.005145462695509195, 0.002893739379942417,
              0.0006420162972062826]),
    79: (186, [0.000366741674952209, 0.0008330700220540166, 0.0012993983691558242,
               0.0017657268326729536, 0.0022320549469441175, 0.002698383294045925,
               0.0031647118739783764, 0.003141313325613737, 0.002692554146051407,
               0.0022437951993197203, 0.00179503601975739, 0.0013462770730257034,
               0.000897518009878695, 0.0004487590049393475]),
}  # fmt: skip


# --- mel filters ---


def test_mel_filters_shape_and_sign() -> None:
    """80 float32 filters over the 201 FFT bins, non-negative, each a single contiguous bump."""
    filters = mel_filters(80)
    assert filters.shape == (80, 201) and filters.dtype == np.float32
    assert np.all(filters >= 0)
    for row in filters:
        nonzero = np.flatnonzero(row)
        assert nonzero.size > 0
        assert np.array_equal(nonzero, np.arange(nonzero[0], nonzero[-1] + 1))
    centres = filters.argmax(axis=1)
    assert np.all(np.diff(centres) >= 0)


def test_mel_filters_have_unit_area_in_hz() -> None:
    """Slaney normalisation: each triangle has area ~1 over frequency (bins are 40 Hz apart)."""
    areas = mel_filters(80).astype(np.float64).sum(axis=1) * 40.0
    # Narrow low filters are sampled coarsely by the 40 Hz bins, so only the mean is tight.
    assert np.all((areas > 0.9) & (areas < 1.1))
    assert areas.mean() == pytest.approx(1.0, abs=0.01)


def test_mel_filters_match_librosa_bit_for_bit() -> None:
    """Selected rows equal librosa's float32 filterbank exactly (first bin and every value)."""
    filters = mel_filters(80)
    for row, (first, values) in _LIBROSA_ROWS.items():
        nonzero = np.flatnonzero(filters[row])
        assert nonzero[0] == first and nonzero.size == len(values), row
        expected = np.array(values, dtype=np.float32)
        assert filters[row, first : first + len(values)].tobytes() == expected.tobytes(), row


def test_mel_filters_for_large_v3() -> None:
    """n_mels comes from the model; 128 filters are built the same way."""
    filters = mel_filters(128)
    assert filters.shape == (128, 201) and np.all(filters >= 0)


# --- vocabulary ---


def test_vocabulary_maps_byte_level_tokens_to_bytes(tmp_path: Path) -> None:
    """GPT-2 byte-level strings become raw bytes, and only tokens before <|endoftext|> are kept."""
    tokens = ["!", "Ġthe", "Ċ", "Ã©", "\u0100", "", "<|endoftext|>", "<|en|>"]
    path = tmp_path / "vocabulary.txt"
    path.write_text("\n".join(tokens) + "\n", encoding="utf-8")
    assert load_vocabulary(path) == [b"!", b" the", b"\n", "é".encode(), b"\x00", b""]


def test_vocabulary_rejects_characters_outside_the_byte_alphabet(tmp_path: Path) -> None:
    """A token with a character that is no byte's stand-in is a format error naming the token."""
    path = tmp_path / "vocabulary.txt"
    path.write_text("a\nb\u2028c\n<|endoftext|>\n", encoding="utf-8")
    with pytest.raises(Ct2FormatError, match="token 1"):
        load_vocabulary(path)


def test_vocabulary_without_endoftext_is_rejected(tmp_path: Path) -> None:
    """A vocabulary lacking <|endoftext|> is not a Whisper vocabulary."""
    path = tmp_path / "vocabulary.txt"
    path.write_text("a\nb\n", encoding="utf-8")
    with pytest.raises(Ct2FormatError, match="endoftext"):
        load_vocabulary(path)


def test_all_256_bytes_are_reachable(tmp_path: Path) -> None:
    """Every byte value has exactly one stand-in character."""
    from transcription.modelfiles.ggml import _unicode_to_bytes

    table = _unicode_to_bytes()
    assert sorted(table.values()) == list(range(256))


# --- layout ---


@pytest.mark.parametrize(("layers", "count"), [((4, 4), 167), ((6, 6), 245), ((32, 32), 1259)])
def test_tensor_count_matches_whisper_cpp(layers: tuple[int, int], count: int) -> None:
    """11 + 15 per encoder layer + 24 per decoder layer tensors (167 tiny, 245 base)."""
    hp = Hparams(51864, 1500, 384, 6, layers[0], 448, 384, 6, layers[1], 80, FTYPE_F16)
    specs = tensor_layout(hp)
    assert len(specs) == count
    assert len({s.name for s in specs}) == count
    assert not any(".key.bias" in s.name for s in specs)


def test_tensor_types_follow_the_loader() -> None:
    """F32 for 1-D, conv biases and positional embeddings; F16 convs; wtype for other matrices."""
    for ftype, wtype in ((FTYPE_F16, GGML_TYPE_F16), (FTYPE_Q8_0, GGML_TYPE_Q8_0)):
        hp = Hparams(51864, 1500, 384, 6, 1, 448, 384, 6, 1, 80, ftype)
        types = {s.name: s.ttype for s in tensor_layout(hp)}
        assert types["encoder.conv1.bias"] == GGML_TYPE_F32
        assert types["encoder.positional_embedding"] == GGML_TYPE_F32
        assert types["decoder.positional_embedding"] == GGML_TYPE_F32
        assert types["encoder.blocks.0.attn.query.bias"] == GGML_TYPE_F32
        assert types["encoder.conv2.weight"] == GGML_TYPE_F16
        assert types["decoder.token_embedding.weight"] == wtype
        assert types["decoder.blocks.0.cross_attn.key.weight"] == wtype


# --- writing ---


def _model(**kwargs: int) -> Ct2Model:
    return Ct2Model(6, "WhisperSpec", 3, whisper_variables(**kwargs), WHISPER_ALIASES)


def _read_tensors(data: bytes) -> tuple[Hparams, np.ndarray, list[bytes], dict]:
    """Parse a whole GGML file: hparams, filters, vocabulary and {name: (ttype, ne, bytes)}."""
    f = io.BytesIO(data)
    assert struct.unpack("<I", f.read(4))[0] == GGML_MAGIC
    hp = Hparams.unpack(f.read(44))
    n_mel, n_fft = struct.unpack("<2i", f.read(8))
    filters = np.frombuffer(f.read(4 * n_mel * n_fft), "<f4").reshape(n_mel, n_fft)
    (n_tokens,) = struct.unpack("<i", f.read(4))
    vocab = [f.read(struct.unpack("<i", f.read(4))[0]) for _ in range(n_tokens)]
    tensors = {}
    while f.tell() < len(data):
        n_dims, name_len, ttype = struct.unpack("<3i", f.read(12))
        ne = struct.unpack(f"<{n_dims}i", f.read(4 * n_dims))
        name = f.read(name_len).decode()
        tensors[name] = (ttype, ne, f.read(tensor_nbytes(ttype, int(np.prod(ne)))))
    return hp, filters, vocab, tensors


def test_written_file_has_the_mapped_tensors(tmp_path: Path) -> None:
    """Fused projections are split, the key bias dropped, conv biases reshaped, fp16 kept exact."""
    model = _model(s=32, audio_layers=2, text_layers=1, vocab=40)
    vocabulary = [b"a", b" b", b"\xe2\x80"]
    buf = io.BytesIO()
    hp = write_ggml(buf, model, vocabulary)
    assert hp == Hparams(40, 12, 32, 2, 2, 6, 32, 2, 1, 8, FTYPE_F16)
    path = tmp_path / "m.bin"
    path.write_bytes(buf.getvalue())
    info = verify_ggml(path)
    assert (info.n_tensors, info.n_tokens) == (11 + 15 * 2 + 24, 3)

    got_hp, filters, vocab, tensors = _read_tensors(buf.getvalue())
    assert got_hp == hp and vocab == vocabulary
    assert filters.tobytes() == mel_filters(8).tobytes()
    v = model.variables
    qkv_w = v["encoder/layer_1/self_attention/linear_0/weight"]
    qkv_b = v["encoder/layer_1/self_attention/linear_0/bias"]
    for k, part in enumerate(("query", "key", "value")):
        ttype, ne, raw = tensors[f"encoder.blocks.1.attn.{part}.weight"]
        assert (ttype, ne) == (GGML_TYPE_F16, (32, 32))
        assert raw == qkv_w[32 * k : 32 * (k + 1)].tobytes()
    assert "encoder.blocks.1.attn.key.bias" not in tensors
    ttype, ne, raw = tensors["encoder.blocks.1.attn.value.bias"]
    assert (ttype, ne) == (GGML_TYPE_F32, (32,))
    assert raw == qkv_b[64:].astype("<f4").tobytes()
    kv_w = v["decoder/layer_0/attention/linear_1/weight"]
    assert tensors["decoder.blocks.0.cross_attn.key.weight"][2] == kv_w[:32].tobytes()
    assert tensors["decoder.blocks.0.cross_attn.value.weight"][2] == kv_w[32:].tobytes()
    assert "decoder.blocks.0.cross_attn.key.bias" not in tensors
    assert tensors["encoder.conv1.bias"][:2] == (GGML_TYPE_F32, (1, 32))
    assert tensors["encoder.conv1.weight"][:2] == (GGML_TYPE_F16, (3, 8, 32))
    assert tensors["decoder.token_embedding.weight"][2] == v["decoder/embeddings/weight"].tobytes()
    assert tensors["decoder.positional_embedding"][:2] == (GGML_TYPE_F32, (32, 6))


def test_q8_0_file_quantises_matrices_only(tmp_path: Path) -> None:
    """In a q8_0 file the 2-D weights are q8_0 blocks; convs, biases and norms keep their types."""
    model = _model(s=32, audio_layers=1, text_layers=1)
    buf = io.BytesIO()
    assert write_ggml(buf, model, [b"x"], quant="q8_0").ftype == FTYPE_Q8_0
    path = tmp_path / "q.bin"
    path.write_bytes(buf.getvalue())
    verify_ggml(path)
    _, _, _, tensors = _read_tensors(buf.getvalue())
    ttype, _, raw = tensors["encoder.blocks.0.mlp.0.weight"]
    assert ttype == GGML_TYPE_Q8_0
    assert raw == quantize_q8_0(model.variables["encoder/layer_0/ffn/linear_0/weight"])
    assert tensors["encoder.conv2.weight"][0] == GGML_TYPE_F16
    assert tensors["encoder.positional_embedding"][0] == GGML_TYPE_F32
    assert tensors["decoder.ln.weight"][0] == GGML_TYPE_F32


def test_output_is_deterministic() -> None:
    """The same input gives the same bytes."""
    a, b = io.BytesIO(), io.BytesIO()
    write_ggml(a, _model(seed=3), [b"t"])
    write_ggml(b, _model(seed=3), [b"t"])
    assert a.getvalue() == b.getvalue()


def test_missing_variable_is_a_format_error() -> None:
    """A CT2 model lacking a Whisper variable raises Ct2FormatError, not KeyError."""
    variables = whisper_variables()
    del variables["decoder/layer_0/attention/linear_2/bias"]
    model = Ct2Model(6, "WhisperSpec", 3, variables, WHISPER_ALIASES)
    with pytest.raises((Ct2FormatError, KeyError), match="linear_2/bias"):
        write_ggml(io.BytesIO(), model, [b"t"])


def test_inconsistent_shapes_are_rejected() -> None:
    """A fused projection that does not fit the state size is a format error."""
    variables = whisper_variables()
    variables["encoder/layer_0/self_attention/linear_0/weight"] = np.zeros((64, 32), np.float16)
    model = Ct2Model(6, "WhisperSpec", 3, variables, WHISPER_ALIASES)
    with pytest.raises(Ct2FormatError, match="fused qkv"):
        write_ggml(io.BytesIO(), model, [b"t"])


def test_not_a_whisper_model_is_rejected() -> None:
    """A CT2 model of another architecture fails with a clear message."""
    model = Ct2Model(6, "TransformerSpec", 1, {"x": np.zeros(1, np.float32)})
    with pytest.raises(Ct2FormatError, match="not a CTranslate2 Whisper model"):
        write_ggml(io.BytesIO(), model, [b"t"])
