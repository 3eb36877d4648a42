"""Start-up checks and warm-up of a server process."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from transcription.auth.keys import check_auth_configuration
from transcription.modelinfo import resolve_serving_model
from transcription.worker import ensure_inprocess_worker

log = logging.getLogger(__name__)


def check_startup() -> None:
    """Fail fast, naming the setting, when this process cannot serve."""
    cfg = settings.OPENASR
    if not cfg.redis_url and cfg.backend != "fake":
        # the worker runs in this process: its model must be here
        model = resolve_serving_model(cfg)
        if not model.path.is_file():
            hint = (
                "WHISPER_MODEL_PATH points at a missing file"
                if cfg.model_path
                else f"run `make run` or `python manage.py install_model {cfg.model_name}`"
            )
            raise ImproperlyConfigured(f"model file {model.path} not found: {hint}")
    check_auth_configuration()


def warm_up() -> None:
    """On the event loop once listening: start the in-process worker (loads the model)."""
    ensure_inprocess_worker()
