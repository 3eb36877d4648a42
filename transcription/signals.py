"""Caches built from settings are dropped when a setting changes (Django's ``setting_changed``,
sent by ``override_settings`` in tests), as channels' ``ChannelLayerManager`` does."""

from __future__ import annotations

from typing import Any

from transcription import checkpoints
from transcription.inference import heartbeat


def reset_setting_caches(*, setting: str, **kwargs: Any) -> None:
    """Receiver of ``setting_changed``: the stores and lookups that read ``OPENASR``."""
    if setting == "OPENASR":
        checkpoints.reset_stores()
        heartbeat.clear_cache()
