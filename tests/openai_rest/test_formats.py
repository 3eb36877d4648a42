"""Tests for transcription/openai_rest/formats.py: the response bodies in OpenAI's shapes."""

from __future__ import annotations

import json
import re

from hypothesis import given
from hypothesis import strategies as st

from transcription.inference.types import Word
from transcription.openai_rest import formats
from transcription.openai_rest.params import TranscriptionParams

WORDS = [
    Word("Hello", 300, 700, 0.9),
    Word("there.", 750, 1200, 0.8),
    Word("How", 2500, 2700, 0.95),
    Word("are", 2650, 2900, 0.9),  # overlaps the word before: Whisper at a window join
    Word("you?", 2950, 3400, 0.7),
    Word("Fine", 3_600_100, 3_600_500, 0.9),
]
TEXT = "Hello there. How are you? Fine"


def render(response_format: str, **params: object) -> str:
    p = TranscriptionParams(model="m", response_format=response_format, **params)  # type: ignore[arg-type]
    return formats.render(TEXT, WORDS, language="en", duration_s=3601.2, params=p)[0]


def test_segments_end_at_sentences_and_pauses() -> None:
    """A sentence end or a long pause starts a new segment; the text keeps punctuation."""
    texts = [s.text for s in formats.segments_of(formats.monotone(WORDS))]
    assert texts == ["Hello there.", "How are you?", "Fine"]


def test_srt_numbers_its_cues_with_comma_milliseconds() -> None:
    """SubRip: 1-based cue numbers, HH:MM:SS,mmm, hours past one."""
    srt = render("srt")
    assert srt.startswith("1\n00:00:00,300 --> 00:00:01,200\nHello there.\n\n2\n")
    assert "3\n01:00:00,100 --> 01:00:00,500\nFine\n" in srt
    cue = re.compile(r"^\d+\n\d\d:\d\d:\d\d,\d{3} --> \d\d:\d\d:\d\d,\d{3}\n.+\n$", re.S)
    assert all(cue.match(block + "\n") for block in srt.strip().split("\n\n"))


def test_vtt_has_its_header_and_dot_milliseconds() -> None:
    """WebVTT: the WEBVTT line, then unnumbered cues with HH:MM:SS.mmm."""
    vtt = render("vtt")
    assert vtt.startswith("WEBVTT\n\n00:00:00.300 --> 00:00:01.200\nHello there.\n")
    assert "01:00:00.100 --> 01:00:00.500\nFine" in vtt


def test_json_and_text_carry_the_transcript() -> None:
    """json: ``text`` and duration usage; text: the transcript and a newline."""
    assert json.loads(render("json")) == {
        "text": TEXT,
        "usage": {"type": "duration", "seconds": 3602},
    }
    assert render("text") == TEXT + "\n"


def test_verbose_json_words_are_monotone_and_segments_in_openai_shape() -> None:
    """Words in seconds, each starting after the one before ended; segments with every field
    of OpenAI's TranscriptionSegment."""
    body = json.loads(render("verbose_json", timestamp_granularities=frozenset({"word"})))
    assert "segments" not in body and body["duration"] == 3601.2 and body["text"] == TEXT
    starts_ends = [(w["start"], w["end"]) for w in body["words"]]
    assert starts_ends[3] == (2.7, 2.9)  # pushed past the overlap
    flat = [t for pair in starts_ends for t in pair]
    assert flat == sorted(flat)
    both = frozenset({"word", "segment"})
    segment = json.loads(render("verbose_json", timestamp_granularities=both))["segments"][0]
    assert set(segment) == {
        "id",
        "seek",
        "start",
        "end",
        "text",
        "tokens",
        "temperature",
        "avg_logprob",
        "compression_ratio",
        "no_speech_prob",
    }
    assert segment["text"] == " Hello there." and segment["avg_logprob"] < 0


def test_stream_events_are_data_lines_of_json() -> None:
    """Server-sent events as OpenAI sends them: ``data: {...}`` and a blank line."""
    assert formats.sse(formats.delta_event("Hi")) == (
        b'data: {"type": "transcript.text.delta", "delta": "Hi"}\n\n'
    )
    assert json.loads(formats.sse(formats.done_event("Hi"))[6:]) == {
        "type": "transcript.text.done",
        "text": "Hi",
    }


@given(
    st.lists(
        st.tuples(st.integers(0, 10_000_000), st.integers(0, 5_000)),
        max_size=40,
    )
)
def test_any_word_times_become_a_monotone_timeline(times: list[tuple[int, int]]) -> None:
    """Whatever times Whisper returns, words never go back in time or end before they start."""
    words = [Word(f"w{i}", start, start + length, 0.5) for i, (start, length) in enumerate(times)]
    out = formats.monotone(words)
    flat = [t for w in out for t in (w.start_ms, w.end_ms)]
    assert flat == sorted(flat) and [w.text for w in out] == [w.text for w in words]
