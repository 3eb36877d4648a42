"""Which models this deployment serves, and which one serves a session.

Each served model is a pool: its own inference channel (``inference/messages.py``), its own
workers (a worker serves the model its settings name: ``WHISPER_MODEL_PATH`` or ``WSS_MODEL``),
its own admission figures. The first served model is the default: it serves every ``model_id``
that names no served model (the seed's clients send any id) and the requests that name none.
``served_models`` lists them: the default, then ``WSS_MODELS``; without Redis and with
``WSS_MODELS`` empty, every bundled model installed in ``models/`` (the in-process deployment
loads them all). ``route`` picks the one of a session (docs/PROTOCOL.md "Models").
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openasr_site.config import BASE_DIR
from transcription.languages import (
    TRANSCRIBE,
    Task,
    UnknownLanguage,
    needs_multilingual,
    normalize_language,
)
from transcription.modelfiles.ggml import GGML_MAGIC
from transcription.modelfiles.sources import known_models

MULTILINGUAL_MIN_VOCAB = 51865  # whisper.cpp: n_vocab >= 51865 means multilingual
MODEL_ID_PREFIX = "whisper-"


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """One served model: its file, the id clients see (and its pool's key), multilingual."""

    path: Path
    model_id: str
    multilingual: bool

    @property
    def name(self) -> str:
        """The model's short name (``base``, ``tiny.en``): the id without ``whisper-``."""
        return self.model_id.removeprefix(MODEL_ID_PREFIX)


def models_dir() -> Path:
    return BASE_DIR / "models"


def bundled_path(name: str) -> Path:
    """Where ``manage.py install_model <name>`` puts a bundled model."""
    return models_dir() / f"ggml-{name}.bin"


def model_path_for(cfg: Any) -> Path:
    """WHISPER_MODEL_PATH wins; else the bundled ``models/ggml-<WSS_MODEL>.bin``."""
    if cfg.model_path:
        return Path(cfg.model_path).expanduser().resolve()
    return bundled_path(cfg.model_name)


def model_id_for(path: Path) -> str:
    """``ggml-base.en-q8_0.bin`` → ``whisper-base.en-q8_0`` (the seed's model_id style)."""
    stem = re.sub(r"\.bin$", "", path.name)
    stem = re.sub(r"^ggml-", "", stem)
    return f"{MODEL_ID_PREFIX}{stem}"


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


def describe(path: Path) -> ModelInfo:
    """A model file as served; its header decides multilingual when it exists. A server pod
    may not hold the file (only workers load it); then the name decides (``.en`` models are
    English-only)."""
    n_vocab = read_n_vocab(path)
    if n_vocab is not None:
        multilingual = n_vocab >= MULTILINGUAL_MIN_VOCAB
    else:
        multilingual = ".en" not in path.name
    return ModelInfo(path=path, model_id=model_id_for(path), multilingual=multilingual)


def resolve_serving_model(cfg: Any) -> ModelInfo:
    """The model this process's settings name: the default pool, and what a worker serves."""
    return describe(model_path_for(cfg))


def served_models(cfg: Any) -> tuple[ModelInfo, ...]:
    """Every pool of the deployment, the default first. Not cached: it reads a few bytes of
    each file, and a model installed while the node runs is served from the next session on
    (``worker.ensure_inprocess_worker`` starts its pool)."""
    installed = _installed_bundled() if not cfg.redis_url and not cfg.models else ()
    models = [resolve_serving_model(cfg)]
    for name in (*cfg.models, *installed):
        model = describe(bundled_path(name))
        if all(m.model_id != model.model_id for m in models):
            models.append(model)
    return tuple(models)


def _installed_bundled() -> tuple[str, ...]:
    return tuple(name for name in known_models() if bundled_path(name).is_file())


def find_model(cfg: Any, model_id: str) -> ModelInfo | None:
    """The served model a ``model_id`` names: our id (``whisper-base``), its short name
    (``base``) or its file name (``ggml-base.bin``), in any case; None for any other id."""
    wanted = model_id.strip().lower().removesuffix(".bin").removeprefix("ggml-")
    wanted = wanted.removeprefix(MODEL_ID_PREFIX)
    for model in served_models(cfg):
        if model.name.lower() == wanted:
            return model
    return None


def route(cfg: Any, model_id: str, language: str, task: Task = TRANSCRIBE) -> ModelInfo:
    """The model that serves a session asking for ``model_id`` in ``language``: the one the id
    names, else the default; an English-only one is swapped for the first multilingual model
    served when the language is not English (``auto`` included) or the task is ``translate``.
    With no multilingual model served, the English-only one is returned and
    ``Session.check_config`` refuses it."""
    model = find_model(cfg, model_id) or served_models(cfg)[0]
    try:
        code = normalize_language(language)
    except UnknownLanguage:
        return model  # refused at config, naming the field
    if not model.multilingual and needs_multilingual(code, task):
        return next((m for m in served_models(cfg) if m.multilingual), model)
    return model
