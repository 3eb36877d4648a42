"""Check a GGML Whisper file before pywhispercpp ever sees it.

A failed load in pywhispercpp is silent and the first ``transcribe()`` then segfaults
(WHISPER_FACTS.md, gotcha 13), so a file is first checked structurally here: header, hparams,
every tensor's name, dims and type, and a size that accounts for every byte. ``probe_load`` then
loads it for real, but in a child process, so a crash costs the caller nothing.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from transcription.modelfiles.ggml import (
    FTYPES,
    GGML_MAGIC,
    N_FFT,
    Hparams,
    TensorSpec,
    tensor_layout,
)

_MAX_TOKEN_BYTES = 1024  # the longest Whisper token is far shorter; more means garbage
_MAX_NAME_BYTES = 256


class GgmlVerifyError(ValueError):
    """The file is not a complete whisper.cpp model this server can load; the message says why."""


@dataclass(frozen=True)
class GgmlInfo:
    """What a verified file contains."""

    path: Path
    hparams: Hparams
    n_tokens: int
    n_tensors: int
    size: int

    @property
    def multilingual(self) -> bool:
        """whisper.cpp treats n_vocab >= 51865 as multilingual (gotcha 8)."""
        return self.hparams.n_vocab >= 51865


def verify_ggml(path: str | os.PathLike[str]) -> GgmlInfo:
    """Check the file's structure without loading weights; raises GgmlVerifyError if unusable."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            return _verify(f, path, size)
    except FileNotFoundError:
        raise GgmlVerifyError(f"{path}: no such file") from None
    except struct.error:
        raise GgmlVerifyError(f"{path}: truncated header") from None


