"""Which model this node serves: its path, the id clients see, and whether it is multilingual."""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openasr_site.config import BASE_DIR
from transcription.modelfiles.ggml import GGML_MAGIC

MULTILINGUAL_MIN_VOCAB = 51865  # whisper.cpp: n_vocab >= 51865 means multilingual


@dataclass(frozen=True, slots=True)
class ModelInfo:
    path: Path
    model_id: str
    multilingual: bool


def models_dir() -> Path:
    return BASE_DIR / "models"


def model_path_for(cfg: Any) -> Path:
    """WHISPER_MODEL_PATH wins; else the bundled ``models/ggml-<WSS_MODEL>.bin``."""
    if cfg.model_path:
        return Path(cfg.model_path).expanduser().resolve()
    return models_dir() / f"ggml-{cfg.model_name}.bin"


def model_id_for(path: Path) -> str:
    """``ggml-base.en-q8_0.bin`` → ``whisper-base.en-q8_0`` (the seed's model_id style)."""
    stem = re.sub(r"\.bin$", "", path.name)
    stem = re.sub(r"^ggml-", "", stem)
    return f"whisper-{stem}"


def read_n_vocab(path: Path) -> int | None:
    try:
        with path.open("rb") as fh:
            head = fh.read(8)
    except OSError:
        return None
    if len(head) < 8:
        return None
    magic, n_vocab = struct.unpack("<Ii", head)
    return n_vocab if magic == GGML_MAGIC else None


def resolve_serving_model(cfg: Any) -> ModelInfo:
    """Describe the configured model; the file's header decides multilingual when it exists.

    A server pod may not hold the file (only workers load it); then the name decides
    (``.en`` models are English-only).
    """
    path = model_path_for(cfg)
    n_vocab = read_n_vocab(path)
    if n_vocab is not None:
        multilingual = n_vocab >= MULTILINGUAL_MIN_VOCAB
    else:
        multilingual = ".en" not in path.name
    return ModelInfo(path=path, model_id=model_id_for(path), multilingual=multilingual)
