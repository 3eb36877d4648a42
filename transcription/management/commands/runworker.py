"""``manage.py runworker asr.inference``: channels' runworker with OpenASR's bounded worker.

Same command line as channels' own; only the worker class differs (see ``InferenceWorker``): it
serves the model its settings name, on that model's channels (one deployment per model).
SIGTERM (what Kubernetes and podman send) stops it like Ctrl-C, with exit status 0: a window in
flight is lost with the process, and its sender re-sends it to another worker
(``inference/client.py``).
"""

from __future__ import annotations

import signal
from types import FrameType
from typing import Any

from channels.management.commands.runworker import Command as ChannelsRunworker

from transcription.worker import InferenceWorker, worker_model_id


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # asgiref's server loop exits cleanly on it


class SettingsModelWorker(InferenceWorker):
    """The worker of one pool: the model this process's settings name (``WSS_MODEL`` or
    ``WHISPER_MODEL_PATH``); ``asr.inference`` on the command line is that model's channel."""

    def __init__(self, application: Any, channels: list[str], channel_layer: Any) -> None:
        super().__init__(application, channels, channel_layer, worker_model_id())


class Command(ChannelsRunworker):
    worker_class = SettingsModelWorker

    def handle(self, *args: Any, **options: Any) -> None:
        signal.signal(signal.SIGTERM, _interrupt)
        super().handle(*args, **options)
