"""This process's model: loaded once, on a thread, and shared by every inference slot.

The worker calls ``get_backend`` before it takes its first job; ``backend_status`` tells
readiness whether the model is loaded (the in-process deployment's ``/ready``).
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings

from transcription.inference.backend import load_backend
from transcription.inference.base import Backend
from transcription.inference.fake import FakeBackend
from transcription.modelinfo import resolve_serving_model

log = logging.getLogger(__name__)

_backend: Backend | None = None
_executor: ThreadPoolExecutor | None = None
_error: str | None = None
_lock = threading.Lock()


def get_backend() -> Backend:
    """Load the backend once per process (blocking: call it from a thread)."""
    global _backend, _executor, _error
    with _lock:
        if _backend is not None:
            return _backend
        cfg = settings.OPENASR
        try:
            model = resolve_serving_model(cfg)
            started = time.monotonic()
            backend: Backend
            if cfg.backend == "fake":
                backend = FakeBackend(
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
                )
            log.info(
                "model %s loaded in %.2f s (backend=%s, concurrency=%d, threads=%d)",
                model.model_id,
                time.monotonic() - started,
                cfg.backend,
                cfg.worker_concurrency,
                cfg.effective_threads,
            )
        except Exception as exc:
            _error = str(exc)
            log.exception("loading the inference backend failed")
            raise
        _install(backend)
        return backend


def executor() -> ThreadPoolExecutor:
    """The threads inference runs on (one per slot); valid once the backend is loaded."""
    if _executor is None:
        raise RuntimeError("the inference backend is not loaded")
    return _executor


def backend_status() -> tuple[bool, str | None]:
    """(loaded, last load error) of this process's backend."""
    return _backend is not None, _error


def set_backend_for_tests(backend: Backend) -> None:
    """Install a backend (e.g. the fake one) for this process; used by protocol tests."""
    with _lock:
        _install(backend)


def _install(backend: Backend) -> None:
    global _backend, _executor, _error
    _backend, _error = backend, None
    _executor = ThreadPoolExecutor(
        max_workers=max(1, backend.concurrency), thread_name_prefix="whisper"
    )
