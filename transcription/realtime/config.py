"""The session configuration of a Realtime transcription session: what ``session.update``
(``openai.types.realtime``, ``type: "transcription"``) and the older
``transcription_session.update`` (``openai.types.beta.realtime``) set, and how the session
object of ``session.created`` / ``session.updated`` shows it. Parsed once at the edge into a
frozen ``RealtimeConfig``; ``protocol.py`` holds the other events."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from transcription.audio.decode import Encoding
from transcription.events import ClientError, ErrorCode

AudioFormat = Literal["pcm16", "g711_ulaw", "g711_alaw"]
PCM16_RATE_HZ = 24000  # the Realtime API's only PCM rate
G711_RATE_HZ = 8000
LOGPROBS_INCLUDE = "item.input_audio_transcription.logprobs"
# server_vad defaults (Realtime API reference, turn_detection)
DEFAULT_THRESHOLD = 0.5
DEFAULT_PREFIX_PADDING_MS = 300
DEFAULT_SILENCE_MS = 500
MAX_SILENCE_MS = 10_000
MAX_PREFIX_PADDING_MS = 10_000
GA_FORMATS: dict[str, AudioFormat] = {
    "audio/pcm": "pcm16",
    "audio/pcmu": "g711_ulaw",
    "audio/pcma": "g711_alaw",
}
GA_FORMAT_NAMES = {fmt: name for name, fmt in GA_FORMATS.items()}
FORMAT_ENCODINGS: dict[AudioFormat, tuple[Encoding, int]] = {
    "pcm16": ("pcm_s16le", PCM16_RATE_HZ),
    "g711_ulaw": ("pcm_mulaw", G711_RATE_HZ),
    "g711_alaw": ("pcm_alaw", G711_RATE_HZ),
}


def new_id(prefix: str) -> str:
    """An id in the Realtime API's style (``item_…``, ``event_…``)."""
    return f"{prefix}_{secrets.token_hex(12)}"


def error(message: str, code: str, param: str | None = None) -> ClientError:
    """A client mistake, with the Realtime API's error ``code`` (and ``param``)."""
    detail = code if param is None else f"{code}:{param}"
    return ClientError(ErrorCode.INVALID_MESSAGE, message, detail=detail)


# --- the session configuration ---


@dataclass(frozen=True, slots=True)
class ServerVad:
    """``turn_detection: {"type": "server_vad", ...}``."""

    threshold: float = DEFAULT_THRESHOLD
    prefix_padding_ms: int = DEFAULT_PREFIX_PADDING_MS
    silence_duration_ms: int = DEFAULT_SILENCE_MS


@dataclass(frozen=True, slots=True)
class RealtimeConfig:
    """The transcription session's configuration, as ``session.update`` left it."""

    format: AudioFormat = "pcm16"
    model: str = "whisper-1"
    language: str | None = None
    prompt: str = ""
    turn_detection: ServerVad | None = ServerVad()
    logprobs: bool = False

    @property
    def encoding(self) -> Encoding:
        return FORMAT_ENCODINGS[self.format][0]

    @property
    def sample_rate(self) -> int:
        return FORMAT_ENCODINGS[self.format][1]

    def ga(self, session_id: str) -> dict[str, Any]:
        """The ``session`` object of ``session.created`` / ``session.updated``."""
        fmt: dict[str, Any] = {"type": GA_FORMAT_NAMES[self.format]}
        if self.format == "pcm16":
            fmt["rate"] = PCM16_RATE_HZ
        return {
            "type": "transcription",
            "object": "realtime.transcription_session",
            "id": session_id,
            "audio": {
                "input": {
                    "format": fmt,
                    "transcription": self._transcription(),
                    "turn_detection": self._turn_detection(),
                    "noise_reduction": None,
                }
            },
            "include": [LOGPROBS_INCLUDE] if self.logprobs else None,
        }

    def beta(self, session_id: str) -> dict[str, Any]:
        """The ``session`` object of ``transcription_session.updated`` (the older shape)."""
        return {
            "id": session_id,
            "object": "realtime.transcription_session",
            "input_audio_format": self.format,
            "input_audio_transcription": self._transcription(),
            "turn_detection": self._turn_detection(),
            "input_audio_noise_reduction": None,
            "include": [LOGPROBS_INCLUDE] if self.logprobs else None,
            "modalities": ["text"],
        }

    def _transcription(self) -> dict[str, Any]:
        return {"model": self.model, "language": self.language, "prompt": self.prompt}

    def _turn_detection(self) -> dict[str, Any] | None:
        vad = self.turn_detection
        if vad is None:
            return None
        return {
            "type": "server_vad",
            "threshold": vad.threshold,
            "prefix_padding_ms": vad.prefix_padding_ms,
            "silence_duration_ms": vad.silence_duration_ms,
        }


# --- session.update ---


@dataclass(frozen=True, slots=True)
class SessionUpdate:
    """``session.update`` or ``transcription_session.update``: the configuration after it."""

    config: RealtimeConfig
    beta: bool  # the older transcription_session.update: answer in its shape
    changed: frozenset[str]  # the fields the event set


def parse_session_update(
    kind: str, session: Mapping[str, Any], current: RealtimeConfig
) -> SessionUpdate:
    """The configuration after ``session.update`` or ``transcription_session.update``."""
    if kind == "session.update":
        return _ga_update(session, current)
    return _beta_update(session, current)


def _object(parent: Mapping[str, Any], name: str, path: str) -> Mapping[str, Any] | None:
    value = parent.get(name)
    if value is not None and not isinstance(value, dict):
        raise error(f"Invalid '{path}': must be an object", "invalid_value", path)
    return value


