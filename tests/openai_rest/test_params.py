"""Tests for transcription/openai_rest/params.py: the form fields of a transcription request."""

from __future__ import annotations

import pytest

from transcription.openai_rest.errors import OpenAIError
from transcription.openai_rest.params import TranscriptionParams, parse_params


def parse(**fields: str | list[str]) -> TranscriptionParams:
    return parse_params({k: v if isinstance(v, list) else [v] for k, v in fields.items()})


def test_only_the_model_is_required_and_the_rest_has_openai_defaults() -> None:
    """json, no stream, temperature 0, the server's language."""
    params = parse(model="whisper-1")
    assert params == TranscriptionParams(model="whisper-1")
    assert params.language is None and params.response_format == "json" and not params.stream


def test_every_field_the_sdk_sends_is_read() -> None:
    """The SDK's field names, including the bracketed list and the stringified bool."""
    params = parse(
        model="whisper-1",
        language="EN",
        prompt=" Names: Ada, Grace ",
        temperature="0.2",
        response_format="verbose_json",
        stream="true",
        **{"timestamp_granularities[]": ["word", "segment"]},
    )
    assert params.language == "en" and params.prompt == "Names: Ada, Grace"
    assert params.temperature == 0.2 and params.stream
    assert params.words and params.segments


def test_verbose_json_lists_segments_unless_only_words_are_asked() -> None:
    """OpenAI's default granularity is segment; asking for words alone drops the segments."""
    assert parse(model="m", response_format="verbose_json").segments
    only_words = parse(model="m", response_format="verbose_json", timestamp_granularities="word")
    assert only_words.words and not only_words.segments


def test_unknown_fields_are_ignored() -> None:
    """include[], chunking_strategy and future fields do not break a request."""
    assert parse(model="m", chunking_strategy="auto", **{"include[]": ["logprobs"]}).model == "m"


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({}, "model"),
        ({"model": ""}, "model"),
        ({"model": "m", "response_format": "diarized_json"}, "response_format"),
        ({"model": "m", "temperature": "1.5"}, "temperature"),
        ({"model": "m", "temperature": "nan"}, "temperature"),
        ({"model": "m", "language": "english please"}, "language"),
        ({"model": "m", "stream": "maybe"}, "stream"),
        ({"model": "m", "prompt": "x" * 2001}, "prompt"),
        ({"model": "m", "timestamp_granularities[]": "token"}, "timestamp_granularities"),
        ({"model": "m", "timestamp_granularities[]": "word"}, "timestamp_granularities"),
        ({"model": ["a", "b"]}, "model"),
    ],
)
def test_a_bad_field_is_a_400_naming_it(fields: dict[str, str | list[str]], param: str) -> None:
    """Missing model, unknown format, temperature outside 0..1, granularities without
    verbose_json, a field sent twice: OpenAI's 400 with ``param`` set."""
    with pytest.raises(OpenAIError) as raised:
        parse(**fields)
    assert raised.value.status == 400 and raised.value.param == param
    assert raised.value.body()["error"]["type"] == "invalid_request_error"
