"""Reader for CTranslate2 ``model.bin`` files (binary versions 4-6), as shipped by faster-whisper.

Layout (little-endian; a string is ``u16 length-including-NUL`` + bytes + NUL)::

    u32 version; [v>=2] string spec_name, u32 revision; u32 n_vars;
    n_vars x (string name, u8 rank, u32 dims[rank], [v>=4] u8 dtype, u32 nbytes, data)
    [v>=3] u32 n_aliases; n_aliases x (string alias, string target)

A model split into part files (``model.bin.part1``, ``model.bin.part2``) is read as one stream,
so the parts never have to be concatenated on disk.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from io import BufferedReader
from pathlib import Path

import numpy as np

MIN_VERSION = 4  # before 4, variables carry an item size instead of a dtype id
MAX_VERSION = 6

# CTranslate2 DataType ids (include/ctranslate2/types.h).
_DTYPES: dict[int, np.dtype] = {
    0: np.dtype("<f4"),
    1: np.dtype("i1"),
    2: np.dtype("<i2"),
    3: np.dtype("<i4"),
    4: np.dtype("<f2"),
    5: np.dtype("<u2"),  # bfloat16 bits; widened to float32 on read
}
_BF16 = 5

# Guards against reading garbage as a length: no Whisper variable has more dims or a longer name.
_MAX_RANK = 8
_MAX_VARS = 100_000


class Ct2FormatError(ValueError):
    """The bytes are not a readable CTranslate2 model (wrong version, truncated, inconsistent)."""


@dataclass(frozen=True)
class Ct2Model:
    """A parsed model: its variables by name, and aliases resolved on lookup."""

    version: int
    spec_name: str
    revision: int
    variables: Mapping[str, np.ndarray]
    aliases: Mapping[str, str] = field(default_factory=dict)

    def __contains__(self, name: object) -> bool:
        return name in self.variables or name in self.aliases

    def get(self, name: str) -> np.ndarray:
        """The raw array stored under ``name`` (following an alias); KeyError if absent."""
        target = self.aliases.get(name, name)
        try:
            return self.variables[target]
        except KeyError:
            raise KeyError(f"CTranslate2 model has no variable {name!r}") from None

    def weight(self, name: str) -> np.ndarray:
        """Floating-point weights for ``name``, dequantised when stored as int8 + scale.

        Quantised CTranslate2 models store ``X/weight`` as int8 and ``X/weight_scale`` as one f32
        per output row (``q = round(w * scale)``), so ``w = q / scale[:, None]``.
        """
        array = self.get(name)
        if array.dtype.kind == "f":
            return array
        scale_name = f"{name}_scale"
        if array.dtype == np.int8 and scale_name in self:
            scale = self.get(scale_name).astype(np.float32)
            if scale.ndim == 0:
                return array.astype(np.float32) / scale
            if array.ndim < 1 or scale.shape != array.shape[:1]:
                raise Ct2FormatError(
                    f"{scale_name} has shape {scale.shape}, expected one scale per row of "
                    f"{name} {array.shape}"
                )
            shape = (-1,) + (1,) * (array.ndim - 1)
            return array.astype(np.float32) / scale.reshape(shape)
        raise Ct2FormatError(f"{name} is {array.dtype} without a {scale_name}; cannot dequantise")

    def scalar(self, name: str) -> int:
        """An integer scalar such as ``encoder/num_heads``."""
        array = self.get(name)
        if array.size != 1:
            raise Ct2FormatError(f"{name} should be a scalar, has shape {array.shape}")
        return int(array.reshape(()))


def read_ct2(source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> Ct2Model:
    """Parse a model.bin, or the ordered part files of one; raises Ct2FormatError when malformed."""
    paths = [Path(source)] if isinstance(source, str | os.PathLike) else [Path(p) for p in source]
    if not paths:
        raise ValueError("read_ct2 needs at least one file")
    with _ChainedReader(paths) as reader:
        return _parse(reader)


def _parse(reader: _ChainedReader) -> Ct2Model:
    version = reader.u32("version")
    if not MIN_VERSION <= version <= MAX_VERSION:
        raise Ct2FormatError(
            f"unsupported CTranslate2 binary version {version} "
            f"(supported {MIN_VERSION}-{MAX_VERSION}); is this a CTranslate2 model.bin?"
        )
    spec_name = reader.string("spec name")
    revision = reader.u32("spec revision")
    n_vars = reader.u32("variable count")
    if n_vars > _MAX_VARS:
        raise Ct2FormatError(f"implausible variable count {n_vars}")
    variables: dict[str, np.ndarray] = {}
    for index in range(n_vars):
        name = reader.string(f"name of variable {index}")
        rank = reader.u8(f"rank of {name}")
        if rank > _MAX_RANK:
            raise Ct2FormatError(f"{name}: implausible rank {rank}")
        shape = tuple(reader.u32(f"dims of {name}") for _ in range(rank))
        dtype_id = reader.u8(f"dtype of {name}")
        if dtype_id not in _DTYPES:
            raise Ct2FormatError(f"{name}: unknown dtype id {dtype_id}")
        dtype = _DTYPES[dtype_id]
        nbytes = reader.u32(f"size of {name}")
        expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if nbytes != expected:
            raise Ct2FormatError(
                f"{name}: {nbytes} data bytes do not match shape {shape} of {dtype} ({expected})"
            )
        array = np.frombuffer(reader.read(nbytes, f"data of {name}"), dtype=dtype).reshape(shape)
        if dtype_id == _BF16:
            array = (array.astype(np.uint32) << 16).view(np.float32)
        variables[name] = array
    aliases: dict[str, str] = {}
    for _ in range(reader.u32("alias count")):
        alias = reader.string("alias name")
        aliases[alias] = reader.string(f"target of alias {alias}")
    for alias, target in aliases.items():
        if target not in variables:
            raise Ct2FormatError(f"alias {alias} points at missing variable {target}")
    if not reader.at_end():
        raise Ct2FormatError(f"{reader.remaining()} unexpected bytes after the alias table")
    return Ct2Model(version, spec_name, revision, variables, aliases)


class _ChainedReader:
    """Reads a sequence of files as one byte stream and names what was truncated."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self._paths = list(paths)
        self._sizes = [p.stat().st_size for p in self._paths]
        self._next_index = 0
        self._current: BufferedReader | None = None
        self._offset = 0

    def __enter__(self) -> _ChainedReader:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._current is not None:
            self._current.close()
            self._current = None

    def read(self, n: int, what: str) -> bytearray:
        # bytearray, so np.frombuffer gives writable arrays without another copy.
        out = bytearray(n)
        view = memoryview(out)
        got = 0
        while got < n:
            if self._current is None:
                if self._next_index == len(self._paths):
                    raise Ct2FormatError(
                        f"truncated CTranslate2 model: needed {n} bytes for {what} at offset "
                        f"{self._offset}, file(s) end after {got} "
                        f"({' + '.join(str(s) for s in self._sizes)} bytes in "
                        f"{', '.join(p.name for p in self._paths)})"
                    )
                self._current = self._paths[self._next_index].open("rb")
                self._next_index += 1
            chunk = self._current.readinto(view[got:])
            if not chunk:
                self._current.close()
                self._current = None
                continue
            got += chunk
        self._offset += n
        return out

    def u8(self, what: str) -> int:
        return self.read(1, what)[0]

    def u16(self, what: str) -> int:
        return int(struct.unpack("<H", self.read(2, what))[0])

    def u32(self, what: str) -> int:
        return int(struct.unpack("<I", self.read(4, what))[0])

    def string(self, what: str) -> str:
        length = self.u16(what)
        raw = bytes(self.read(length, what))
        if length == 0 or raw[-1] != 0:
            raise Ct2FormatError(f"{what}: string at offset {self._offset - length} lacks its NUL")
        try:
            return raw[:-1].decode("utf-8")
        except UnicodeDecodeError:
            raise Ct2FormatError(f"{what}: not UTF-8 at offset {self._offset - length}") from None

    def remaining(self) -> int:
        return sum(self._sizes) - self._offset

    def at_end(self) -> bool:
        return self.remaining() == 0
