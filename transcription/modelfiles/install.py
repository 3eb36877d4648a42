"""Build ``models/ggml-<name>[-q8_0].bin`` from CTranslate2 weights: idempotent and atomic.

An installed file has a sidecar ``<file>.sha256`` (``sha256sum`` format) written only after the
file was verified and renamed into place; a later call whose file still matches it does nothing.
The file is written to a temporary name in the same directory, fsynced, verified and renamed,
so a crash or a bad input never leaves a partial model where the server would load it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from transcription.modelfiles.ct2 import Ct2FormatError, read_ct2
from transcription.modelfiles.ggml import FTYPES, Quant, load_vocabulary, write_ggml
from transcription.modelfiles.sources import (
    KNOWN_MODELS,
    Ct2Source,
    ModelSourceError,
    from_directory,
    locate,
    unknown_model_message,
)
from transcription.modelfiles.verify import GgmlVerifyError, verify_ggml

Progress = Callable[[str], None]

_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_HASH_CHUNK_BYTES = 1 << 20


class ModelInstallError(Exception):
    """A model cannot be installed; the message names the cause and, if any, the fix."""


def model_filename(name: str, quant: Quant = "f16") -> str:
    """``ggml-<name>.bin`` for f16, ``ggml-<name>-q8_0.bin`` for q8_0."""
    return f"ggml-{name}.bin" if quant == "f16" else f"ggml-{name}-{quant}.bin"


def install_model(
    name: str,
    models_dir: str | os.PathLike[str],
    *,
    quant: Quant = "f16",
    from_ct2: str | os.PathLike[str] | None = None,
    force: bool = False,
    progress: Progress | None = None,
) -> Path:
    """Convert model ``name`` to GGML in ``models_dir`` unless already installed; returns the path.

    ``from_ct2`` names a faster-whisper directory to convert instead of the packaged weights.
    An intact installed file (sha256 equal to its sidecar) is kept whatever the source;
    ``force`` rebuilds it anyway. Raises ModelInstallError for an unknown name, a missing
    package, or corrupt or truncated input; no partial file is left behind in that case.
    """
    report = progress or (lambda _msg: None)
    if not _NAME_RE.fullmatch(name):
        raise ModelInstallError(f"model name {name!r} must be letters, digits, '.', '_' or '-'")
    if quant not in FTYPES:
        raise ModelInstallError(f"type must be one of {', '.join(FTYPES)}, got {quant!r}")
    if from_ct2 is None and name not in KNOWN_MODELS:
        raise ModelInstallError(unknown_model_message(name))
    directory = Path(models_dir).expanduser().resolve()
    target = directory / model_filename(name, quant)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelInstallError(f"cannot create models directory {directory}: {exc}") from exc

    # Concurrent installs (test workers, several pods on one volume) would each convert; the
    # lock makes the later ones find the finished file instead.
    with _locked(directory / f".{target.name}.lock"):
        if not force and is_installed(target):
            report(f"{target.name} is already installed (sha256 matches {_sidecar(target).name})")
            return target
        source = _find_source(name, from_ct2)
        started = time.monotonic()
        digest = _convert(source, target, quant, report)
        _write_sidecar(target, digest)
        report(f"installed {target} in {time.monotonic() - started:.1f} s")
        return target


def is_installed(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` exists and its sha256 equals the one recorded after installing it."""
    path = Path(path)
    try:
        recorded = _sidecar(path).read_text().split()[0]
    except (OSError, IndexError):
        return False
    return path.is_file() and sha256_file(path) == recorded


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _find_source(name: str, from_ct2: str | os.PathLike[str] | None) -> Ct2Source:
    try:
        return from_directory(from_ct2) if from_ct2 is not None else locate(name)
    except ModelSourceError as exc:
        raise ModelInstallError(str(exc)) from exc


def _convert(source: Ct2Source, target: Path, quant: Quant, report: Progress) -> str:
    parts = ", ".join(str(p) for p in source.model_parts)
    report(f"reading CTranslate2 model ({source.size / 1e6:.1f} MB): {parts}")
    try:
        model = read_ct2(source.model_parts)
        vocabulary = load_vocabulary(source.vocabulary)
    except (Ct2FormatError, OSError, UnicodeDecodeError) as exc:
        raise ModelInstallError(f"cannot read the CTranslate2 model ({parts}): {exc}") from exc

    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            report(f"writing {quant} GGML file {target.name}")
            last_reported = [0.0]

            def on_tensor(done: int, total: int) -> None:
                # Throttled: a message per tensor would flood a terminal.
                if done == total or time.monotonic() - last_reported[0] > 1.0:
                    last_reported[0] = time.monotonic()
                    report(f"  tensors {done}/{total}")

            try:
                write_ggml(out, model, vocabulary, quant=quant, on_tensor=on_tensor)
            except Ct2FormatError as exc:
                raise ModelInstallError(f"unexpected CTranslate2 model ({parts}): {exc}") from exc
            out.flush()
            os.fsync(out.fileno())
        del model  # the parsed weights are no longer needed; free them before hashing
        report("verifying the written file")
        try:
            verify_ggml(tmp)
        except GgmlVerifyError as exc:
            raise ModelInstallError(f"the converted file failed verification: {exc}") from exc
        digest = sha256_file(tmp)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; the server may run as another user
        os.replace(tmp, target)
        _fsync_dir(target.parent)
        return digest
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _write_sidecar(target: Path, digest: str) -> None:
    sidecar = _sidecar(target)
    tmp = sidecar.with_name(f".{sidecar.name}.tmp")
    with open(tmp, "w") as f:
        f.write(f"{digest}  {target.name}\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, sidecar)
    _fsync_dir(target.parent)


def _fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable, not only the file's bytes.
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    with open(lock_path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