def _ga_update(session: Mapping[str, Any], current: RealtimeConfig) -> SessionUpdate:
    kind = session.get("type", "transcription")
    if kind != "transcription":
        raise error(
            "Invalid 'session.type': this endpoint transcribes only: use 'transcription'",
            "invalid_value",
            "session.type",
        )
    config, changed = current, set[str]()
    audio = _object(session, "audio", "session.audio") or {}
    inputs = _object(audio, "input", "session.audio.input") or {}
    if "format" in inputs:
        fmt = _object(inputs, "format", "session.audio.input.format") or {}
        name = fmt.get("type", "audio/pcm")
        if name not in GA_FORMATS:
            raise error(
                "Invalid 'session.audio.input.format.type': must be 'audio/pcm', 'audio/pcmu' "
                "or 'audio/pcma'",
                "invalid_value",
                "session.audio.input.format.type",
            )
        rate = fmt.get("rate", PCM16_RATE_HZ)
        if name == "audio/pcm" and rate != PCM16_RATE_HZ:
            raise error(
                "Invalid 'session.audio.input.format.rate': audio/pcm is 24000 Hz",
                "invalid_value",
                "session.audio.input.format.rate",
            )
        config, changed = replace(config, format=GA_FORMATS[name]), changed | {"format"}
    if "transcription" in inputs:
        config, fields = _transcription(
            inputs.get("transcription"), config, "session.audio.input.transcription"
        )
        changed |= fields
    if "turn_detection" in inputs:
        config = replace(
            config,
            turn_detection=_turn_detection(
                inputs["turn_detection"], "session.audio.input.turn_detection"
            ),
        )
        changed.add("turn_detection")
    if "include" in session:
        config, changed = (
            replace(config, logprobs=_include(session["include"])),
            changed | {"include"},
        )
    return SessionUpdate(config, beta=False, changed=frozenset(changed))


def _beta_update(session: Mapping[str, Any], current: RealtimeConfig) -> SessionUpdate:
    config, changed = current, set[str]()
    if "input_audio_format" in session:
        fmt = session["input_audio_format"]
        if fmt not in FORMAT_ENCODINGS:
            raise error(
                "Invalid 'session.input_audio_format': must be 'pcm16', 'g711_ulaw' or 'g711_alaw'",
                "invalid_value",
                "session.input_audio_format",
            )
        config, changed = replace(config, format=fmt), changed | {"format"}
    if "input_audio_transcription" in session:
        config, fields = _transcription(
            session["input_audio_transcription"], config, "session.input_audio_transcription"
        )
        changed |= fields
    if "turn_detection" in session:
        vad = _turn_detection(session["turn_detection"], "session.turn_detection")
        config, changed = replace(config, turn_detection=vad), changed | {"turn_detection"}
    if "include" in session:
        config, changed = (
            replace(config, logprobs=_include(session["include"])),
            changed | {"include"},
        )
    return SessionUpdate(config, beta=True, changed=frozenset(changed))


def _transcription(
    value: Any, config: RealtimeConfig, path: str
) -> tuple[RealtimeConfig, set[str]]:
    if value is None:
        return config, set()
    if not isinstance(value, dict):
        raise error(f"Invalid '{path}': must be an object or null", "invalid_value", path)
    changed: set[str] = set()
    model = value.get("model")
    if model is not None:
        if not isinstance(model, str) or not 0 < len(model) <= 128:
            raise error(f"Invalid '{path}.model': must be a string", "invalid_value", path)
        config = replace(config, model=model)
    if "language" in value:
        language = value["language"]
        if language is not None and (not isinstance(language, str) or not 0 < len(language) <= 16):
            raise error(
                f"Invalid '{path}.language': must be an ISO-639-1 code", "invalid_value", path
            )
        config, changed = replace(config, language=language), changed | {"language"}
    if "prompt" in value:
        prompt = value["prompt"] or ""
        if not isinstance(prompt, str):
            raise error(f"Invalid '{path}.prompt': must be a string", "invalid_value", path)
        config = replace(config, prompt=prompt)
    return config, changed


def _number(vad: Mapping[str, Any], name: str, default: float, lo: float, hi: float) -> float:
    value = vad.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
        raise error(
            f"Invalid 'turn_detection.{name}': must be a number between {lo:g} and {hi:g}",
            "invalid_value",
            f"turn_detection.{name}",
        )
    return value


def _turn_detection(value: Any, path: str) -> ServerVad | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise error(f"Invalid '{path}': must be an object or null", "invalid_value", path)
    kind = value.get("type", "server_vad")
    # semantic_vad needs a turn model we do not have: it is served as server_vad.
    if kind not in ("server_vad", "semantic_vad"):
        raise error(f"Invalid '{path}.type': must be 'server_vad'", "invalid_value", path)
    return ServerVad(
        threshold=_number(value, "threshold", DEFAULT_THRESHOLD, 0.0, 1.0),
        prefix_padding_ms=int(
            _number(value, "prefix_padding_ms", DEFAULT_PREFIX_PADDING_MS, 0, MAX_PREFIX_PADDING_MS)
        ),
        silence_duration_ms=int(
            _number(value, "silence_duration_ms", DEFAULT_SILENCE_MS, 1, MAX_SILENCE_MS)
        ),
    )


def _include(value: Any) -> bool:
    if value is None:
        return False
    if not isinstance(value, list) or any(v != LOGPROBS_INCLUDE for v in value):
        raise error(
            f"Invalid 'include': the only supported value is {LOGPROBS_INCLUDE!r}",
            "invalid_value",
            "include",
        )
    return bool(value)
