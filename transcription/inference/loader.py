"""This process's models: each loaded once, on a thread, and shared by its pool's slots.

A worker calls ``get_backend(model_id)`` for the model it serves before it takes its first job
(the in-process deployment runs one worker per served model); ``backend_status`` tells
readiness whether a model is loaded (the in-process deployment's ``/ready``). ``model_id`` ""
is the model the settings name (``modelinfo.resolve_serving_model``).
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from django.conf import settings

from transcription.inference.backend import load_backend
from transcription.inference.base import Backend
from transcription.inference.fake import FakeBackend
from transcription.modelinfo import ModelInfo, find_model, resolve_serving_model

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Loaded:
    backend: Backend
    executor: ThreadPoolExecutor  # one thread per slot


_loaded: dict[str, _Loaded] = {}
_errors: dict[str, str] = {}
_override: _Loaded | None = None  # set_backend_for_tests: serves every model
_lock = threading.Lock()


def _model(model_id: str) -> ModelInfo:
    cfg = settings.OPENASR
    default = resolve_serving_model(cfg)
    if not model_id or model_id == default.model_id:
        return default
    model = find_model(cfg, model_id)
    if model is None:
        raise LookupError(f"model {model_id!r} is not served by this deployment")
    return model


def get_backend(model_id: str = "") -> Backend:
    """Load ``model_id``'s backend once per process (blocking: call it from a thread)."""
    return _get(model_id).backend


def executor(model_id: str = "") -> ThreadPoolExecutor:
    """The threads ``model_id``'s inferences run on; valid once its backend is loaded."""
    loaded = _override or _loaded.get(_model(model_id).model_id)
    if loaded is None:
        raise RuntimeError(
            f"the inference backend of {model_id or 'the default model'} is not loaded"
        )
    return loaded.executor


def _get(model_id: str) -> _Loaded:
    with _lock:
        if _override is not None:
            return _override
        model = _model(model_id)
        loaded = _loaded.get(model.model_id)
        if loaded is not None:
            return loaded
        try:
            loaded = _install(_load(model))
        except Exception as exc:
            _errors[model.model_id] = str(exc)
            log.exception("loading the inference backend of %s failed", model.model_id)
            raise
        _loaded[model.model_id] = loaded
        _errors.pop(model.model_id, None)
        return loaded


def _load(model: ModelInfo) -> Backend:
    cfg = settings.OPENASR
    started = time.monotonic()
    backend: Backend
    if cfg.backend == "fake":
        backend = FakeBackend(
            model_path=model.path,
            concurrency=cfg.worker_concurrency,
            seconds_per_audio_second=cfg.fake_backend_rtf,
            fail=cfg.fake_backend_fail,
        )
    else:
        backend = load_backend(
            cfg.backend,
            model.path,
            concurrency=cfg.worker_concurrency,
            n_threads=cfg.effective_threads,
            dtw=cfg.dtw_timestamps,
        )
    log.info(
        "model %s loaded in %.2f s (backend=%s, concurrency=%d, threads=%d, dtw=%s)",
        model.model_id,
        time.monotonic() - started,
        cfg.backend,
        cfg.worker_concurrency,
        cfg.effective_threads,
        cfg.dtw_timestamps,
    )
    return backend


def backend_status(model_id: str = "") -> tuple[bool, str | None]:
    """(loaded, last load error) of ``model_id``'s backend in this process."""
    if _override is not None:
        return True, None
    key = _model(model_id).model_id
    return key in _loaded, _errors.get(key)


def set_backend_for_tests(backend: Backend) -> None:
    """Install a backend (e.g. the fake one) that serves every model of this process; used by
    protocol tests."""
    global _override
    with _lock:
        _override = _install(backend)


def _install(backend: Backend) -> _Loaded:
    return _Loaded(
        backend,
        ThreadPoolExecutor(max_workers=max(1, backend.concurrency), thread_name_prefix="whisper"),
    )
