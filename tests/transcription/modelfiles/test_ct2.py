"""Tests for the CTranslate2 model.bin reader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.transcription.modelfiles.synthetic import ct2_bytes
from transcription.modelfiles.ct2 import Ct2FormatError, read_ct2

_VARIABLES = {
    "encoder/num_heads": np.array(6, np.int16),
    "decoder/embeddings/weight": np.arange(12, dtype=np.float16).reshape(4, 3),
    "encoder/layer_0/bias": np.linspace(-1, 1, 5, dtype=np.float32),
    "decoder/counts": np.array([1, -2, 3], np.int32),
}
_ALIASES = {"decoder/projection/weight": "decoder/embeddings/weight"}


def _write(tmp_path: Path, data: bytes, name: str = "model.bin") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_reads_header_variables_and_aliases(tmp_path: Path) -> None:
    """Version, spec, each variable's name, shape, dtype and bytes, and the aliases are read."""
    model = read_ct2(_write(tmp_path, ct2_bytes(_VARIABLES, _ALIASES)))
    assert (model.version, model.spec_name, model.revision) == (6, "WhisperSpec", 3)
    assert list(model.variables) == list(_VARIABLES)
    for name, expected in _VARIABLES.items():
        assert model.variables[name].dtype == expected.dtype
        np.testing.assert_array_equal(model.variables[name], expected)
    assert model.aliases == _ALIASES
    assert model.scalar("encoder/num_heads") == 6


def test_alias_resolves_to_its_target(tmp_path: Path) -> None:
    """Looking up an alias returns the target variable's array."""
    model = read_ct2(_write(tmp_path, ct2_bytes(_VARIABLES, _ALIASES)))
    assert "decoder/projection/weight" in model
    assert model.get("decoder/projection/weight") is model.get("decoder/embeddings/weight")


def test_missing_variable_raises_key_error(tmp_path: Path) -> None:
    """get() of an unknown name raises KeyError naming it."""
    model = read_ct2(_write(tmp_path, ct2_bytes(_VARIABLES)))
    with pytest.raises(KeyError, match="nope"):
        model.get("nope")


def test_int8_weight_is_dequantised_per_row(tmp_path: Path) -> None:
    """An int8 weight with a per-row f32 scale comes back as q / scale[:, None]."""
    rng = np.random.default_rng(1)
    w = rng.standard_normal((4, 8)).astype(np.float32)
    # CTranslate2's int8 formula: scale = 127 / max|row|, q = round(w * scale).
    scale = (127.0 / np.abs(w).max(axis=1)).astype(np.float32)
    q = np.round(w * scale[:, None]).astype(np.int8)
    variables = {"x/weight": q, "x/weight_scale": scale}
    model = read_ct2(_write(tmp_path, ct2_bytes(variables)))
    out = model.weight("x/weight")
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, q / scale[:, None], rtol=1e-7)
    assert np.max(np.abs(out - w)) <= np.max(0.5 / scale) + 1e-7


def test_float_weight_is_returned_unchanged(tmp_path: Path) -> None:
    """weight() of a float variable returns its stored array without conversion."""
    model = read_ct2(_write(tmp_path, ct2_bytes(_VARIABLES)))
    assert model.weight("decoder/embeddings/weight").dtype == np.float16


def test_int8_without_scale_is_an_error(tmp_path: Path) -> None:
    """An int8 weight lacking its scale cannot be dequantised and says so."""
    variables = {"x/weight": np.ones((2, 2), np.int8)}
    model = read_ct2(_write(tmp_path, ct2_bytes(variables)))
    with pytest.raises(Ct2FormatError, match="x/weight_scale"):
        model.weight("x/weight")