def _verify(f: BinaryIO, path: Path, size: int) -> GgmlInfo:
    def read(n: int, what: str) -> bytes:
        data = f.read(n)
        if len(data) != n:
            raise GgmlVerifyError(f"{path}: truncated in {what} at offset {f.tell()}")
        return data

    def skip(n: int, what: str) -> None:
        if f.tell() + n > size:
            raise GgmlVerifyError(
                f"{path}: truncated in {what}: needs {n} bytes at offset {f.tell()}, "
                f"file has {size}"
            )
        f.seek(n, os.SEEK_CUR)

    (magic,) = struct.unpack("<I", read(4, "magic"))
    if magic != GGML_MAGIC:
        raise GgmlVerifyError(f"{path}: bad magic {magic:#010x}, not a GGML whisper model")
    hp = Hparams.unpack(read(Hparams.STRUCT.size, "hparams"))
    _check_hparams(path, hp)

    n_mel, n_fft = struct.unpack("<2i", read(8, "mel filter header"))
    if (n_mel, n_fft) != (hp.n_mels, 1 + N_FFT // 2):
        raise GgmlVerifyError(
            f"{path}: mel filters are {n_mel}x{n_fft}, expected {hp.n_mels}x{1 + N_FFT // 2}"
        )
    skip(4 * n_mel * n_fft, "mel filters")

    (n_tokens,) = struct.unpack("<i", read(4, "vocabulary size"))
    if not 0 < n_tokens <= hp.n_vocab:
        raise GgmlVerifyError(f"{path}: {n_tokens} vocabulary tokens, n_vocab is {hp.n_vocab}")
    for token_id in range(n_tokens):
        (length,) = struct.unpack("<i", read(4, f"vocabulary token {token_id}"))
        if not 0 <= length <= _MAX_TOKEN_BYTES:
            raise GgmlVerifyError(f"{path}: vocabulary token {token_id} has length {length}")
        skip(length, f"vocabulary token {token_id}")

    expected = {spec.name: spec for spec in tensor_layout(hp)}
    seen: set[str] = set()
    while f.tell() < size:
        n_dims, name_len, ttype = struct.unpack("<3i", read(12, "tensor header"))
        if not 1 <= n_dims <= 4 or not 1 <= name_len <= _MAX_NAME_BYTES:
            raise GgmlVerifyError(
                f"{path}: corrupt tensor header at offset {f.tell() - 12} "
                f"(n_dims {n_dims}, name length {name_len})"
            )
        ne = struct.unpack(f"<{n_dims}i", read(4 * n_dims, "tensor dims"))
        name = read(name_len, "tensor name").decode("utf-8", "replace")
        spec = expected.get(name)
        if spec is None:
            raise GgmlVerifyError(f"{path}: unknown tensor {name!r} (whisper.cpp would reject it)")
        if name in seen:
            raise GgmlVerifyError(f"{path}: tensor {name!r} appears twice")
        _check_tensor(path, spec, ne, ttype)
        seen.add(name)
        skip(spec.nbytes, f"data of {name}")
    missing = [name for name in expected if name not in seen]
    if missing:
        raise GgmlVerifyError(
            f"{path}: {len(missing)} of {len(expected)} tensors missing (first: {missing[0]}); "
            "the file is truncated or incomplete"
        )
    return GgmlInfo(path, hp, n_tokens, len(seen), size)


def _check_hparams(path: Path, hp: Hparams) -> None:
    if hp.ftype not in FTYPES.values():
        raise GgmlVerifyError(
            f"{path}: ftype {hp.ftype} is not supported here "
            f"(f16 = {FTYPES['f16']}, q8_0 = {FTYPES['q8_0']})"
        )
    dims = (
        hp.n_vocab,
        hp.n_audio_ctx,
        hp.n_audio_state,
        hp.n_audio_head,
        hp.n_audio_layer,
        hp.n_text_ctx,
        hp.n_text_state,
        hp.n_text_head,
        hp.n_text_layer,
        hp.n_mels,
    )
    # Bounds generous enough for large-v3 (n_vocab 51866, state 1280, 32 layers, 128 mels).
    if not all(0 < d <= 1_000_000 for d in dims) or hp.n_audio_state % hp.n_audio_head:
        raise GgmlVerifyError(f"{path}: implausible hparams {hp}")


def _check_tensor(path: Path, spec: TensorSpec, ne: tuple[int, ...], ttype: int) -> None:
    if ne != spec.ne:
        raise GgmlVerifyError(f"{path}: tensor {spec.name} has ne {list(ne)}, expected {spec.ne}")
    if ttype != spec.ttype:
        raise GgmlVerifyError(
            f"{path}: tensor {spec.name} has type {ttype}, whisper.cpp declares {spec.ttype}"
        )


# --- loading in a child process ---

_PROBE_SCRIPT = """
import sys
import numpy as np
from pywhispercpp.model import Model

model = Model(sys.argv[1], n_threads=1, print_progress=False, print_realtime=False)
segments = model.transcribe(np.zeros(16000, dtype=np.float32), language="en")
print("PROBE-OK", "".join(s.text for s in segments).strip().replace("\\n", " "))
"""


@dataclass(frozen=True)
class ProbeResult:
    """Outcome of :func:`probe_load`; ``error`` explains a failure (crash signal, stderr tail)."""

    ok: bool
    error: str | None = None
    returncode: int | None = None


def probe_load(path: str | os.PathLike[str], timeout_s: float = 120.0) -> ProbeResult:
    """Load ``path`` with pywhispercpp in a subprocess and transcribe 1 s of silence.

    Never raises for a bad model: a segfault, a timeout or an exception in the child comes back
    as ``ok=False``. The file is verified structurally first and must exist, because
    pywhispercpp treats a missing path as a model name and downloads it.
    """
    path = Path(path).resolve()
    try:
        verify_ggml(path)
    except GgmlVerifyError as exc:
        return ProbeResult(False, str(exc))
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _PROBE_SCRIPT, str(path)],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
    except subprocess.TimeoutExpired:
        return ProbeResult(False, f"{path}: loading did not finish within {timeout_s:g} s")
    if proc.returncode == 0 and "PROBE-OK" in proc.stdout:
        return ProbeResult(True, None, 0)
    tail = " | ".join(proc.stderr.strip().splitlines()[-5:])
    how = f"killed by signal {-proc.returncode}" if proc.returncode < 0 else f"rc {proc.returncode}"
    return ProbeResult(
        False, f"{path}: pywhispercpp failed to load it ({how}): {tail}", proc.returncode
    )
