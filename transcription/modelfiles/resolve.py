"""Turn the model setting into an existing file path, never into a name pywhispercpp downloads."""

from __future__ import annotations

from pathlib import Path

from transcription.modelfiles.install import model_filename


class ModelPathError(FileNotFoundError):
    """The configured model file does not exist; the message names the setting and the fix."""


def resolve_model_path(
    env_path: str | None, models_dir: Path, default_name: str = "tiny.en"
) -> Path:
    """The absolute path of the model to load; called once at start-up.

    A non-empty ``env_path`` (WHISPER_MODEL_PATH) always wins; otherwise
    ``models_dir/ggml-<default_name>.bin``. Either way the file must exist: pywhispercpp's
    ``Model()`` treats a missing path as a hub model name and tries to download it.
    """
    if env_path and env_path.strip():
        path = Path(env_path.strip()).expanduser().resolve()
        if not path.is_file():
            raise ModelPathError(f"WHISPER_MODEL_PATH={env_path!r}: no such file ({path})")
        return path
    path = (Path(models_dir).expanduser() / model_filename(default_name)).resolve()
    if not path.is_file():
        raise ModelPathError(
            f"model file {path} not found: run `python manage.py install_model {default_name}` "
            "or set WHISPER_MODEL_PATH"
        )
    return path