def test_bfloat16_is_widened_to_float32(tmp_path: Path) -> None:
    """bfloat16 variables are read as float32 with the same values."""
    values = np.array([1.0, -2.5, 0.15625, 3e38], np.float32)
    data = ct2_bytes({"b": values}, bf16=frozenset({"b"}))
    out = read_ct2(_write(tmp_path, data)).get("b")
    assert out.dtype == np.float32
    expected = (values.view(np.uint32) & 0xFFFF0000).view(np.float32)
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("version", [4, 5, 6])
def test_supported_versions(tmp_path: Path, version: int) -> None:
    """Binary versions 4 to 6 share the layout and are all read."""
    model = read_ct2(_write(tmp_path, ct2_bytes(_VARIABLES, _ALIASES, version=version)))
    assert model.version == version


@pytest.mark.parametrize("version", [1, 3, 7, 0x67676D6C])
def test_unsupported_version_is_rejected(tmp_path: Path, version: int) -> None:
    """Other versions, or a file that is not CT2 at all, raise a clear error."""
    data = ct2_bytes(_VARIABLES, version=version)
    with pytest.raises(Ct2FormatError, match="unsupported CTranslate2 binary version"):
        read_ct2(_write(tmp_path, data))


def test_truncated_file_names_what_was_cut(tmp_path: Path) -> None:
    """A file cut inside a variable's data raises Ct2FormatError saying 'truncated' and where."""
    data = ct2_bytes(_VARIABLES, _ALIASES)
    with pytest.raises(Ct2FormatError, match=r"truncated.*data of decoder/embeddings/weight"):
        cut = data.index(b"decoder/embeddings/weight") + 60  # past its header, inside its data
        read_ct2(_write(tmp_path, data[:cut]))


@pytest.mark.parametrize("cut", [0, 3, 10, 200])
def test_any_truncation_is_detected(tmp_path: Path, cut: int) -> None:
    """Cutting the file anywhere, including inside the alias table, raises Ct2FormatError."""
    data = ct2_bytes(_VARIABLES, _ALIASES)
    with pytest.raises(Ct2FormatError):
        read_ct2(_write(tmp_path, data[: len(data) - 1 - cut]))


def test_trailing_garbage_is_rejected(tmp_path: Path) -> None:
    """Bytes after the alias table mean the file is not what it claims to be."""
    data = ct2_bytes(_VARIABLES, _ALIASES) + b"\0\0"
    with pytest.raises(Ct2FormatError, match="unexpected bytes"):
        read_ct2(_write(tmp_path, data))


def test_alias_to_missing_variable_is_rejected(tmp_path: Path) -> None:
    """An alias whose target does not exist is a format error."""
    data = ct2_bytes(_VARIABLES, {"a": "missing/variable"})
    with pytest.raises(Ct2FormatError, match="missing/variable"):
        read_ct2(_write(tmp_path, data))


@settings(max_examples=25, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=1000), max_size=3))
def test_split_parts_read_like_one_file(
    tmp_path_factory: pytest.TempPathFactory, cuts: list[int]
) -> None:
    """Any split of model.bin into ordered part files (even empty ones) parses identically."""
    data = ct2_bytes(_VARIABLES, _ALIASES)
    bounds = sorted({min(c, len(data)) for c in cuts})
    pieces = [data[a:b] for a, b in zip([0, *bounds], [*bounds, len(data)], strict=True)]
    directory = tmp_path_factory.mktemp("parts")
    paths = [_write(directory, piece, f"model.bin.part{i + 1}") for i, piece in enumerate(pieces)]
    model = read_ct2(paths)
    assert model.aliases == _ALIASES
    for name, expected in _VARIABLES.items():
        np.testing.assert_array_equal(model.variables[name], expected)


def test_missing_part_is_reported_as_truncation(tmp_path: Path) -> None:
    """Reading only the first part of a split model fails as a truncation."""
    data = ct2_bytes(_VARIABLES, _ALIASES)
    part1 = _write(tmp_path, data[: len(data) // 2], "model.bin.part1")
    with pytest.raises(Ct2FormatError, match="truncated.*model.bin.part1"):
        read_ct2([part1])
