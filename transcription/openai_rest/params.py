"""The form fields of ``POST /v1/audio/transcriptions``, parsed once into a typed object.

The fields and their rules follow OpenAI's ``TranscriptionCreateParams``: ``model`` is required,
``response_format`` is one of json | text | srt | vtt | verbose_json, ``timestamp_granularities[]``
(word, segment) needs verbose_json, ``temperature`` is 0..1. Lists arrive as repeated fields
named ``name[]`` (what the SDK sends) or ``name``. A bad value raises a 400 naming the field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, cast, get_args

from transcription.openai_rest.errors import invalid

ResponseFormat = Literal["json", "text", "srt", "vtt", "verbose_json"]
Granularity = Literal["word", "segment"]
RESPONSE_FORMATS: tuple[ResponseFormat, ...] = get_args(ResponseFormat)
GRANULARITIES: tuple[Granularity, ...] = get_args(Granularity)
MODEL_MAX_CHARS = 128
PROMPT_MAX_CHARS = 2000  # Whisper keeps the last 224 prompt tokens: more is never read
_LANGUAGE_RE = re.compile(r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})?$")
_TRUE = frozenset({"true", "1"})
_FALSE = frozenset({"false", "0", ""})


@dataclass(frozen=True, slots=True)
class TranscriptionParams:
    """A validated request (the file itself travels separately)."""

    model: str
    language: str | None = None  # None: the server's default (WSS_LANGUAGE)
    prompt: str = ""
    temperature: float = 0.0  # accepted, not used: decoding is greedy or beam (WSS_BEAM_SIZE)
    response_format: ResponseFormat = "json"
    timestamp_granularities: frozenset[Granularity] = frozenset()
    stream: bool = False

    @property
    def words(self) -> bool:
        """verbose_json lists the words."""
        return "word" in self.timestamp_granularities

    @property
    def segments(self) -> bool:
        """verbose_json lists the segments (its default when no granularity is asked)."""
        return "segment" in self.timestamp_granularities or not self.timestamp_granularities


def _one(fields: Mapping[str, Sequence[str]], name: str) -> str | None:
    values = fields.get(name)
    if not values:
        return None
    if len(values) > 1:
        raise invalid(f"'{name}' was sent {len(values)} times: send it once", name)
    return values[0]


def _many(fields: Mapping[str, Sequence[str]], name: str) -> list[str]:
    return [*fields.get(f"{name}[]", ()), *fields.get(name, ())]


def parse_params(fields: Mapping[str, Sequence[str]]) -> TranscriptionParams:
    """Validate the non-file form fields; unknown fields (``include[]``, ``chunking_strategy``,
    ...) are ignored, as README "OpenAI transcriptions API" lists."""
    model = (_one(fields, "model") or "").strip()
    if not 0 < len(model) <= MODEL_MAX_CHARS:
        raise invalid(
            f"'model' is required: a string of 1 to {MODEL_MAX_CHARS} characters", "model"
        )
    language = _one(fields, "language")
    if language is not None:
        language = language.strip().lower() or None
        if language is not None and not _LANGUAGE_RE.match(language):
            raise invalid(
                f"Invalid 'language' {language[:20]!r}: use an ISO-639-1 code such as 'en'",
                "language",
            )
    prompt = _one(fields, "prompt") or ""
    if len(prompt) > PROMPT_MAX_CHARS:
        raise invalid(f"'prompt' must be at most {PROMPT_MAX_CHARS} characters", "prompt")
    temperature = _temperature(_one(fields, "temperature"))
    response_format = _one(fields, "response_format") or "json"
    if response_format not in RESPONSE_FORMATS:
        raise invalid(
            f"Invalid 'response_format' {response_format[:30]!r}: must be one of "
            f"{', '.join(RESPONSE_FORMATS)}",
            "response_format",
        )
    granularities = _many(fields, "timestamp_granularities")
    for value in granularities:
        if value not in GRANULARITIES:
            raise invalid(
                f"Invalid 'timestamp_granularities[]' {value[:30]!r}: must be word or segment",
                "timestamp_granularities",
            )
    if granularities and response_format != "verbose_json":
        raise invalid(
            "'timestamp_granularities[]' needs response_format 'verbose_json'",
            "timestamp_granularities",
        )
    return TranscriptionParams(
        model=model,
        language=language,
        prompt=prompt.strip(),
        temperature=temperature,
        response_format=response_format,
        timestamp_granularities=frozenset(cast(list[Granularity], granularities)),
        stream=_stream(_one(fields, "stream")),
    )


def _temperature(raw: str | None) -> float:
    if raw is None or not raw.strip():
        return 0.0
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:  # also refuses nan
        raise invalid("'temperature' must be a number between 0 and 1", "temperature")
    return value


def _stream(raw: str | None) -> bool:
    value = (raw or "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise invalid("'stream' must be true or false", "stream")
